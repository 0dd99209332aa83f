// `npm run bench:scale`: the agent at scale, against BENCHMARKS.md targets.
//
//   full sync     agent start -> ready with 10k services / 100k endpoints
//                 (and 100k workloads) pushed over Delta ADS
//   memory        agent RSS and V8 heap idle at that scale, BPF map memory,
//                 and RSS again with 10k idle proxied connections
//   propagation   one new service pushed -> the first connection through its
//                 VIP answered by its endpoint, repeated (p50/p99)
//
// A real agent runs in a netns and cgroup this benchmark creates (prefix
// "sluice-scale"); the xDS server runs in this process on a unix socket, so
// the measured time is the agent's side only. Flags: --services N
// --endpoints-per-service N --workloads local|all --changes N
// --idle-connections N --quick --out DIR
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import pino from 'pino';
import { defaultLoadBalancing, type Service, type Workload } from '../src/model/resources';
import { schemaDir } from '../src/kernel/bpf-datapath';
import { cgroup2Root, ensureBpffs } from '../src/sim/host';
import { DeltaAdsServer } from '../src/xds/delta-server';
import type { Any } from '../src/xds/protos';
import { AUTHORIZATION_POLICY_TYPE, PEER_AUTHENTICATION_TYPE, SERVICE_TYPE, WORKLOAD_TYPE, serviceCodec, workloadCodec } from '../src/xds/resource-types';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

const ROOT = path.resolve(__dirname, '..', '..');
const NAME = 'sluice-scale';
const NODE_NS = `${NAME}_node`;
const POD_NS = `${NAME}_pod`;
const CG = path.join(cgroup2Root(), NAME);
const BPFFS = path.join('/sys/fs/bpf', NAME);
const WORK = path.join(os.tmpdir(), NAME);
const PROXY = '10.99.0.1';
const POD_IP = '10.99.0.2';
const SERVER_PORT = 9000;
/** The hard descriptor limit this machine allows; processes get it as their soft limit too. */
const NOFILE = sh('sh', ['-c', 'ulimit -Hn']).trim();

interface Options {
  /** 'local': only this node's workloads are pushed (BENCHMARKS.md's shape); 'all': one workload per endpoint too. */
  workloads: 'local' | 'all';
  services: number;
  endpointsPerService: number;
  changes: number;
  idleConnections: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { workloads: 'local', services: 10000, endpointsPerService: 10, changes: 101, idleConnections: 10000, out: path.join(ROOT, 'bench-results') };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--services') o.services = Number(v());
    else if (argv[i] === '--endpoints-per-service') o.endpointsPerService = Number(v());
    else if (argv[i] === '--changes') o.changes = Number(v());
    else if (argv[i] === '--idle-connections') o.idleConnections = Number(v());
    else if (argv[i] === '--out') o.out = v();
    else if (argv[i] === '--workloads') {
      const w = v();
      if (w !== 'local' && w !== 'all') throw new Error(`--workloads ${w}: expected local or all`);
      o.workloads = w;
    }
    else if (argv[i] === '--quick') Object.assign(o, { services: 500, changes: 6, idleConnections: 200 });
    else throw new Error(`unknown flag ${argv[i]}`);
  }
  return o;
}


function quiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}

function cleanup(children: ChildProcess[]): void {
  for (const c of children) if (c.pid && c.exitCode === null) c.kill('SIGKILL');
  if (fs.existsSync(CG)) {
    try {
      fs.writeFileSync(path.join(CG, 'cgroup.kill'), '1');
    } catch {
      // empty
    }
  }
  fs.rmSync(BPFFS, { recursive: true, force: true });
  quiet('ip', ['netns', 'del', NODE_NS]);
  quiet('ip', ['netns', 'del', POD_NS]);
  for (let i = 0; i < 50 && fs.existsSync(CG); i++) {
    for (const sub of ['agent', 'pod', '']) {
      try {
        fs.rmdirSync(path.join(CG, sub));
      } catch {
        // busy or gone
      }
    }
    if (fs.existsSync(CG)) execFileSync('sleep', ['0.1']);
  }
  fs.rmSync(WORK, { recursive: true, force: true });
}

