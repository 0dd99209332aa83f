// `npm run bench:cross-node`: cross-node data-path benchmark of sluice (mTLS
// HTTP/2 CONNECT tunnels between node agents) against the direct path and a
// pair of HAProxies speaking mutual TLS, in a two-node simulated cluster of
// its own (sim name "xbench"). Client pod on node-1, server pods on node-2.
//
//   S0  client pod -> server pod IP (routed across the fabric, plaintext)
//   S1  client pod -> VIP -> eBPF capture -> node-1 agent -> mTLS tunnel
//       (:15008) -> node-2 agent -> server pod
//   S3  client pod -> VIP -> the same capture -> HAProxy A (node-1 netns,
//       10.244.1.1:15001, the node-1 agent stopped, its pins still rewriting)
//       -> TLS 1.3, ECDSA P-256, verify required both ways -> HAProxy B
//       (node-2 netns, 10.244.2.1:15443) -> server pod
//
// Paths are interleaved per round (S0, S1, S3, S0, S1, S3, ...); figures are
// median (min-max) over rounds, ratios paired per round. The HAProxy
// certificates come from a throwaway CA made with openssl in a temp dir (the
// sim's own CA is not touched).
//
// Flags: --quick | --rounds N | --duration S | --iperf-time S | --warmup S |
//        --name NAME | --out DIR
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCommonOptions, runBench, UsageError, type CommonOptions } from './options';
import { fmt, paired, spread, type Spread } from './stats';
import { alignedTable, judgeTarget, signedCell, spreadCell, targetCells, type TargetResult } from './summary-table';
import type { Percentiles } from './histogram';
import { firstLine, killPid, live, runCmd, sleep, type CmdResult } from './processes';
import { Haproxy } from './haproxy';
import { SimDriver, cpuUsec, machineBusyUs, setSysctls } from './sim-driver';
import { meshedNamespaceYaml, podYaml, serviceYaml } from './topology-yaml';

const ROOT = path.resolve(__dirname, '..', '..');
const simBin = path.join(ROOT, 'bin', 'sluice-sim');
const driverJs = path.join(ROOT, 'dist', 'bench', 'open-loop-driver.js');
const rrServerJs = path.join(ROOT, 'dist', 'bench', 'rr-server.js');
const NEEDED = ['bin/sluice-sim', 'dist/bench/open-loop-driver.js', 'dist/bench/rr-server.js', 'dist/src/agent/main.js', 'dist/src/sim/main.js', 'build/bpf/sluice.bpf.o', 'build/native/Release/sluice.node'];
const NS = 'xbench';
const CLIENT_NODE = 'node-1';
const SERVER_NODE = 'node-2';
const PROXY_PORT = 15001;
const HAPROXY_B_PORT = 15443;
const PATHS = ['S0', 'S1', 'S3'] as const;
type PathId = (typeof PATHS)[number];
type GroupId = 'throughput' | 'rr' | 'conn';
const GROUPS: GroupId[] = ['throughput', 'rr', 'conn'];
const DISTURBED_CORES = 0.5;

const USAGE = `usage: npm run bench:cross-node -- [--quick] [--rounds N] [--duration S] [--iperf-time S] [--warmup S] [--name NAME] [--out DIR]
  --quick        smoke run: 1 round, 1 s windows, 2 s iperf
  --rounds N     rounds of S0,S1,S3 per metric group (default 3)
  --duration S   measured seconds per driver window (default 5)
  --iperf-time S iperf3 seconds per run, after 1 s omitted (default 10)
  --warmup S     unmeasured seconds before each driver window (default 1)
  --name NAME    sluice-sim cluster name (default xbench; taken down at the end)
  --out DIR      where the JSON goes (default bench-results/)`;

type Options = CommonOptions;

function parseOptions(argv: string[]): Options {
  return parseCommonOptions(argv, { name: 'xbench', root: ROOT, usage: USAGE });
}

// ---------------------------------------------------------------- processes

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

// ---------------------------------------------------------------- the sim

