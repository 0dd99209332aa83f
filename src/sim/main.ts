// sluice-sim command line. The forms below are a contract used by tests and
// outside tools; keep them stable.
import { stringify } from 'yaml';
import { Cluster, SimError, down } from './cluster';
import { requireRoot } from './host';
import { ManifestError, readManifests } from '../control/manifests';

const USAGE = `usage:
  sluice-sim up -f FILE... [--nodes N] [--name NAME]
  sluice-sim apply -f FILE... [--name NAME]
  sluice-sim delete -f FILE... [--name NAME]
  sluice-sim exec NAMESPACE/POD [--name NAME] -- CMD [ARGS...]
  sluice-sim status [-o json|yaml] [--name NAME]
  sluice-sim agent NODE stop|start|restart [--name NAME]
  sluice-sim control stop|start|restart [--name NAME]
  sluice-sim ctl NODE [--name NAME] -- SLUICECTL-ARGS...
  sluice-sim down [--name NAME]
NAME defaults to $SLUICE_SIM_NAME or "demo".`;

interface Parsed {
  positional: string[];
  files: string[];
  nodes: number;
  name: string;
  output: string;
  rest: string[];
}

function parse(argv: string[]): Parsed {
  const p: Parsed = { positional: [], files: [], nodes: 1, name: process.env.SLUICE_SIM_NAME || 'demo', output: 'table', rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new SimError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--') {
      p.rest = argv.slice(i + 1);
      break;
    } else if (a === '-f' || a === '--filename') {
      p.files.push(value());
      // -f a.yaml b.yaml: take following non-flag words as files too
      while (argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) p.files.push(argv[++i]);
    } else if (a === '--nodes') p.nodes = Number(value());
    else if (a === '--name') p.name = value();
    else if (a === '-o' || a === '--output') p.output = value();
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a.startsWith('-')) throw new SimError(`unknown flag ${a}\n${USAGE}`);
    else p.positional.push(a);
  }
  return p;
}

function needFiles(p: Parsed, verb: string): void {
  if (p.files.length === 0) throw new SimError(`${verb} needs -f FILE\n${USAGE}`);
}

async function main(argv: string[]): Promise<number> {
  const p = parse(argv);
  const [verb, ...args] = p.positional;
  switch (verb) {
    case 'up': {
      needFiles(p, 'up');
      const objects = readManifests(p.files);
      const cluster = await Cluster.up(p.name, p.nodes, objects);
      process.stdout.write(`cluster ${cluster.name} is up: ${p.nodes} node(s), agents ready. Try "sluice-sim status --name ${cluster.name}".\n`);
      return 0;
    }
    case 'apply':
    case 'delete': {
      needFiles(p, verb);
      requireRoot('sluice-sim');
      const objects = readManifests(p.files);
      const cluster = Cluster.open(p.name);
      await (verb === 'apply' ? cluster.apply(objects) : cluster.delete(objects));
      process.stdout.write(`${objects.length} object(s) ${verb === 'apply' ? 'applied' : 'deleted'}\n`);
      return 0;
    }
    case 'exec': {
      if (args.length !== 1 || p.rest.length === 0) throw new SimError(`usage: sluice-sim exec NAMESPACE/POD -- CMD [ARGS...]`);
      requireRoot('sluice-sim');
      return Cluster.open(p.name).exec(args[0], p.rest);
    }
    case 'status': {
      const status = await Cluster.open(p.name).status();
      if (p.output === 'json') process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else if (p.output === 'yaml') process.stdout.write(stringify(status));
      else process.stdout.write(formatStatus(status as StatusView));
      return 0;
    }
    case 'agent': {
      if (args.length !== 2) throw new SimError('usage: sluice-sim agent NODE stop|start|restart');
      requireRoot('sluice-sim');
      await Cluster.open(p.name).agent(args[0], args[1]);
      process.stdout.write(`agent ${args[0]}: ${args[1]} done\n`);
      return 0;
    }
    case 'control': {
      if (args.length !== 1) throw new SimError('usage: sluice-sim control stop|start|restart');
      requireRoot('sluice-sim');
      await Cluster.open(p.name).control(args[0]);
      process.stdout.write(`control plane: ${args[0]} done\n`);
      return 0;
    }
    case 'ctl': {
      if (args.length !== 1) throw new SimError('usage: sluice-sim ctl NODE -- SLUICECTL-ARGS...');
      return Cluster.open(p.name).ctl(args[0], p.rest);
    }
    case 'down': {
      requireRoot('sluice-sim');
      const removed = await down(p.name);
      process.stdout.write(removed.length ? `removed ${removed.length} item(s) of cluster ${p.name}\n` : `nothing of cluster ${p.name} was left\n`);
      return 0;
    }
    default:
      throw new SimError(verb ? `unknown command ${JSON.stringify(verb)}\n${USAGE}` : USAGE);
  }
}

interface StatusView {
  name: string;
  control: { address: string; pid: number | null; alive: boolean; version: string };
  agents: { node: string; pid: number | null; alive: boolean; ready: boolean }[];
  pods: { namespace: string; name: string; node: string; ip: string; enrolled: boolean; running: boolean }[];
  services: { namespace: string; name: string; clusterIPs: string[]; ports: string[]; endpoints: string[] }[];
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

function formatStatus(s: StatusView): string {
  return [
    `cluster ${s.name}, control plane ${s.control.address} (${s.control.alive ? `pid ${s.control.pid}, version ${s.control.version}` : 'stopped'})\n`,
    table([['NODE', 'AGENT PID', 'ALIVE', 'READY'], ...s.agents.map((a) => [a.node, String(a.pid ?? '-'), String(a.alive), String(a.ready)])]),
    table([['NAMESPACE', 'POD', 'NODE', 'IP', 'RUNNING', 'ENROLLED'], ...s.pods.map((p) => [p.namespace, p.name, p.node, p.ip, String(p.running), String(p.enrolled)])]),
    table([['NAMESPACE', 'SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'], ...s.services.map((v) => [v.namespace, v.name, v.clusterIPs.join(','), v.ports.join(','), v.endpoints.join(',') || '-'])]),
  ].join('\n');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    const known = err instanceof SimError || err instanceof ManifestError || /needs root/.test(err.message);
    process.stderr.write(`sluice-sim: ${known ? err.message : err.stack}\n`);
    process.exit(known ? 2 : 1);
  },
);