function setup(): void {
  ensureBpffs();
  fs.mkdirSync(path.join(CG, 'agent'), { recursive: true });
  fs.mkdirSync(path.join(CG, 'pod'), { recursive: true });
  fs.mkdirSync(path.join(WORK, 'pods'), { recursive: true });
  sh('ip', ['netns', 'add', NODE_NS]);
  sh('ip', ['netns', 'add', POD_NS]);
  for (const ns of [NODE_NS, POD_NS]) sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', NODE_NS, 'link', 'add', 'n0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', POD_NS]);
  sh('ip', ['-n', NODE_NS, 'addr', 'add', `${PROXY}/24`, 'dev', 'n0']);
  sh('ip', ['-n', NODE_NS, 'link', 'set', 'n0', 'up']);
  sh('ip', ['-n', POD_NS, 'addr', 'add', `${POD_IP}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', POD_NS, 'link', 'set', 'eth0', 'up']);
  fs.writeFileSync(path.join(WORK, 'pods', 'client.json'), JSON.stringify({ uid: 'client', namespace: 'scale', name: 'client', netns: `/run/netns/${POD_NS}` }));
}

/** Starts argv in a cgroup and netns with a raised descriptor limit. */
function spawnIn(cgroup: string, netns: string, argv: string[], logFile: string): ChildProcess {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(
    'prlimit',
    [`--nofile=${NOFILE}:${NOFILE}`, '--', '/bin/sh', '-c', 'cg=$1; ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter --net="/run/netns/$ns" -- "$@"', 'sh', cgroup, netns, ...argv],
    { stdio: ['pipe', 'pipe', log] },
  );
  fs.closeSync(log);
  return child;
}

function adminGet(socketPath: string, p: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: p, timeout: 5000 }, (res) => {
        let d = '';
        res.on('data', (c) => (d += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(d));
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
}

function vip(i: number, base: number): string {
  return `10.${base}.${(i >> 8) & 255}.${i & 255}`;
}

function buildResources(o: Options): { workloads: Map<string, { version: string; resource: Any }>; services: Map<string, { version: string; resource: Any }> } {
  const workloads = new Map<string, { version: string; resource: Any }>();
  const services = new Map<string, { version: string; resource: Any }>();
  const client: Workload = { uid: 'client', name: 'client', namespace: 'scale', node: 'scale-node', ips: [POD_IP], serviceAccount: 'client', labels: {}, identity: 'spiffe://cluster.local/ns/scale/sa/client', captured: true, ready: true, nodeAddress: '' };
  workloads.set('client', { version: '1', resource: workloadCodec.encode(client) });
  for (let s = 0; s < o.services; s++) {
    const endpoints = [];
    for (let e = 0; e < o.endpointsPerService; e++) {
      const n = s * o.endpointsPerService + e;
      const uid = `pod-${n}`;
      const address = `10.${128 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
      const node = `node-${n % 100}`;
      if (o.workloads === 'all') {
        const w: Workload = { uid, name: uid, namespace: 'scale', node, ips: [address], serviceAccount: `sa-${s}`, labels: { app: `svc-${s}` }, identity: `spiffe://cluster.local/ns/scale/sa/sa-${s}`, captured: true, ready: true, nodeAddress: '' };
        workloads.set(uid, { version: '1', resource: workloadCodec.encode(w) });
      }
      endpoints.push({ workloadUid: uid, address, node, ready: true });
    }
    const svc: Service = { name: `svc-${s}`, namespace: 'scale', clusterIPs: [vip(s, 100)], ports: [{ name: 'http', port: 80, targetPort: 8080 }], endpoints, loadBalancing: { ...defaultLoadBalancing } };
    services.set(`scale/svc-${s}`, { version: '1', resource: serviceCodec.encode(svc) });
  }
  return { workloads, services };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function bpfMapBytes(): number {
  let total = 0;
  const dir = schemaDir(BPFFS);
  for (const e of fs.readdirSync(dir)) {
    if (e === 'links') continue;
    try {
      const info = JSON.parse(sh('bpftool', ['-j', 'map', 'show', 'pinned', path.join(dir, e)])) as { bytes_memlock?: number };
      total += info.bytes_memlock ?? 0;
    } catch {
      // not a map
    }
  }
  return total;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // The agent holds two sockets per relayed connection.
  const fdRoom = Math.floor((Number(NOFILE) - 1000) / 2);
  if (o.idleConnections > fdRoom) {
    console.log(`descriptor limit ${NOFILE}: holding ${fdRoom} idle connections instead of ${o.idleConnections}`);
    o.idleConnections = fdRoom;
  }
  const children: ChildProcess[] = [];
  const onSignal = () => {
    cleanup(children);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  cleanup(children); // leftovers of a crashed run
  setup();
  const server = new DeltaAdsServer(pino({ level: 'silent' }));
  try {
    const xdsSocket = path.join(WORK, 'xds.sock');
    await server.listen(`unix:${xdsSocket}`);
    const t0 = Date.now();
    const { workloads, services } = buildResources(o);
    console.log(`built ${services.size} services, ${workloads.size} workloads in ${Date.now() - t0} ms`);
    server.setResources(WORKLOAD_TYPE, workloads, '1');
    server.setResources(SERVICE_TYPE, services, '1');
    server.setResources(AUTHORIZATION_POLICY_TYPE, new Map(), '1');
    server.setResources(PEER_AUTHENTICATION_TYPE, new Map(), '1');

    // The endpoint every probe service points at.
    const echo = spawnIn(path.join(CG, 'pod'), POD_NS, [process.execPath, '-e', `require('net').createServer({pauseOnConnect:false},(s)=>{s.on('error',()=>{});s.write('ok\\n')}).listen(${SERVER_PORT},'${POD_IP}')`], path.join(WORK, 'echo.log'));
    children.push(echo);

    const adminSocket = path.join(WORK, 'admin.sock');
    const start = process.hrtime.bigint();
    const agent = spawnIn(
      path.join(CG, 'agent'),
      NODE_NS,
      [
        process.execPath,
        path.join(ROOT, 'dist', 'src', 'agent', 'main.js'),
        '--node-name', 'scale-node',
        '--control-plane', `unix:${xdsSocket}`,
        '--state-dir', path.join(WORK, 'state'),
        '--bpffs', BPFFS,
        '--cgroup', CG,
        '--proxy-address', PROXY,
        '--pod-netns-dir', path.join(WORK, 'pods'),
        '--admin-socket', adminSocket,
        '--admin-port', '0',
        '--log-file', path.join(WORK, 'agent.log'),
      ],
      path.join(WORK, 'agent.stderr'),
    );
    children.push(agent);
    let fullSyncMs = 0;
    for (let i = 0; i < 1200; i++) {
      try {
        const s = await adminGet(adminSocket, '/status');
        if (s.ready && s.services === services.size) {
          fullSyncMs = Number(process.hrtime.bigint() - start) / 1e6;
          break;
        }
      } catch {
        // not up yet
      }
      if (agent.exitCode !== null) throw new Error(`agent exited: ${fs.readFileSync(path.join(WORK, 'agent.stderr'), 'utf8')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!fullSyncMs) throw new Error('agent did not sync within 30 s');
    console.log(`full sync: ${fullSyncMs.toFixed(0)} ms`);

    await new Promise((r) => setTimeout(r, 3000)); // let start-up garbage go
    const idle = (await adminGet(adminSocket, '/status')).memory as { rssBytes: number; heapUsedBytes: number };
    const rssIdle = rssOf(agent.pid!);
    const mapBytes = bpfMapBytes();
    console.log(`idle: RSS ${(rssIdle / 2 ** 20).toFixed(1)} MiB, heap ${(idle.heapUsedBytes / 2 ** 20).toFixed(1)} MiB, BPF maps ${(mapBytes / 2 ** 20).toFixed(1)} MiB`);

    // Single changes: a new service whose endpoint is the echo pod; time from
    // the push to the first connection through its VIP that the endpoint answers.
    const client = spawnIn(path.join(CG, 'pod'), POD_NS, [process.execPath, path.join(ROOT, 'dist', 'bench', 'scale-client.js')], path.join(WORK, 'client.stderr'));
    children.push(client);
    const answers = readline.createInterface({ input: client.stdout! });
    const nextAnswer = () => new Promise<Record<string, unknown>>((resolve) => answers.once('line', (l) => resolve(JSON.parse(l))));
    const propagation: number[] = [];
    for (let i = 0; i < o.changes; i++) {
      const address = vip(i, 101);
      const svc: Service = {
        name: `probe-${i}`,
        namespace: 'scale',
        clusterIPs: [address],
        ports: [{ name: '', port: 80, targetPort: SERVER_PORT }],
        endpoints: [{ workloadUid: 'echo', address: POD_IP, node: 'scale-node', ready: true }],
        loadBalancing: { ...defaultLoadBalancing },
      };
      const answer = nextAnswer();
      client.stdin!.write(`probe ${address} 80\n`);
      await new Promise((r) => setTimeout(r, 50)); // the probe is looping before the change
      const change = new Map([[`scale/probe-${i}`, { version: '1', resource: serviceCodec.encode(svc) }]]);
      const pushed = process.hrtime.bigint();
      server.updateResources(SERVICE_TYPE, change, [], String(2 + i));
      const a = await answer;
      if (a.error) throw new Error(`probe ${i}: ${a.error}`);
      propagation.push(Number(BigInt(a.t as string) - pushed) / 1e6);
    }
    // The first change after start-up runs cold (JIT, the start-up heap); it is reported on its own.
    const cold = propagation[0];
    const sorted = propagation.slice(1).sort((a, b) => a - b);
    console.log(`single change -> first connection: first (cold) ${cold.toFixed(1)} ms; then p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms (n=${sorted.length})`);

    // Idle proxied connections.
    const held = nextAnswer();
    client.stdin!.write(`hold ${vip(0, 101)} 80 ${o.idleConnections}\n`);
    const h = await held;
    await new Promise((r) => setTimeout(r, 2000));
    const rssConns = rssOf(agent.pid!);
    console.log(`${h.held} idle proxied connections (${h.failed} failed): RSS ${(rssConns / 2 ** 20).toFixed(1)} MiB`);

    const result = {
      tool: 'sluice bench:scale',
      command: `npm run bench:scale -- ${process.argv.slice(2).join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: { nproc: os.cpus().length, kernel: os.release(), node: process.version },
      scale: { services: o.services, endpoints: o.services * o.endpointsPerService, workloads: workloads.size, workloadsPushed: o.workloads },
      fullSyncMs,
      idle: { rssBytes: rssIdle, heapUsedBytes: idle.heapUsedBytes, bpfMapBytes: mapBytes },
      withIdleConnections: { connections: h.held, failed: h.failed, rssBytes: rssConns },
      propagationMs: { cold, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1], samples: propagation },
      targets: {
        'agent RSS at 10k services / 100k endpoints <= 120 MB': rssIdle <= 120e6,
        'single change p99 <= 50 ms': percentile(sorted, 99) <= 50,
        'full sync <= 1.5 s': fullSyncMs <= 1500,
      },
    };
    fs.mkdirSync(o.out, { recursive: true });
    const file = path.join(o.out, `scale-${result.date.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, JSON.stringify(result, null, 2));
    console.log('\n| metric | result | target |\n|---|---|---|');
    console.log(`| full sync, ${o.services} services / ${o.services * o.endpointsPerService} endpoints / ${workloads.size} workloads | ${(fullSyncMs / 1000).toFixed(2)} s | <= 1.5 s |`);
    console.log(`| agent RSS idle | ${(rssIdle / 1e6).toFixed(0)} MB (heap ${(idle.heapUsedBytes / 1e6).toFixed(0)} MB, BPF maps ${(mapBytes / 1e6).toFixed(1)} MB) | <= 120 MB |`);
    console.log(`| agent RSS with ${h.held} idle proxied connections | ${(rssConns / 1e6).toFixed(0)} MB | - |`);
    console.log(`| single change -> first connection | p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms (first, cold: ${cold.toFixed(1)} ms) | p99 <= 50 ms |`);
    console.log(`\nwrote ${file}`);
  } finally {
    await server.close().catch(() => undefined);
    cleanup(children);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench:scale: ${(err as Error).message}`);
    process.exit(1);
  },
);
