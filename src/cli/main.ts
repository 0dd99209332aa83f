// sluicectl: what the agent knows and decides, from its admin endpoint.
import { adminGet } from './admin-client';
import { bytes, duration, render, table, type OutputFormat } from './output';

const USAGE = `usage: sluicectl [--admin SOCKET|HOST:PORT] [-o table|json|yaml] COMMAND
commands:
  status        agent health, readiness blockers, capture programs, config version
  maps          kernel maps: enrollment, VIPs, live original destinations, counters
  connections   live proxied connections: source pod, VIP, endpoint, bytes, age
  config        where the configuration comes from; xDS state, last ACK/NACK per type
admin defaults to $SLUICE_ADMIN or /run/sluice/admin.sock`;

class UsageError extends Error {}

interface XdsTypeStatus {
  type: string;
  received: number;
  synced: boolean;
  lastAck?: { version: string; nonce: string; at: string };
  lastNack?: { version: string; nonce: string; at: string; reason: string };
}

interface ConfigStatus {
  source: string;
  version: string;
  file?: { file: string; version: string; appliedAt: string; lastError: string; rejected: { name: string; reason: string }[] };
  xds?: { target: string; node: string; state: string; connectedSince: string; lastError: string; types: XdsTypeStatus[] };
}

interface Status {
  node: string;
  ready: boolean;
  pending: string[];
  uptimeSeconds: number;
  proxy: string;
  bpf: { pinRoot?: string; attached: { program: string; reused: boolean }[] };
  config: ConfigStatus;
  enrolled: { workload: string; ips: string[]; preexistingConnections?: number }[];
  activeConnections: number;
  proxyCounters?: Record<string, number>;
}

