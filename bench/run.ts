// `npm run bench`: same-node data-path benchmark of sluice against the direct
// path and HAProxy, in a simulated cluster of its own (sim name "bench").
//
//   S0  client pod -> server pod IP                               (no mesh)
//   S1  client pod -> VIP -> eBPF capture -> sluice node proxy -> server pod
//   S2  client pod -> VIP -> the same capture -> HAProxy mode tcp -> server pod
//
// S2 works because the capture programs and maps stay pinned while the agent
// is stopped: connects to a VIP are still rewritten to <node proxy
// address>:15001, where HAProxy (nbthread 1, no logging, static backend) then
// listens inside the node's netns. Paths are interleaved per round
// (S0, S1, S2, S0, S1, S2, ...); every figure is reported as median (min-max)
// over rounds and as per-round paired ratios. See docs/benchmarks.md.
//
// Flags: --quick | --rounds N | --duration S | --iperf-time S | --warmup S |
//        --only throughput,rr,http | --relay splice|stream | --haproxy-splice |
//        --with-stream-relay (adds path S1s: sluice relaying in JS) |
//        --no-snapshot | --name NAME | --out DIR
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstLine, killPid, live, sleep, type CmdResult } from './processes';
import { Haproxy } from './haproxy';
import { SimDriver, cpuUsec, machineBusyUs, setSysctls } from './sim-driver';
import { parseCommonOptions, runBench, UsageError, type CommonOptions } from './options';
import { fmt, paired, spread, type Spread } from './stats';
import { alignedTable, judgeTarget, signedCell, spreadCell, targetCells, type TargetResult } from './summary-table';
import { meshedNamespaceYaml, podYaml, serviceYaml } from './topology-yaml';

const ROOT = path.resolve(__dirname, '..', '..');
/**
 * The tree the sim, agent and driver run from: by default a private copy of
 * the built project (dist/, bin/, proto/, build/bpf, the addon), so that a
 * rebuild in the work tree during a run cannot mix two builds in one result.
 */
let TREE = ROOT;
const simBin = () => path.join(TREE, 'bin', 'sluice-sim');
const driverJs = () => path.join(TREE, 'dist', 'bench', 'open-loop-driver.js');
const rrServerJs = () => path.join(TREE, 'dist', 'bench', 'rr-server.js');
const NEEDED = ['bin/sluice-sim', 'dist/bench/open-loop-driver.js', 'dist/bench/rr-server.js', 'dist/src/agent/main.js', 'dist/src/sim/main.js', 'build/bpf/sluice.bpf.o', 'build/native/Release/sluice.node'];
const NODE = 'node-1';
const NS = 'bench';
const PROXY_PORT = 15001;
const ALL_PATHS = ['S0', 'S1', 'S1s', 'S2'] as const;
type PathId = (typeof ALL_PATHS)[number];
/** Paths of this run: S1s (sluice with its JS stream relay) only with --with-stream-relay. */
let PATHS: PathId[] = ['S0', 'S1', 'S2'];
const isSluice = (p: PathId) => p === 'S1' || p === 'S1s';
/** A run during which this much CPU (cores) went to work outside the sim is flagged as disturbed. */
const DISTURBED_CORES = 0.5;
type GroupId = 'throughput' | 'rr' | 'http';
const GROUPS: GroupId[] = ['throughput', 'rr', 'http'];

const USAGE = `usage: npm run bench -- [--quick] [--rounds N] [--duration S] [--iperf-time S] [--warmup S]
                        [--only throughput,rr,http] [--relay splice|stream] [--haproxy-splice]
                        [--with-stream-relay] [--no-snapshot] [--name NAME] [--out DIR]
  --quick        smoke run: 1 round, 1 s windows, 2 s iperf (about a minute)
  --rounds N     rounds of S0,S1,S2 per metric group (default 3)
  --duration S   measured seconds per driver / wrk window (default 5)
  --iperf-time S iperf3 seconds per run, after 1 s omitted (default 10)
  --warmup S     unmeasured seconds before each driver / wrk window (default 1)
  --only LIST    metric groups to run (default all: throughput,rr,http)
  --relay MODE   the agent's relay (SLUICE_RELAY=splice|stream; default: the agent's default)
  --haproxy-splice  give HAProxy "option splice-auto" too (default: plain mode tcp)
  --with-stream-relay  add path S1s: sluice with SLUICE_RELAY=stream, interleaved after S1
  --no-snapshot  run the work tree's build in place instead of a private copy of it
  --name NAME    sluice-sim cluster name (default bench; it is taken down at the end)
  --out DIR      where the JSON goes (default bench-results/)`;

