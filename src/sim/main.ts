// sluice-sim: runs the simulated cluster (its command line is declared in
// command-line.ts).
import { stringify } from 'yaml';
import { EXIT, type ParsedCommandLine, UsageError, runProgram } from '../command-line';
import { Cluster, RejectedManifestsError, SimError, down } from './cluster';
import { simProgram } from './command-line';
import { requireRoot } from './host';
import { ManifestError, readManifests } from '../control/manifests';

async function main(p: ParsedCommandLine): Promise<number> {
  const name = (p.values.name as string | undefined) ?? (process.env.SLUICE_SIM_NAME || 'demo');
  const files = (p.values.filename as string[] | undefined) ?? [];
  const args = p.args;
  switch (p.command) {
    case 'up': {
      const nodes = Number(p.values.nodes ?? '1');
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new UsageError(`--nodes ${p.values.nodes}: must be 1-16`, 'up');
      const objects = readManifests(files);
      const cluster = await Cluster.up(name, nodes, objects, { image: p.values.image as string | undefined, agentManifest: p.values['agent-manifest'] as string | undefined });
      process.stdout.write(`cluster ${cluster.name} is up: ${nodes} node(s), agents ready. Try "sluice-sim status --name ${cluster.name}".\n`);
      return EXIT.OK;
    }
    case 'apply':
    case 'delete': {
      requireRoot('sluice-sim');
      const objects = readManifests(files);
      const cluster = Cluster.open(name);
      await (p.command === 'apply' ? cluster.apply(objects) : cluster.delete(objects));
      process.stdout.write(`${objects.length} object(s) ${p.command === 'apply' ? 'applied' : 'deleted'}\n`);
      return EXIT.OK;
    }
    case 'exec':
      requireRoot('sluice-sim');
      return Cluster.open(name).exec(args[0], p.rest ?? []);
    case 'status': {
      const status = await Cluster.open(name).status();
      const output = p.values.output ?? 'table';
      if (output === 'json') process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else if (output === 'yaml') process.stdout.write(stringify(status));
      else process.stdout.write(formatStatus(status as StatusView));
      return EXIT.OK;
    }
    case 'agent':
      requireRoot('sluice-sim');
      await Cluster.open(name).agent(args[0], args[1]);
      process.stdout.write(`agent ${args[0]}: ${args[1]} done\n`);
      return EXIT.OK;
    case 'control':
      requireRoot('sluice-sim');
      await Cluster.open(name).control(args[0]);
      process.stdout.write(`control plane: ${args[0]} done\n`);
      return EXIT.OK;
    case 'api-fault': {
      requireRoot('sluice-sim');
      const answer = await Cluster.open(name).apiFault(args[0], args.slice(1));
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      return EXIT.OK;
    }
    case 'ctl':
      return Cluster.open(name).ctl(args[0], p.rest ?? []);
    case 'down': {
      requireRoot('sluice-sim');
      const removed = await down(name);
      process.stdout.write(removed.length ? `removed ${removed.length} item(s) of cluster ${name}\n` : `nothing of cluster ${name} was left\n`);
      return EXIT.OK;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(p.command)}`);
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

const handlers = Object.fromEntries(simProgram.commands.map((c) => [c.name, main]));

void runProgram(simProgram, process.argv.slice(2), handlers, {
  classify: (err) =>
    err instanceof ManifestError || err instanceof RejectedManifestsError
      ? { code: EXIT.USAGE, message: err.message }
      : err instanceof SimError || /needs root/.test(err.message)
        ? { code: EXIT.FAILURE, message: err.message }
        : undefined,
});