/** The node agent's proxy and tunnel counters (client side, and server side). */
async function tunnelCounters(sim: SimDriver, node: string): Promise<{ relayed: number; streamsOpened: number; sessionsOpened: number; serverStreams: number }> {
  const j = await sim.agentStatus(node);
  return {
    relayed: j.proxyCounters?.relayed ?? NaN,
    streamsOpened: j.tunnels?.streamsOpened ?? NaN,
    sessionsOpened: j.tunnels?.sessionsOpened ?? NaN,
    serverStreams: Number(j.tunnels?.server?.accepted ?? NaN),
  };
}

interface Certs {
  ca: string;
  a: string; // HAProxy A: cert + key, one PEM (client certificate)
  b: string; // HAProxy B: cert + key, one PEM (server certificate)
}

/** A throwaway CA and one ECDSA P-256 leaf per HAProxy, in dir. */
async function makeCerts(dir: string): Promise<Certs> {
  const d = path.join(dir, 'pki');
  fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const ossl = async (args: string[]) => {
    const r = await runCmd('openssl', args, 20000);
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const f = (n: string) => path.join(d, n);
  await ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
  await ossl(['req', '-x509', '-new', '-key', f('ca.key'), '-sha256', '-days', '2', '-subj', '/CN=xbench throwaway CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', f('ca.pem')]);
  for (const [who, eku] of [['a', 'clientAuth'], ['b', 'serverAuth']] as const) {
    await ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`${who}.ec.key`)]);
    await ossl(['pkcs8', '-topk8', '-nocrypt', '-in', f(`${who}.ec.key`), '-out', f(`${who}.key`)]);
    await ossl(['req', '-new', '-key', f(`${who}.key`), '-subj', `/CN=haproxy-${who}`, '-out', f(`${who}.csr`)]);
    fs.writeFileSync(f(`${who}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${eku}\nsubjectAltName=DNS:haproxy-${who}\n`);
    await ossl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-sha256', '-days', '2', '-extfile', f(`${who}.ext`), '-out', f(`${who}.crt`)]);
    fs.writeFileSync(f(`${who}.pem`), fs.readFileSync(f(`${who}.crt`), 'utf8') + fs.readFileSync(f(`${who}.key`), 'utf8'), { mode: 0o600 });
  }
  return { ca: f('ca.pem'), a: f('a.pem'), b: f('b.pem') };
}

// ---------------------------------------------------------------- HAProxy (S3)


interface MetricDef {
  id: string;
  group: GroupId;
  label: string;
  unit: string;
  targets: { kind: 'S1/S3' | 'S1-S0'; op: '>=' | '<='; value: number; text: string }[];
}

const METRICS: MetricDef[] = [
  { id: 'throughput_gbps', group: 'throughput', label: 'throughput, 1 stream (iperf3)', unit: 'Gbit/s', targets: [{ kind: 'S1/S3', op: '>=', value: 1.0, text: 'S1/S3 >= 1.0' }] },
  { id: 'rr1k_p50_us', group: 'rr', label: 'p50, 1000 rps x 4 conns', unit: 'us', targets: [] },
  { id: 'rr1k_p90_us', group: 'rr', label: 'p90, 1000 rps x 4 conns', unit: 'us', targets: [{ kind: 'S1-S0', op: '<=', value: 170, text: '+170 us vs S0' }] },
  { id: 'rr1k_p99_us', group: 'rr', label: 'p99, 1000 rps x 4 conns', unit: 'us', targets: [{ kind: 'S1-S0', op: '<=', value: 200, text: '+200 us vs S0' }] },
  { id: 'conn_c8_cps', group: 'conn', label: 'connect-request-close, conc 8', unit: 'conn/s', targets: [{ kind: 'S1/S3', op: '>=', value: 5, text: 'S1/S3 >= 5' }] },
];

interface Target {
  host: string;
  port: number;
}

interface Run {
  round: number;
  path: PathId;
  group: GroupId;
  ok: boolean;
  ms: number;
  values: Record<string, number>;
  error?: string;
  result?: unknown;
  outsideCores?: number;
  disturbed?: boolean;
}

interface Ctx {
  sim: SimDriver;
  opt: Options;
}

