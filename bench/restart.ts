// `npm run bench:restart`: what a client sees while the agents restart or
// are upgraded. In a two-node sim, a client pod on node-1 opens a new
// connection every 10 ms (writes a line, expects it echoed) to a same-node
// and to a cross-node service, and holds one long-lived connection to each;
// meanwhile both nodes' agents are
//
//   upgrade   started anew beside the running one, which hands over its
//             listening sockets and drains (a DaemonSet update with maxSurge)
//   restart   stopped, then started (a crash, or an update without surge)
//   kill -9   killed, then started
//
// For each it prints requests, failures (by error), the longest wait between
// two answered requests, and how the long-lived connections ended. Flags:
// --seconds N (load per scenario, default 10), --name NAME, --quick.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError, runBench } from './options';
import { sleep } from './processes';
import { SimDriver } from './sim-driver';

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const LOAD = path.join(FIXTURES, 'restart-load.js');
/** The same two-node topology as test/e2e/upgrade.test.ts: echo-1 same node, echo-2 across. */
const TOPOLOGY = path.join(FIXTURES, 'restart-topology.yaml');
const SAME_NODE = '10.96.8.1';
const CROSS_NODE = '10.96.8.2';
const USAGE = 'usage: npm run bench:restart -- [--seconds N] [--name NAME] [--quick]';

interface Load {
  requests: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  longestGapMs: number;
}
interface Hold {
  lines: number;
  echoed: number;
  end: string;
}

type Scenario = 'upgrade' | 'restart' | 'kill -9';

function parse(argv: string[]): { seconds: number; name: string } {
  let seconds = 10;
  let name = 'bench-restart';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--seconds') {
      seconds = Number(value());
      if (!Number.isFinite(seconds) || seconds < 4 || seconds > 120) throw new UsageError('--seconds: a number from 4 to 120');
    } else if (a === '--name') name = value();
    else if (a === '--quick') seconds = 6;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown flag ${a}`);
  }
  return { seconds, name };
}

async function main(): Promise<number> {
  const { seconds, name } = parse(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('needs root (it starts a simulated cluster)');
  const sim = new SimDriver(name, () => path.join(ROOT, 'bin', 'sluice-sim'), 'up', { SLUICE_DRAIN_SECONDS: String(seconds + 5) });
  // Leftovers of an interrupted earlier run, by prefix.
  for (const d of fs.readdirSync(os.tmpdir())) if (d.startsWith('sluice-bench-restart-')) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-restart-'));
  const manifest = path.join(dir, 'restart.yaml');
  fs.writeFileSync(manifest, fs.readFileSync(TOPOLOGY, 'utf8').replace(/\{\{FIXTURES\}\}/g, FIXTURES));
  const cleanup = () => {
    sim.downSync();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  sim.downSync();
  try {
    await sim.up(manifest, 2, 120000);
    const rows: string[][] = [];
    for (const scenario of ['upgrade', 'restart', 'kill -9'] as Scenario[]) {
      const ms = seconds * 1000;
      const run = async <T>(args: string[]): Promise<T> => {
        const r = await sim.exec('client', ['node', LOAD, ...args], ms + 60000);
        if (r.code !== 0) throw new Error(`restart-load ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
        return JSON.parse(r.stdout.trim()) as T;
      };
      const holds = [run<Hold>(['hold', SAME_NODE, '80', String(ms + 1000)]), run<Hold>(['hold', CROSS_NODE, '80', String(ms + 1000)])];
      const loads = [run<Load>(['load', SAME_NODE, '80', String(ms)]), run<Load>(['load', CROSS_NODE, '80', String(ms)])];
      await sleep(1500);
      for (const node of ['node-1', 'node-2']) {
        if (scenario === 'kill -9') {
          const pid = (await sim.status()).agents.find((a) => a.node === node)?.pid;
          if (pid) process.kill(pid, 'SIGKILL');
          await sim.must(['agent', node, 'start', '--name', name], 60000);
        } else await sim.must(['agent', node, scenario, '--name', name], 60000);
        await sleep(1000);
      }
      const [l, h] = [await Promise.all(loads), await Promise.all(holds)];
      for (const [i, path_] of ['same node', 'cross node'].entries()) {
        const errors = Object.entries(l[i].errors).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
        rows.push([scenario, path_, String(l[i].requests), String(l[i].failed), errors, `${l[i].longestGapMs} ms`, `${h[i].end}, ${h[i].echoed}/${h[i].lines} echoed`]);
      }
      // The old agents of an upgrade drain until the long-lived connections end: let them.
      await sleep(2000);
    }
    const head = ['scenario', 'path', 'requests', 'failed', 'errors', 'longest gap', 'long-lived connection'];
    const widths = head.map((hd, c) => Math.max(hd.length, ...rows.map((r) => r[c].length)));
    const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
    process.stdout.write(`\nAgents of both nodes, one after the other, under a new connection every 10 ms for ${seconds} s:\n\n`);
    process.stdout.write(`${[line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`);
    return 0;
  } finally {
    cleanup();
  }
}

runBench('bench:restart', USAGE, main);
