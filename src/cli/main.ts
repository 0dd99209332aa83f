// sluicectl: what the agent knows and decides, from its admin endpoint; with
// --control, what the control plane serves, from its own.
import * as net from 'node:net';
import { EXIT, type ParsedCommandLine, UsageError, runProgram } from '../command-line';
import { AdminError, type AdminEndpoint, addressProblem, adminGet } from './admin-client';
import {
  AGENT_SHAPES,
  type Status,
  type TraceView,
  certsTable,
  loggingTable,
  configTable,
  connectionsTable,
  mapsTable,
  policiesTable,
  servicesTable,
  statusTable,
  traceAllows,
  traceTable,
  workloadsTable,
} from './agent-views';
import { type Shape, shapeProblem } from './answer-shape';
import { TARGET, ctlProgram } from './command-line';
import { AGENTS_SHAPE, CONTROL_STATUS_SHAPE, RESOURCES_SHAPE, controlAgentsTable, controlResourcesTable, controlStatusTable } from './control-views';
import { render, type OutputFormat } from './output';

interface View {
  path: string;
  shape: Shape;
  table: (d: never) => string;
  /** What -o json|yaml shows, when it is not the whole answer. */
  pick?: (d: never) => unknown;
}

const agentView = (path: string, table: (d: never) => string, pick?: (d: never) => unknown): View => ({ path, shape: AGENT_SHAPES[path], table, ...(pick ? { pick } : {}) });

const AGENT_VIEWS: Record<string, View> = {
  status: agentView('/status', statusTable as (d: never) => string),
  maps: agentView('/maps', mapsTable as (d: never) => string),
  connections: agentView('/connections', connectionsTable as (d: never) => string),
  config: agentView('/status', configTable as (d: never) => string, ((s: Status) => s.config) as (d: never) => unknown),
  workloads: agentView('/workloads', workloadsTable as (d: never) => string),
  services: agentView('/services', servicesTable as (d: never) => string),
  policies: agentView('/policies', policiesTable as (d: never) => string),
  trace: agentView('/trace', traceTable as (d: never) => string),
  certs: agentView('/certs', certsTable as (d: never) => string),
  log: agentView('/logging', loggingTable as (d: never) => string),
  'access-log': agentView('/logging', loggingTable as (d: never) => string),
};

const CONTROL_VIEWS: Record<string, View> = {
  status: { path: '/status', shape: CONTROL_STATUS_SHAPE, table: controlStatusTable as (d: never) => string },
  resources: { path: '/resources', shape: RESOURCES_SHAPE, table: controlResourcesTable as (d: never) => string },
  agents: { path: '/agents', shape: AGENTS_SHAPE, table: controlAgentsTable as (d: never) => string },
};

/** The admin endpoint a command reads: the agent's (--admin) or the control plane's (--control). */
function endpointFor(p: ParsedCommandLine): AdminEndpoint {
  const control = p.values.control as string | undefined;
  const target = TARGET[p.command];
  let endpoint: AdminEndpoint;
  if (target === 'control' || (target === 'either' && control !== undefined)) {
    endpoint = { address: control ?? (process.env.SLUICE_CONTROL_ADMIN || '/run/sluice/control.sock'), what: 'control plane', flag: '--control' };
  } else {
    if (control !== undefined) throw new UsageError(`"${p.command}" asks an agent; with --control the commands are status, resources and agents`, p.command);
    endpoint = { address: (p.values.admin as string | undefined) ?? (process.env.SLUICE_ADMIN || '/run/sluice/admin.sock'), what: 'agent', flag: '--admin' };
  }
  const problem = endpoint.address ? addressProblem(endpoint.address) : 'needs a value';
  if (problem) throw new UsageError(`${endpoint.flag}: ${problem}`, p.command);
  return endpoint;
}