async function iperf(ctx: Ctx, t: Target): Promise<Partial<Run>> {
  const args = ['iperf3', '-c', t.host, '-p', String(t.port), '-t', String(ctx.opt.iperfTime), '-O', '1', '-J', '--connect-timeout', '3000'];
  for (let attempt = 0; ; attempt++) {
    const r = await ctx.sim.exec('client', args, (ctx.opt.iperfTime + 30) * 1000);
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number } } };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      j = { error: `no JSON from iperf3 (exit ${r.code}): ${(r.stderr || r.stdout).slice(-300)}` };
    }
    if (j.error && /busy/i.test(j.error) && attempt < 5) {
      await sleep(1000);
      continue;
    }
    const rcv = j.end?.sum_received?.bits_per_second;
    if (j.error || !rcv) return { ok: false, ms: r.ms, error: j.error ?? `iperf3 exit ${r.code}`, values: {} };
    return { ok: true, ms: r.ms, values: { throughput_gbps: rcv / 1e9 }, result: { receivedBps: rcv } };
  }
}

async function driver(ctx: Ctx, t: Target, args: string[], expectSeconds: number): Promise<{ r: CmdResult; j?: Record<string, unknown> }> {
  const r = await ctx.sim.exec('client', [process.execPath, driverJs, '--host', t.host, '--port', String(t.port), ...args], (expectSeconds + 40) * 1000);
  let j: Record<string, unknown> | undefined;
  for (const line of r.stdout.trim().split('\n').reverse()) {
    try {
      j = JSON.parse(line) as Record<string, unknown>;
      break;
    } catch {
      // not the JSON line
    }
  }
  return { r, j };
}

async function rr(ctx: Ctx, t: Target): Promise<Partial<Run>> {
  const { warmup, duration } = ctx.opt;
  const { r, j } = await driver(ctx, t, ['--mode', 'rr', '--rate', '1000', '--conns', '4', '--duration', String(duration), '--warmup', String(warmup)], warmup + duration);
  const d = j as { error?: string; latency: Percentiles; errors: number; timedOut: number } | undefined;
  if (!d || d.error || r.code !== 0) return { ok: false, ms: r.ms, error: d?.error ?? `driver exit ${r.code}: ${r.stderr.slice(-300)}`, values: {}, result: j };
  const ok = d.errors === 0 && d.timedOut === 0;
  return { ok, ms: r.ms, values: { rr1k_p50_us: d.latency.p50Us, rr1k_p90_us: d.latency.p90Us, rr1k_p99_us: d.latency.p99Us }, result: j, error: ok ? undefined : `${d.errors} error(s), ${d.timedOut} unanswered` };
}

async function connRate(ctx: Ctx, t: Target): Promise<Partial<Run>> {
  const { warmup, duration } = ctx.opt;
  const { r, j } = await driver(ctx, t, ['--mode', 'conn', '--concurrency', '8', '--duration', String(duration), '--warmup', String(warmup)], warmup + duration);
  const d = j as { error?: string; connPerSec: number; errors: number } | undefined;
  if (!d || d.error || r.code !== 0) return { ok: false, ms: r.ms, error: d?.error ?? `driver exit ${r.code}: ${r.stderr.slice(-300)}`, values: {}, result: j };
  return { ok: d.errors === 0, ms: r.ms, values: { conn_c8_cps: d.connPerSec }, result: j, error: d.errors ? `${d.errors} failed connection(s)` : undefined };
}

// ---------------------------------------------------------------- topology

const TARGETS: Record<GroupId, { pod: string; vip: string; port: number }> = {
  throughput: { pod: 'iperf', vip: '10.96.0.30', port: 5201 },
  rr: { pod: 'rr', vip: '10.96.0.31', port: 7000 },
  conn: { pod: 'cc', vip: '10.96.0.32', port: 7001 },
};