interface Options extends CommonOptions {
  groups: GroupId[];
  relay?: 'splice' | 'stream';
  haproxySplice: boolean;
  withStreamRelay: boolean;
  snapshot: boolean;
}

function parseOptions(argv: string[]): Options {
  let groups: GroupId[] = GROUPS;
  let relay: Options['relay'];
  let haproxySplice = false;
  let snapshot = true;
  let withStreamRelay = false;
  const common = parseCommonOptions(argv, { name: 'bench', root: ROOT, usage: USAGE }, (a, value) => {
    if (a === '--haproxy-splice') haproxySplice = true;
    else if (a === '--no-snapshot') snapshot = false;
    else if (a === '--with-stream-relay') withStreamRelay = true;
    else if (a === '--relay') {
      const v = value();
      if (v !== 'splice' && v !== 'stream') throw new UsageError('--relay: splice or stream');
      relay = v;
    } else if (a === '--only') {
      const gs = value().split(',').filter(Boolean);
      for (const g of gs) if (!GROUPS.includes(g as GroupId)) throw new UsageError(`--only: unknown group ${g} (${GROUPS.join(', ')})`);
      groups = GROUPS.filter((g) => gs.includes(g));
    } else return false;
    return true;
  });
  if (withStreamRelay && relay === 'stream') throw new UsageError('--with-stream-relay compares against the default relay: leave out --relay stream');
  return { ...common, groups, relay, haproxySplice, withStreamRelay, snapshot };
}

// ---------------------------------------------------------------- the sim

// ---------------------------------------------------------------- HAProxy (S2)


// ---------------------------------------------------------------- metrics

interface MetricDef {
  id: string;
  group: GroupId;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  sluiceAndHaproxyOnly?: boolean; // a data-plane figure: no S0
  target?: { kind: 'S1/S2' | 'S1-S0'; op: '>=' | '<='; value: number; text: string }[];
}