function statusTable(s: Status): string {
  const lines = [
    `node:         ${s.node}`,
    `ready:        ${s.ready ? 'yes' : `no, waiting for: ${s.pending.join(', ')}`}`,
    `uptime:       ${duration(s.uptimeSeconds * 1000)}`,
    `proxy:        ${s.proxy} (${s.activeConnections} active connections)`,
    `bpf pins:     ${s.bpf.pinRoot ?? '-'}`,
    `programs:     ${s.bpf.attached.map((a) => `${a.program}${a.reused ? ' (kept from previous run)' : ''}`).join(', ') || '-'}`,
    `config:       version ${s.config.version || '-'} from ${s.config.source}`,
  ];
  if (s.config.xds) lines.push(`control plane: ${s.config.xds.state}${s.config.xds.lastError ? ` (last error: ${s.config.xds.lastError})` : ''}`);
  if (s.config.file?.lastError) lines.push(`config error: ${s.config.file.lastError}`);
  for (const r of s.config.file?.rejected ?? []) lines.push(`rejected:     ${r.name}: ${r.reason}`);
  lines.push(`enrolled:     ${s.enrolled.map((e) => e.workload).join(', ') || '(none)'}`);
  for (const e of s.enrolled.filter((x) => x.preexistingConnections)) {
    lines.push(`              ${e.workload}: ${e.preexistingConnections} connection(s) opened before enrollment, left uncaptured`);
  }
  if (s.proxyCounters) lines.push(`proxy:        ${Object.entries(s.proxyCounters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return lines.join('\n') + '\n';
}

interface Maps {
  pinRoot: string;
  enrollment: { netnsCookie: string; workloadId: number; workload: string }[];
  vips: { vip: string; serviceId: number; service: string }[];
  originalDestinations: { tuple: string; originalDst: string; netnsCookie: string }[];
  counters: Record<string, number>;
}

function mapsTable(m: Maps): string {
  return [
    `pins: ${m.pinRoot}\n`,
    'ENROLLMENT (sluice_enroll)',
    table(['NETNS COOKIE', 'ID', 'WORKLOAD'], m.enrollment.map((e) => [String(e.netnsCookie), String(e.workloadId), e.workload || '?'])),
    'SERVICE VIPS (sluice_vips)',
    table(['VIP', 'ID', 'SERVICE'], m.vips.map((v) => [v.vip, String(v.serviceId), v.service || '?'])),
    'ORIGINAL DESTINATIONS not yet taken by the proxy (sluice_tuples)',
    table(['TUPLE', 'ORIGINAL DST', 'NETNS COOKIE'], m.originalDestinations.map((o) => [o.tuple, o.originalDst, String(o.netnsCookie)])),
    'COUNTERS (sluice_counters, all CPUs)',
    table(['COUNTER', 'VALUE'], Object.entries(m.counters).map(([k, v]) => [k, String(v)])),
  ].join('\n');
}

interface Connection {
  id: number;
  source: string;
  sourceAddress: string;
  vip: string;
  service: string;
  endpoint: string;
  state: string;
  ageMs: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}

function connectionsTable(cs: Connection[]): string {
  return table(
    ['ID', 'SOURCE', 'VIP', 'SERVICE', 'ENDPOINT', 'STATE', 'SENT', 'RECEIVED', 'AGE'],
    cs.map((c) => [String(c.id), c.source, c.vip, c.service, c.endpoint || '-', c.state, bytes(c.bytesFromClient), bytes(c.bytesFromEndpoint), duration(c.ageMs)]),
  );
}

function configTable(s: Status): string {
  const c = s.config;
  const lines = [`source:   ${c.source}`, `version:  ${c.version || '-'}`];
  if (c.xds) {
    lines.push(`target:   ${c.xds.target} as node ${c.xds.node}`, `state:    ${c.xds.state}${c.xds.connectedSince ? ` since ${c.xds.connectedSince}` : ''}`);
    if (c.xds.lastError) lines.push(`last error: ${c.xds.lastError}`);
    lines.push(
      '',
      table(
        ['TYPE', 'SYNCED', 'RECEIVED', 'LAST ACK (version/nonce)', 'LAST NACK (version/nonce)', 'NACK REASON'],
        c.xds.types.map((t) => [
          t.type.replace('type.googleapis.com/', ''),
          String(t.synced),
          String(t.received),
          t.lastAck ? `${t.lastAck.version}/${t.lastAck.nonce}` : '-',
          t.lastNack ? `${t.lastNack.version}/${t.lastNack.nonce}` : '-',
          t.lastNack?.reason ?? '',
        ]),
      ),
    );
  }
  if (c.file) {
    lines.push(`file:     ${c.file.file}, applied ${c.file.appliedAt || 'never'}`);
    if (c.file.lastError) lines.push(`error:    ${c.file.lastError}`);
    for (const r of c.file.rejected) lines.push(`rejected: ${r.name}: ${r.reason}`);
  }
  return lines.join('\n') + '\n';
}

const COMMANDS: Record<string, { path: string; table: (d: never) => string; pick?: (d: never) => unknown }> = {
  status: { path: '/status', table: statusTable as (d: never) => string },
  maps: { path: '/maps', table: mapsTable as (d: never) => string },
  connections: { path: '/connections', table: connectionsTable as (d: never) => string },
  config: { path: '/status', table: configTable as (d: never) => string, pick: ((s: Status) => s.config) as (d: never) => unknown },
};

async function main(argv: string[]): Promise<number> {
  let admin = process.env.SLUICE_ADMIN || '/run/sluice/admin.sock';
  let format: OutputFormat = 'table';
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--admin') admin = argv[++i] ?? '';
    else if (a === '-o' || a === '--output') {
      const f = argv[++i];
      if (f !== 'table' && f !== 'json' && f !== 'yaml') throw new UsageError(`-o ${f}: expected table, json or yaml`);
      format = f;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(`unknown flag ${a}`);
    else words.push(a);
  }
  const cmd = COMMANDS[words[0] ?? ''];
  if (!cmd || words.length !== 1) throw new UsageError(words[0] ? `unknown command ${JSON.stringify(words.join(' '))}` : 'a command is required');
  if (!admin) throw new UsageError('--admin needs a value');
  const data = await adminGet(admin, cmd.path);
  // Tables read the whole answer; -o json|yaml shows just what the command is about.
  process.stdout.write(format === 'table' ? cmd.table(data as never) : render(cmd.pick ? cmd.pick(data as never) : data, format, cmd.table));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`sluicectl: ${err.message}${err instanceof UsageError ? `\n${USAGE}` : ''}\n`);
    process.exit(2);
  },
);