function manifest(dir: string): string {
  const pod = (name: string, node: string, command: string[]) => podYaml(NS, name, node, command);
  const svc = (name: string, vip: string, port: number) => serviceYaml(NS, name, vip, port);
  const yaml = [
    meshedNamespaceYaml(NS),
    pod('client', CLIENT_NODE, ['sleep', 'infinity']),
    pod('iperf', SERVER_NODE, ['iperf3', '-s', '-p', '5201', '--idle-timeout', '60']),
    pod('rr', SERVER_NODE, [process.execPath, rrServerJs, '7000', '100', '1024']),
    pod('cc', SERVER_NODE, [process.execPath, rrServerJs, '7001', '100', '1024']),
    svc('iperf', TARGETS.throughput.vip, 5201),
    svc('rr', TARGETS.rr.vip, 7000),
    svc('cc', TARGETS.conn.vip, 7001),
  ].join('');
  const file = path.join(dir, 'xbench.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new UsageError('the benchmark needs root (it runs sluice-sim: netns, cgroups, BPF)');
  for (const f of NEEDED) if (!fs.existsSync(path.join(ROOT, f))) throw new UsageError(`${f} is missing: build first`);
  const missing = ['haproxy', 'iperf3', 'openssl', 'nsenter'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length) throw new UsageError(`missing tools: ${missing.join(', ')}`);
}

async function waitListening(sim: SimDriver, pods: Record<string, string>): Promise<void> {
  const script = `const net=require('net');const [h,p]=process.argv.slice(1);const end=Date.now()+15000;(function t(){const s=net.connect({host:h,port:+p});s.on('connect',()=>{s.destroy();process.exit(0)});s.on('error',()=>{if(Date.now()>end)process.exit(1);setTimeout(t,100)})})()`;
  for (const g of GROUPS) {
    const { pod, port } = TARGETS[g];
    const r = await sim.exec('client', [process.execPath, '-e', script, pods[pod], String(port)], 25000);
    if (r.code !== 0) throw new Error(`${pod} (${pods[pod]}:${port}) not reachable from the client: ${r.stderr}`);
  }
}

// ---------------------------------------------------------------- summary

interface MetricSummary {
  id: string;
  label: string;
  unit: string;
  raw: Record<PathId, Spread>;
  s1OverS3: Spread;
  s1OverS0: Spread;
  s1MinusS0: Spread;
  s3MinusS0: Spread;
  targets: TargetResult[];
}

function summarize(runs: Run[], opt: Options): MetricSummary[] {
  return METRICS.map((m) => {
    const per = (p: PathId) => Array.from({ length: opt.rounds }, (_, i) => runs.find((r) => r.round === i + 1 && r.path === p && r.ok && m.id in r.values)?.values[m.id]);
    const s = { S0: per('S0'), S1: per('S1'), S3: per('S3') };
    const sum: MetricSummary = {
      id: m.id,
      label: m.label,
      unit: m.unit,
      raw: { S0: spread(s.S0.filter((x): x is number => x !== undefined)), S1: spread(s.S1.filter((x): x is number => x !== undefined)), S3: spread(s.S3.filter((x): x is number => x !== undefined)) },
      s1OverS3: spread(paired(s.S1, s.S3, (a, b) => a / b)),
      s1OverS0: spread(paired(s.S1, s.S0, (a, b) => a / b)),
      s1MinusS0: m.unit === 'us' ? spread(paired(s.S1, s.S0, (a, b) => a - b)) : spread([]),
      s3MinusS0: m.unit === 'us' ? spread(paired(s.S3, s.S0, (a, b) => a - b)) : spread([]),
      targets: [],
    };
    sum.targets = m.targets.map((t) => judgeTarget(t.text, t.op, t.value, t.kind === 'S1/S3' ? sum.s1OverS3.median : sum.s1MinusS0.median));
    return sum;
  });
}

const sp = spreadCell;
function renderTable(ms: MetricSummary[]): string {
  const rows = [
    ['metric', 'unit', 'S0 direct', 'S1 sluice', 'S3 haproxy mTLS', 'S1/S3', 'S1/S0', 'S1-S0 us', 'S3-S0 us', 'target', 'met'],
    ...ms.map((m) => [
      m.label,
      m.unit,
      sp(m.raw.S0),
      sp(m.raw.S1),
      sp(m.raw.S3),
      sp(m.s1OverS3),
      sp(m.s1OverS0),
      signedCell(m.s1MinusS0),
      signedCell(m.s3MinusS0),
      ...targetCells(m.targets),
    ]),
  ];
  return alignedTable(rows, false);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opt = parseOptions(process.argv.slice(2));
  preflight();
  const started = Date.now();
  const sim = new SimDriver(opt.name, () => simBin, NS);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-xbench-'));
  fs.chmodSync(dir, 0o755);
  let hA: Haproxy | undefined;
  let hB: Haproxy | undefined;
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    hA?.stopSync();
    hB?.stopSync();
    for (const pid of live.keys()) killPid(pid, 'SIGKILL');
    sim.downSync();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`xbench: ${sig}: taking the sim down`);
      cleanupSync();
      process.exit(130);
    });
  }
  const loadStart = os.loadavg();
  try {
    sim.downSync(); // a leftover from an aborted run of the same name
    const certs = await makeCerts(dir);
    log(`xbench: starting a 2-node sim "${opt.name}"`);
    await sim.up(manifest(dir), 2, 240000);
    const st = await sim.status();
    const n1 = st.nodes.find((n) => n.name === CLIENT_NODE)!;
    const n2 = st.nodes.find((n) => n.name === SERVER_NODE)!;
    const pods: Record<string, string> = {};
    const pod = (name: string) => st.pods.find((p) => p.namespace === NS && p.name === name)!;
    for (const name of ['client', 'iperf', 'rr', 'cc']) {
      const p = pod(name);
      if (!p?.running) throw new Error(`pod ${name} is not running`);
      pods[name] = p.ip;
    }
    for (const name of ['iperf', 'rr', 'cc']) if (!pods[name].startsWith('10.244.2.')) throw new Error(`pod ${name} is at ${pods[name]}, not on ${SERVER_NODE}`);
    if (!pods.client.startsWith('10.244.1.')) throw new Error(`client pod is at ${pods.client}, not on ${CLIENT_NODE}`);
    await setSysctls(pod('client').netns);
    await setSysctls(n1.netns);
    await setSysctls(n2.netns);
    await waitListening(sim, pods);
    log(`xbench: pods ${JSON.stringify(pods)}; node-1 ${n1.proxyAddress}, node-2 ${n2.proxyAddress}`);

    hA = new Haproxy('a', dir, n1.netns, path.join(n1.cgroup, 'xbench-haproxy-a'));
    hB = new Haproxy('b', dir, n2.netns, path.join(n2.cgroup, 'xbench-haproxy-b'));
    const bAddr = `${n2.proxyAddress}:${HAPROXY_B_PORT}`;
    const ctx: Ctx = { sim, opt };
    const runs: Run[] = [];
    const checks: Record<string, unknown>[] = [];
    let agentUp = true;
    let hBackend = '';

    for (const group of GROUPS) {
      const tgt = TARGETS[group];
      for (let round = 1; round <= opt.rounds; round++) {
        for (const p of PATHS) {
          // Put the data path in place.
          if (p === 'S3') {
            if (agentUp) {
              await sim.agent(CLIENT_NODE, 'stop');
              agentUp = false;
            }
            const backend = `${pods[tgt.pod]}:${tgt.port}`;
            if (hBackend !== backend) {
              await hB.start(`${bAddr} ssl crt ${certs.b} ca-file ${certs.ca} verify required`, backend);
              await hA.start(`${n1.proxyAddress}:${PROXY_PORT}`, `${bAddr} ssl verify required ca-file ${certs.ca} crt ${certs.a} verifyhost haproxy-b sni str(haproxy-b)`);
              hBackend = backend;
            }
          } else if (p === 'S1' && !agentUp) {
            await hA.stop();
            await hB.stop();
            hBackend = '';
            await sim.agent(CLIENT_NODE, 'start');
            agentUp = true;
          }
          const t: Target = p === 'S0' ? { host: pods[tgt.pod], port: tgt.port } : { host: tgt.vip, port: tgt.port };
          const before = p === 'S1' ? await tunnelCounters(sim, CLIENT_NODE) : p === 'S3' ? { a: await hA.info(), b: await hB.info() } : undefined;
          const cpu0 = cpuUsec(path.join(n1.cgroup, '..'));
          const busy0 = machineBusyUs();
          const t0 = Date.now();
          log(`xbench: round ${round}/${opt.rounds} ${group} ${p} -> ${t.host}:${t.port}`);
          const res = group === 'throughput' ? await iperf(ctx, t) : group === 'rr' ? await rr(ctx, t) : await connRate(ctx, t);
          const wallUs = (Date.now() - t0) * 1000;
          const outside = (machineBusyUs() - busy0 - (cpuUsec(path.join(n1.cgroup, '..')) - cpu0)) / wallUs;
          const run: Run = { round, path: p, group, ok: false, ms: 0, values: {}, ...res } as Run;
          if (Number.isFinite(outside)) {
            run.outsideCores = Math.round(outside * 100) / 100;
            run.disturbed = outside > DISTURBED_CORES;
          }
          // Did the traffic go where it should?
          if (p === 'S1') {
            const after = await tunnelCounters(sim, CLIENT_NODE);
            const b = before as Awaited<ReturnType<typeof tunnelCounters>>;
            const ok = after.streamsOpened > b.streamsOpened;
            checks.push({ round, group, path: p, what: 'node-1 agent tunnels.streamsOpened', before: b, after, ok });
            if (!ok) throw new Error(`S1 ${group} round ${round}: no tunnel stream opened on ${CLIENT_NODE} (${JSON.stringify(b)} -> ${JSON.stringify(after)}): traffic did not take the mTLS tunnel`);
          } else if (p === 'S3') {
            const after = { a: await hA.info(), b: await hB.info() };
            const b = before as typeof after;
            const ok = after.a.cumConns > b.a.cumConns && after.b.cumSslConns > b.b.cumSslConns;
            checks.push({ round, group, path: p, what: 'haproxy A CumConns, haproxy B CumSslConns', before: b, after, ok });
            if (!ok) throw new Error(`S3 ${group} round ${round}: traffic did not pass HAProxy A and B over TLS (${JSON.stringify(b)} -> ${JSON.stringify(after)})`);
          }
          runs.push(run);
          const vals = Object.entries(run.values).map(([k, v]) => `${k}=${fmt(v)}`).join(' ');
          log(`xbench:   ${run.ok ? 'ok' : `FAILED: ${run.error}`} ${vals}${run.disturbed ? ` (disturbed: ${run.outsideCores} cores outside)` : ''}`);
        }
      }
    }

    const metrics = summarize(runs, opt);
    const table = renderTable(metrics);
    const facts = {
      nproc: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      kernel: os.release(),
      node: process.version,
      haproxy: firstLine('haproxy', ['-v']),
      iperf3: firstLine('iperf3', ['--version']),
      openssl: firstLine('openssl', ['version']),
      loadavgStart: loadStart,
      loadavgEnd: os.loadavg(),
      date: new Date().toISOString(),
      commit: spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout?.trim(),
      dirtyFiles: (spawnSync('git', ['-C', ROOT, 'status', '--porcelain'], { encoding: 'utf8' }).stdout ?? '').split('\n').filter(Boolean).length,
    };
    const disturbed = runs.filter((r) => r.disturbed).length;
    const elapsed = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`\n${table}\n\n${opt.rounds} round(s), ${opt.duration} s driver windows, ${opt.iperfTime} s iperf3; ${disturbed} of ${runs.length} windows disturbed; ${elapsed} s\n`);
    process.stdout.write(`machine: ${facts.nproc} cores, ${facts.cpuModel}, kernel ${facts.kernel}, node ${facts.node}, ${facts.haproxy}, sluice ${facts.commit}${facts.dirtyFiles ? ` (+${facts.dirtyFiles} uncommitted)` : ''}\n`);
    fs.mkdirSync(opt.out, { recursive: true });
    const file = path.join(opt.out, `cross-node-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(
      file,
      `${JSON.stringify(
        {
          kind: 'cross-node',
          paths: {
            S0: 'client pod (node-1) -> server pod IP (node-2), routed, plaintext',
            S1: 'client pod -> VIP -> eBPF capture -> node-1 agent -> mTLS HTTP/2 CONNECT tunnel (:15008) -> node-2 agent -> server pod',
            S3: `client pod -> VIP -> the same capture -> HAProxy A (${n1.proxyAddress}:${PROXY_PORT}) -> TLS 1.3 ECDSA P-256 mutual verify -> HAProxy B (${bAddr}) -> server pod`,
          },
          config: { ...opt, haproxy: 'mode tcp, nbthread 1, no log, maxconn 4000, ssl-min-ver TLSv1.3, A: ssl verify required ca-file crt verifyhost; B: ssl crt ca-file verify required', certs: 'throwaway openssl CA, ECDSA P-256 leaves' },
          metrics,
          runs,
          checks,
          facts,
          elapsedSeconds: elapsed,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`JSON: ${path.relative(process.cwd(), file)}\n`);
    return runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    await hA?.stop();
    await hB?.stop();
    log('xbench: taking the sim down');
    cleanupSync();
  }
}

runBench('xbench', USAGE, main);