/** Checks trace's --from and --to; returns the query string. Throws UsageError (exit 2). */
function traceQuery(p: ParsedCommandLine): string {
  const from = p.values.from as string | undefined;
  const to = p.values.to as string | undefined;
  if (!from || !to) throw new UsageError('trace needs --from NAMESPACE/POD and --to IP:PORT', 'trace');
  if (!/^[^/\s]+\/[^/\s]+$/.test(from)) throw new UsageError(`--from ${JSON.stringify(from)}: expected NAMESPACE/POD`, 'trace');
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(to);
  const ip = m?.[1] ?? m?.[2] ?? '';
  if (!m || net.isIP(ip) === 0 || Number(m[3]) < 1 || Number(m[3]) > 65535) {
    throw new UsageError(`--to ${JSON.stringify(to)}: expected IP:PORT (an IPv4 address, or [IPv6], and a port 1-65535)`, 'trace');
  }
  return new URLSearchParams({ from, to: m[1] ? `${m[1]}:${m[3]}` : to }).toString();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A hint when the answer looks like it came from the other kind of endpoint. */
function wrongEndpointHint(data: unknown, endpoint: AdminEndpoint): string {
  if (!isObject(data)) return '';
  if (endpoint.what === 'agent' && ('streams' in data || 'manifests' in data)) return ' (that is a control plane: use --control)';
  if (endpoint.what === 'control plane' && 'bpf' in data) return ' (that is an agent: use --admin)';
  return '';
}

/** log --level and access-log on|off change the agent's logging (POST /logging); plain "log" only reads. */
function loggingChange(p: ParsedCommandLine): string | undefined {
  if (p.command === 'access-log') return new URLSearchParams({ access_log: String(p.args[0]) }).toString();
  if (p.command === 'log' && typeof p.values.level === 'string') return new URLSearchParams({ level: p.values.level }).toString();
  return undefined;
}

async function run(p: ParsedCommandLine): Promise<number> {
  const change = loggingChange(p);
  const query = p.command === 'trace' ? traceQuery(p) : change ?? '';
  const endpoint = endpointFor(p);
  const view = (endpoint.what === 'agent' ? AGENT_VIEWS : CONTROL_VIEWS)[p.command];
  const format = (p.values.output as OutputFormat | undefined) ?? 'table';
  const data = await adminGet(endpoint, query ? `${view.path}?${query}` : view.path, undefined, change ? 'POST' : 'GET');
  const problem = shapeProblem(data, view.shape, view.path.slice(1));
  if (problem) {
    if (isObject(data) && typeof data.error === 'string') throw new AdminError(`the ${endpoint.what} at ${endpoint.address} says: ${data.error}`);
    throw new AdminError(`unexpected answer from the ${endpoint.what} at ${endpoint.address} for ${view.path}: ${problem}${wrongEndpointHint(data, endpoint)}`);
  }
  if (p.command === 'trace') {
    const t = data as TraceView;
    if (t.verdict === 'unknown source') {
      throw new AdminError(`trace: no workload ${t.from} is known to the ${endpoint.what} at ${endpoint.address} (see "sluicectl workloads")`);
    }
  }
  let text: string;
  try {
    // Tables read the whole answer; -o json|yaml shows just what the command is about.
    text = format === 'table' ? view.table(data as never) : render(view.pick ? view.pick(data as never) : data, format, view.table);
  } catch (err) {
    throw new AdminError(`cannot show the answer of the ${endpoint.what} at ${endpoint.address} for ${view.path}: ${(err as Error).message}`);
  }
  process.stdout.write(text);
  if (p.command === 'trace') return traceAllows((data as TraceView).verdict) ? EXIT.OK : EXIT.FAILURE;
  return EXIT.OK;
}

const handlers = Object.fromEntries(ctlProgram.commands.map((c) => [c.name, run]));

void runProgram(ctlProgram, process.argv.slice(2), handlers, {
  classify: (err) => (err instanceof AdminError ? { code: EXIT.FAILURE, message: err.message } : undefined),
});