const METRICS: MetricDef[] = [
  { id: 'throughput_gbps', group: 'throughput', label: 'throughput, 1 stream (iperf3)', unit: 'Gbit/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 1.0, text: 'S1/S2 >= 1.0' }] },
  { id: 'throughput_cpu_s_per_gb', group: 'throughput', label: 'data-plane CPU during iperf3', unit: 'CPU s/GB', better: 'lower', sluiceAndHaproxyOnly: true },
  { id: 'rr1k_p50_us', group: 'rr', label: 'p50, 1000 rps x 4 conns', unit: 'us', better: 'lower', target: [{ kind: 'S1/S2', op: '<=', value: 1.0, text: 'S1/S2 <= 1.0' }, { kind: 'S1-S0', op: '<=', value: 20, text: '+20 us vs S0' }] },
  { id: 'rr1k_p99_us', group: 'rr', label: 'p99, 1000 rps x 4 conns', unit: 'us', better: 'lower', target: [{ kind: 'S1-S0', op: '<=', value: 60, text: '+60 us vs S0' }] },
  { id: 'rr1k_cpu_ms_per_1k', group: 'rr', label: 'data-plane CPU, 1000 rps', unit: 'CPU ms/1k req', better: 'lower', sluiceAndHaproxyOnly: true },
  { id: 'rr5k_p50_us', group: 'rr', label: 'p50, 5000 rps x 16 conns', unit: 'us', better: 'lower', target: [{ kind: 'S1/S2', op: '<=', value: 1.0, text: 'S1/S2 <= 1.0' }] },
  { id: 'rr5k_p99_us', group: 'rr', label: 'p99, 5000 rps x 16 conns', unit: 'us', better: 'lower' },
  { id: 'rr5k_rps', group: 'rr', label: 'achieved rate, 5000 rps offered', unit: 'req/s', better: 'higher' },
  { id: 'conn_c1_cps', group: 'rr', label: 'connect-request-close, conc 1', unit: 'conn/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 0.95, text: 'S1/S2 >= 0.95' }] },
  { id: 'conn_c8_cps', group: 'rr', label: 'connect-request-close, conc 8', unit: 'conn/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 0.95, text: 'S1/S2 >= 0.95' }] },
  { id: 'conn_c32_cps', group: 'rr', label: 'connect-request-close, conc 32', unit: 'conn/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 0.95, text: 'S1/S2 >= 0.95' }] },
  { id: 'wrk_rps', group: 'http', label: 'max rate, wrk 16 conns -> nginx', unit: 'req/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 1.0, text: 'S1/S2 >= 1.0' }] },
  { id: 'wrk_close_cps', group: 'http', label: 'wrk 8 conns, Connection: close', unit: 'conn/s', better: 'higher', target: [{ kind: 'S1/S2', op: '>=', value: 0.95, text: 'S1/S2 >= 0.95' }] },
];

interface Target {
  host: string;
  port: number;
}

interface Run {
  /** CPU used outside the sim's cgroup during the run (other work, kernel threads), in cores; approximate (tick-sampled). */
  outsideCores?: number;
  disturbed?: boolean;
  round: number;
  path: PathId;
  group: GroupId;
  what: string;
  target: string;
  ok: boolean;
  ms: number;
  values: Record<string, number>;
  result?: unknown;
  error?: string;
}

interface Context {
  opt: Options;
  sim: SimDriver;
  dataPlaneCgroup: (p: PathId) => string | undefined;
}

function parseJsonLine(text: string): Record<string, unknown> | undefined {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function iperf(ctx: Context, p: PathId, t: Target): Promise<Partial<Run>> {
  const cg = ctx.dataPlaneCgroup(p);
  const args = ['iperf3', '-c', t.host, '-p', String(t.port), '-t', String(ctx.opt.iperfTime), '-O', '1', '-J', '--connect-timeout', '3000'];
  for (let attempt = 1; ; attempt++) {
    const cpu0 = cg ? cpuUsec(cg) : NaN;
    const r = await ctx.sim.exec('client', args, (ctx.opt.iperfTime + 30) * 1000);
    const cpu1 = cg ? cpuUsec(cg) : NaN;
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number } }; intervals?: { sum: { bytes: number } }[] } = {};
    try {
      j = JSON.parse(r.stdout);
    } catch {
      j = { error: `no JSON from iperf3 (exit ${r.code}): ${(r.stderr || r.stdout).slice(-300)}` };
    }
    // The iperf3 server takes one test at a time; a test it still thinks runs makes it "busy".
    if (j.error && /busy/i.test(j.error) && attempt < 3) {
      await sleep(2000);
      continue;
    }
    const rcv = j.end?.sum_received;
    if (j.error || !rcv) return { ok: false, ms: r.ms, error: j.error ?? `iperf3 exit ${r.code}`, values: {} };
    const bytesAll = (j.intervals ?? []).reduce((n, i) => n + i.sum.bytes, 0); // omitted second included, as is its CPU
    const values: Record<string, number> = { throughput_gbps: rcv.bits_per_second / 1e9 };
    if (cg && bytesAll > 0) values.throughput_cpu_s_per_gb = (cpu1 - cpu0) / 1e6 / (bytesAll / 1e9);
    return { ok: true, ms: r.ms, values, result: { receivedBps: rcv.bits_per_second, receivedBytes: rcv.bytes, bytesAllIntervals: bytesAll, dataPlaneCpuUs: cpu1 - cpu0 } };
  }
}

async function driver(ctx: Context, p: PathId, t: Target, args: string[], expectSeconds: number): Promise<{ r: CmdResult; j?: Record<string, unknown>; cpuUs: number }> {
  const cg = ctx.dataPlaneCgroup(p);
  const cpu0 = cg ? cpuUsec(cg) : NaN;
  const r = await ctx.sim.exec('client', [process.execPath, driverJs(), '--host', t.host, '--port', String(t.port), ...args], (expectSeconds + 40) * 1000);
  const cpu1 = cg ? cpuUsec(cg) : NaN;
  return { r, j: parseJsonLine(r.stdout), cpuUs: cpu1 - cpu0 };
}

interface DriverRr {
  error?: string;
  scheduled: number;
  completed: number;
  timedOut: number;
  errors: number;
  achievedRps: number;
  latency: { p50Us: number; p99Us: number };
}

async function rr(ctx: Context, p: PathId, t: Target, rate: number, conns: number, prefix: string): Promise<Partial<Run>> {
  const { warmup, duration } = ctx.opt;
  const { r, j, cpuUs } = await driver(ctx, p, t, ['--mode', 'rr', '--rate', String(rate), '--conns', String(conns), '--duration', String(duration), '--warmup', String(warmup)], warmup + duration);
  const d = j as unknown as DriverRr | undefined;
  if (!d || d.error || r.code !== 0) return { ok: false, ms: r.ms, error: d?.error ?? `driver exit ${r.code}: ${r.stderr.slice(-300)}`, values: {}, result: j };
  const values: Record<string, number> = { [`${prefix}_p50_us`]: d.latency.p50Us, [`${prefix}_p99_us`]: d.latency.p99Us, [`${prefix}_rps`]: d.achievedRps };
  if (Number.isFinite(cpuUs)) values[`${prefix}_cpu_ms_per_1k`] = cpuUs / 1000 / ((rate * (warmup + duration)) / 1000);
  const ok = d.errors === 0 && d.timedOut === 0;
  return { ok, ms: r.ms, values, result: { ...j, dataPlaneCpuUs: cpuUs }, error: ok ? undefined : `${d.errors} error(s), ${d.timedOut} unanswered` };
}

async function connRate(ctx: Context, p: PathId, t: Target, concurrency: number): Promise<Partial<Run>> {
  const { warmup, duration } = ctx.opt;
  const { r, j, cpuUs } = await driver(ctx, p, t, ['--mode', 'conn', '--concurrency', String(concurrency), '--duration', String(duration), '--warmup', String(warmup)], warmup + duration);
  const d = j as { error?: string; connPerSec: number; errors: number } | undefined;
  if (!d || d.error || r.code !== 0) return { ok: false, ms: r.ms, error: d?.error ?? `driver exit ${r.code}: ${r.stderr.slice(-300)}`, values: {}, result: j };
  return { ok: d.errors === 0, ms: r.ms, values: { [`conn_c${concurrency}_cps`]: d.connPerSec }, result: { ...j, dataPlaneCpuUs: cpuUs }, error: d.errors ? `${d.errors} failed connection(s)` : undefined };
}

function parseWrk(out: string): { rps: number; requests: number; p50Us: number; p99Us: number; socketErrors: number; non2xx: number } {
  const unit = (v: string, u: string) => Number(v) * ({ us: 1, ms: 1e3, s: 1e6 } as Record<string, number>)[u];
  const lat = (q: string) => {
    const m = new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    return m ? unit(m[1], m[2]) : NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    p50Us: lat('50'),
    p99Us: lat('99'),
    socketErrors: se ? se.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

// About 100 B on the wire, like the driver's requests.
const WRK_PAD = ['-H', `X-Pad: ${'p'.repeat(40)}`];

async function wrk(ctx: Context, t: Target, conns: number, close: boolean, seconds: number, id: string): Promise<Partial<Run>> {
  const args = ['wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '5s', '--latency', ...WRK_PAD, ...(close ? ['-H', 'Connection: close'] : []), `http://${t.host}:${t.port}/1k`];
  const r = await ctx.sim.exec('client', args, (seconds + 30) * 1000);
  const w = parseWrk(r.stdout);
  if (r.code !== 0 || !Number.isFinite(w.rps)) return { ok: false, ms: r.ms, error: `wrk exit ${r.code}: ${(r.stderr || r.stdout).slice(-300)}`, values: {} };
  const ok = w.socketErrors === 0 && w.non2xx === 0;
  return { ok, ms: r.ms, values: { [id]: w.rps }, result: w, error: ok ? undefined : `${w.socketErrors} socket error(s), ${w.non2xx} non-2xx` };
}

// ---------------------------------------------------------------- main

interface Topology {
  netns: string;
  proxyAddress: string;
  nodeCgroup: string;
  pods: Record<string, string>;
  vips: Record<string, string>;
}

function manifest(dir: string): string {
  const www = path.join(dir, 'www');
  fs.mkdirSync(www, { recursive: true });
  fs.writeFileSync(path.join(www, '1k'), 'k'.repeat(1024));
  const nginxConf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    nginxConf,
    [
      'worker_processes 1;',
      'daemon off;',
      'user root;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'nginx-error.log')} warn;`,
      'events { worker_connections 8192; }',
      'http {',
      '  access_log off;',
      '  keepalive_requests 10000000;',
      '  default_type application/octet-stream;',
      `  server { listen 8080 backlog=4096; location / { root ${www}; } }`,
      '}',
      '',
    ].join('\n'),
  );
  const pod = (name: string, command: string[]) => podYaml(NS, name, NODE, command);
  const svc = (name: string, vip: string, port: number, targetPort: number) => serviceYaml(NS, name, vip, port, targetPort);
  const yaml = [
    meshedNamespaceYaml(NS),
    pod('client', ['sleep', 'infinity']),
    pod('iperf', ['iperf3', '-s', '-p', '5201', '--idle-timeout', '60']),
    pod('rr', [process.execPath, rrServerJs(), '7000', '100', '1024']),
    pod('web', ['nginx', '-e', path.join(dir, 'nginx-error.log'), '-c', nginxConf]),
    svc('iperf', '10.96.0.20', 5201, 5201),
    svc('rr', '10.96.0.21', 7000, 7000),
    svc('web', '10.96.0.22', 80, 8080),
  ].join('');
  const file = path.join(dir, 'bench.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

const TARGET_PORTS: Record<GroupId, { pod: string; vipPort: number; podPort: number }> = {
  throughput: { pod: 'iperf', vipPort: 5201, podPort: 5201 },
  rr: { pod: 'rr', vipPort: 7000, podPort: 7000 },
  http: { pod: 'web', vipPort: 80, podPort: 8080 },
};

function preflight(): void {
  if (process.getuid?.() !== 0) throw new UsageError('the benchmark needs root (it runs sluice-sim: netns, cgroups, BPF)');
  for (const f of NEEDED) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new UsageError(`${f} is missing: run "npm run build" first`);
  }
  const missing = ['haproxy', 'iperf3', 'wrk', 'nginx', 'nsenter'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length) throw new UsageError(`missing tools: ${missing.join(', ')}: run scripts/install-deps.sh (Debian: haproxy iperf3 wrk nginx-light)`);
}

/** What was benchmarked: git HEAD, whether the tree is dirty, and a fingerprint of the built agent. */
function buildFingerprint(root = ROOT): { commit: string; dirtyFiles: number; fingerprint: string } {
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', timeout: 10000 }).stdout?.trim() ?? '';
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(js|node|o)$/.test(e.name)) {
        const st = fs.statSync(p);
        hash.update(`${p} ${st.size} ${st.mtimeMs}\n`);
      }
    }
  };
  walk(path.join(root, 'dist', 'src'));
  walk(path.join(root, 'build'));
  return {
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirtyFiles: git(['status', '--porcelain']).split('\n').filter(Boolean).length,
    fingerprint: hash.digest('hex').slice(0, 16),
  };
}

/** Copies what runs (not the sources) to dir/tree; node_modules is linked. */
function snapshotTree(dir: string): string {
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'build', 'native', 'Release'), { recursive: true });
  for (const d of ['dist', 'bin', 'proto', 'build/bpf']) {
    if (fs.existsSync(path.join(ROOT, d))) fs.cpSync(path.join(ROOT, d), path.join(tree, d), { recursive: true, preserveTimestamps: true });
  }
  fs.cpSync(path.join(ROOT, 'build/native/Release/sluice.node'), path.join(tree, 'build/native/Release/sluice.node'), { preserveTimestamps: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(tree, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'));
  for (const f of NEEDED) if (!fs.existsSync(path.join(tree, f))) throw new Error(`snapshot: ${f} is missing (was the tree being rebuilt?)`);
  return tree;
}

function machineFacts(): Record<string, unknown> {
  const cpus = os.cpus();
  let kernelCmd = '';
  try {
    kernelCmd = execFileSync('uname', ['-srvm'], { encoding: 'utf8' }).trim();
  } catch {
    // uname missing
  }
  return {
    nproc: cpus.length,
    cpuModel: cpus[0]?.model ?? '',
    memTotalGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    uname: kernelCmd,
    node: process.version,
    haproxy: firstLine('haproxy', ['-v']),
    iperf3: firstLine('iperf3', ['--version']),
    wrk: firstLine('wrk', ['-v']),
    nginx: firstLine('nginx', ['-v']),
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    date: new Date().toISOString(),
  };
}

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  if (opt.withStreamRelay) PATHS = ['S0', 'S1', 'S1s', 'S2'];
  preflight();
  const started = Date.now();
  const sim = new SimDriver(opt.name, simBin, NS, opt.relay ? { SLUICE_RELAY: opt.relay } : {});
  const buildAtStart = buildFingerprint();
  if (os.loadavg()[0] > 0.7) log(`bench: warning: load average ${os.loadavg()[0].toFixed(2)} before the start: something else is running, figures will be noisy`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  fs.chmodSync(dir, 0o755);
  if (opt.snapshot) {
    try {
      TREE = snapshotTree(dir);
      if (buildFingerprint().fingerprint !== buildAtStart.fingerprint) throw new Error('the build in the work tree changed while it was being copied (a rebuild is running?): try again');
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
  let haproxy: Haproxy | undefined;
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    haproxy?.stopSync();
    for (const [pid] of live) killPid(pid, 'SIGKILL');
    process.stderr.write(`bench: taking down sim ${opt.name}\n`);
    sim.downSync();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  try {
    const facts = machineFacts();
    log(`bench: ${opt.quick ? 'quick' : 'full'} run, ${opt.rounds} round(s), ${opt.duration} s windows, iperf ${opt.iperfTime} s, warm-up ${opt.warmup} s, groups ${opt.groups.join(',')}`);
    log(`bench: starting sim ${opt.name}`);
    await sim.up(manifest(dir), 1, 180000);
    const st = await sim.status();
    const node = st.nodes.find((n) => n.name === NODE)!;
    const client = st.pods.find((p) => p.namespace === NS && p.name === 'client')!;
    if (!client.enrolled) throw new Error('the client pod is not enrolled in the mesh');
    for (const p of st.pods) if (!p.running) throw new Error(`pod ${p.namespace}/${p.name} is not running`);
    const topo: Topology = {
      netns: node.netns,
      proxyAddress: node.proxyAddress,
      nodeCgroup: node.cgroup,
      pods: Object.fromEntries(st.pods.map((p) => [p.name, p.ip])),
      vips: Object.fromEntries(st.services.map((s) => [s.name, s.clusterIPs[0]])),
    };
    await setSysctls(client.netns);
    await setSysctls(node.netns);
    haproxy = new Haproxy('s2', dir, node.netns, path.join(node.cgroup, 'bench-haproxy'), opt.haproxySplice ? ['option splice-auto'] : []);
    const hp = haproxy;
    const simCgroup = path.dirname(node.cgroup);
    const ctx: Context = {
      opt,
      sim,
      dataPlaneCgroup: (p) => (isSluice(p) ? path.join(node.cgroup, 'agent') : p === 'S2' ? hp.cgroup : undefined),
    };
    // Give the servers a moment to listen (pods start after enrollment).
    await waitListening(sim, topo);

    // The agent as it runs now: with its configured relay (S1), with the JS
    // stream relay (S1s), or stopped (S2; capture stays pinned).
    let agent: 'S1' | 'S1s' | 'stopped' = 'S1';
    const usePath = async (p: PathId, backend: string) => {
      if (p === 'S0') {
        await hp.stop();
      } else if (isSluice(p)) {
        await hp.stop();
        if (agent !== p) {
          if (agent !== 'stopped') await sim.agent(NODE, 'stop');
          await sim.agent(NODE, 'start', p === 'S1s' ? { SLUICE_RELAY: 'stream' } : {});
          agent = p as 'S1' | 'S1s';
        }
      } else {
        if (agent !== 'stopped') {
          await sim.agent(NODE, 'stop');
          agent = 'stopped';
        }
        const bind = `${node.proxyAddress}:${PROXY_PORT}`;
        if (!hp.alive || hp.running.server !== backend) await hp.start(bind, backend);
      }
    };

    const runs: Run[] = [];
    const checks: { round: number; group: GroupId; path: PathId; what: string; before: number; after: number }[] = [];
    for (let round = 1; round <= opt.rounds; round++) {
      for (const group of opt.groups) {
        const tp = TARGET_PORTS[group];
        const backend = `${topo.pods[tp.pod]}:${tp.podPort}`;
        for (const p of PATHS) {
          const t: Target = p === 'S0' ? { host: topo.pods[tp.pod], port: tp.podPort } : { host: topo.vips[tp.pod], port: tp.vipPort };
          await usePath(p, backend);
          const before = isSluice(p) ? (await sim.agentStatus(NODE)).proxyCounters?.relayed ?? NaN : p === 'S2' ? (await hp.info()).cumConns : NaN;
          let mark = { busy: machineBusyUs(), sim: cpuUsec(simCgroup), at: Date.now() };
          const record = (what: string, r: Partial<Run>) => {
            const now = { busy: machineBusyUs(), sim: cpuUsec(simCgroup), at: Date.now() };
            const outsideCores = Math.round(((now.busy - mark.busy - (now.sim - mark.sim)) / 1e3 / Math.max(1, now.at - mark.at)) * 100) / 100;
            mark = now;
            const disturbed = outsideCores > DISTURBED_CORES;
            const run: Run = { round, path: p, group, what, target: `${t.host}:${t.port}`, ok: r.ok ?? false, ms: r.ms ?? 0, values: r.values ?? {}, result: r.result, error: r.error, outsideCores, disturbed };
            runs.push(run);
            const shown = Object.entries(run.values)
              .map(([k, v]) => `${k}=${fmt(v, 4)}`)
              .join(' ');
            log(`  round ${round} ${p.padEnd(3)} ${what.padEnd(16)} ${shown}  (outside cpu ${outsideCores}${disturbed ? ', DISTURBED' : ''})${run.error ? `  [${run.error}]` : ''}`);
          };
          if (group === 'throughput') {
            record('iperf3', await iperf(ctx, p, t));
          } else if (group === 'rr') {
            record('rr 1000x4', await rr(ctx, p, t, 1000, 4, 'rr1k'));
            record('rr 5000x16', await rr(ctx, p, t, 5000, 16, 'rr5k'));
            for (const c of [1, 8, 32]) record(`conn c${c}`, await connRate(ctx, p, t, c));
          } else {
            if (opt.warmup > 0) await wrk(ctx, t, 16, false, Math.max(1, Math.round(opt.warmup)), 'warmup');
            record('wrk c16', await wrk(ctx, t, 16, false, Math.max(1, Math.round(opt.duration)), 'wrk_rps'));
            record('wrk close c8', await wrk(ctx, t, 8, true, Math.max(1, Math.round(opt.duration)), 'wrk_close_cps'));
          }
          if (p !== 'S0') {
            const after = isSluice(p) ? (await sim.agentStatus(NODE)).proxyCounters?.relayed ?? NaN : (await hp.info()).cumConns;
            checks.push({ round, group, path: p, what: isSluice(p) ? 'sluice proxy counters.relayed' : 'haproxy CumConns', before, after });
            if (!(after > before)) throw new Error(`${p} ${group} round ${round}: the traffic did not go through ${isSluice(p) ? 'the sluice proxy' : 'HAProxy'} (${before} -> ${after})`);
          }
        }
      }
    }
    await hp.stop();

    const summary = summarize(runs, opt);
    const finished = Date.now();
    const buildAtEnd = buildFingerprint();
    // Only a run in place can mix builds; a snapshot run notes a newer work tree.
    const buildChanged = !opt.snapshot && buildAtEnd.fingerprint !== buildAtStart.fingerprint;
    const report = {
      tool: 'sluice bench (same node)',
      command: `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      elapsedS: Math.round((finished - started) / 100) / 10,
      options: opt,
      machine: { ...facts, loadavgAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) },
      build: {
        benchmarked: buildAtStart,
        ranFrom: opt.snapshot ? 'a private copy of the work tree build, taken at the start' : 'the work tree, in place',
        workTreeAtEnd: buildAtEnd,
        changedDuringRun: buildChanged,
      },
      configuration: {
        agentRelay: opt.relay ?? 'agent default',
        haproxy: `mode tcp, nbthread 1, no log, maxconn 4000${opt.haproxySplice ? ', option splice-auto' : ''}`,
        sysctls: 'net.ipv4.tcp_tw_reuse=1 and ip_local_port_range 20000-60999 in the client pod and node netns (sim-created)',
      },
      paths: {
        ...(opt.withStreamRelay ? { S1s: 'as S1, the agent started with SLUICE_RELAY=stream (bytes relayed in JS)' } : {}),
        S0: 'client pod -> server pod IP (no mesh)',
        S1: 'client pod -> VIP -> eBPF capture (connect4) -> sluice node proxy (agent) -> server pod',
        S2: 'client pod -> VIP -> the same eBPF capture -> HAProxy mode tcp, nbthread 1, no logging -> server pod',
      },
      topology: topo,
      ratioMethod: 'per-round paired ratio (S1 of round i / S2 of round i), then median (min-max) over rounds; added latency likewise S1 - S0 per round',
      metrics: summary,
      checks,
      runs,
    };
    fs.mkdirSync(opt.out, { recursive: true });
    const file = path.join(opt.out, `${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${renderTable(summary, facts, opt, `${buildAtStart.commit}${buildAtStart.dirtyFiles ? ` + ${buildAtStart.dirtyFiles} uncommitted file(s)` : ''}`)}\n`);
    const outside = spread(runs.map((r) => r.outsideCores ?? NaN));
    const disturbed = runs.filter((r) => r.disturbed);
    process.stdout.write(
      `\nCPU used outside the sim during the runs (other work, kernel threads; tick-sampled, +-0.4): median ${fmt(outside.median)} (${fmt(outside.min)}-${fmt(outside.max)}) of ${os.cpus().length} cores` +
        (disturbed.length ? `\n${disturbed.length} run(s) were disturbed (> ${DISTURBED_CORES} core outside): ${disturbed.map((r) => `round ${r.round} ${r.path} ${r.what}`).join('; ')}` : '') +
        '\n',
    );
    const failed = runs.filter((r) => !r.ok);
    if (failed.length) process.stdout.write(`\n${failed.length} run(s) had errors (see "runs" in the JSON): ${failed.map((r) => `round ${r.round} ${r.path} ${r.what}: ${r.error}`).join('; ')}\n`);
    if (buildChanged) process.stdout.write(`\nWARNING: the sluice build (dist/, native addon or git HEAD) changed during the run: the figures mix builds; run again.\n`);
    process.stdout.write(`\nresults: ${path.relative(process.cwd(), file) || file}\nelapsed: ${report.elapsedS} s\n`);
    return 0;
  } finally {
    cleanup();
  }
}

async function waitListening(sim: SimDriver, topo: Topology): Promise<void> {
  // Each server answers a connect on its pod IP (S0 path) within 10 s.
  const probes: [string, number][] = [
    [topo.pods.iperf, 5201],
    [topo.pods.rr, 7000],
    [topo.pods.web, 8080],
  ];
  const script = `const net=require('net');const [h,p]=process.argv.slice(1);const end=Date.now()+10000;(function t(){const s=net.connect({host:h,port:+p});s.on('connect',()=>{s.destroy();process.exit(0)});s.on('error',()=>{if(Date.now()>end)process.exit(1);setTimeout(t,100)})})()`;
  for (const [host, port] of probes) {
    const r = await sim.exec('client', [process.execPath, '-e', script, host, String(port)], 20000);
    if (r.code !== 0) throw new Error(`server ${host}:${port} is not listening after 10 s`);
  }
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

// ---------------------------------------------------------------- summary

interface MetricSummary {
  id: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  samples: Partial<Record<PathId, (number | undefined)[]>>;
  raw: Partial<Record<PathId, Spread>>;
  ratios: { 'S1/S2'?: Spread; 'S1/S0'?: Spread; 'S2/S0'?: Spread; 'S1s/S2'?: Spread; 'S1/S1s'?: Spread };
  addedUs?: { S1?: Spread; S1s?: Spread; S2?: Spread };
  /** Samples taken while other work used the machine (see outsideCores), per path. */
  disturbed: Partial<Record<PathId, number>>;
  targets: TargetResult[];
}

function summarize(runs: Run[], opt: Options): MetricSummary[] {
  const out: MetricSummary[] = [];
  for (const m of METRICS) {
    if (!opt.groups.includes(m.group)) continue;
    const paths = PATHS.filter((p) => !(m.sluiceAndHaproxyOnly && p === 'S0'));
    const samples: Partial<Record<PathId, (number | undefined)[]>> = {};
    for (const p of paths) {
      samples[p] = Array.from({ length: opt.rounds }, (_, i) => runs.find((r) => r.round === i + 1 && r.path === p && r.values[m.id] !== undefined)?.values[m.id]);
    }
    const raw: Partial<Record<PathId, Spread>> = {};
    for (const p of paths) raw[p] = spread((samples[p] ?? []).filter((x): x is number => x !== undefined));
    const ratio = (a: PathId, b: PathId) => (samples[a] && samples[b] ? spread(paired(samples[a]!, samples[b]!, (x, y) => x / y)) : undefined);
    const s: MetricSummary = {
      id: m.id,
      label: m.label,
      unit: m.unit,
      better: m.better,
      samples,
      raw,
      ratios: { 'S1/S2': ratio('S1', 'S2'), 'S1/S0': ratio('S1', 'S0'), 'S2/S0': ratio('S2', 'S0'), ...(samples.S1s ? { 'S1s/S2': ratio('S1s', 'S2'), 'S1/S1s': ratio('S1', 'S1s') } : {}) },
      targets: [],
      disturbed: Object.fromEntries(paths.map((p) => [p, runs.filter((r) => r.path === p && r.disturbed && r.values[m.id] !== undefined).length])),
    };
    if (m.unit === 'us' && samples.S0) {
      const added = (p: PathId) => (samples[p] ? spread(paired(samples[p]!, samples.S0!, (x, y) => x - y)) : undefined);
      s.addedUs = { S1: added('S1'), S2: added('S2'), ...(samples.S1s ? { S1s: added('S1s') } : {}) };
    }
    for (const t of m.target ?? []) s.targets.push(judgeTarget(t.text, t.op, t.value, t.kind === 'S1/S2' ? s.ratios['S1/S2']?.median : s.addedUs?.S1?.median));
    out.push(s);
  }
  return out;
}

function renderTable(metrics: MetricSummary[], facts: Record<string, unknown>, opt: Options, build: string): string {
  const cell = spreadCell;
  const stream = PATHS.includes('S1s');
  const rows: string[][] = [
    ['metric', 'unit', 'S0 direct', 'S1 sluice', ...(stream ? ['S1s sluice stream'] : []), 'S2 haproxy', 'S1/S2', 'S1/S0', 'S1-S0 us', ...(stream ? ['S1/S1s'] : []), 'target', 'met'],
  ];
  for (const m of metrics) {
    rows.push([
      m.label,
      m.unit,
      cell(m.raw.S0, 4),
      cell(m.raw.S1, 4),
      ...(stream ? [cell(m.raw.S1s, 4)] : []),
      cell(m.raw.S2, 4),
      cell(m.ratios['S1/S2']),
      cell(m.ratios['S1/S0']),
      m.addedUs ? signedCell(m.addedUs.S1) : '-',
      ...(stream ? [cell(m.ratios['S1/S1s'])] : []),
      ...targetCells(m.targets),
    ]);
  }
  const head = `same-node paths, ${opt.rounds} round(s) interleaved ${PATHS.join(',')}; median (min-max); ratios paired per round
machine: ${facts.nproc} cores, ${facts.cpuModel}, kernel ${facts.kernel}, node ${facts.node}, ${facts.haproxy}
sluice ${build}, relay: ${opt.relay ?? 'agent default'}; HAProxy: mode tcp, nbthread 1, no log${opt.haproxySplice ? ', splice-auto' : ', no splice'}`;
  return [head, '', alignedTable(rows, true)].join('\n');
}

runBench('bench', USAGE, main);
