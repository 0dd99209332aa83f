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
// "sluice-scale"). Where its configuration comes from (--source):
//   xds         an xDS server in this process on a unix socket: the measured
//               time is the agent's side only (the default);
//   kubernetes  sluice-control following the Kubernetes API stand-in
//               (src/sim/kube-api-main.ts), both in the node's netns, with
//               the services as Services, the endpoints as 100k Pods and
//               their EndpointSlices: full sync is then the control plane's
//               list and first publish, then the agent's; a single change is
//               a Service and its EndpointSlice written to the API, timed
//               to the first connection its endpoint answers.
// Flags: --source xds|kubernetes --services N --endpoints-per-service N
// --workloads local|all (xds only; the control plane sends every workload)
// --changes N --idle-connections N --quick --out DIR
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
import { SimKubeApi, kubeApiFiles } from '../src/sim/kube-api-client';
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
  source: 'xds' | 'kubernetes';
  /** 'local': only this node's workloads are pushed (BENCHMARKS.md's shape); 'all': one workload per endpoint too. */
  workloads: 'local' | 'all';
  services: number;
  endpointsPerService: number;
  changes: number;
  idleConnections: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { source: 'xds', workloads: 'local', services: 10000, endpointsPerService: 10, changes: 101, idleConnections: 10000, out: path.join(ROOT, 'bench-results') };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === '--services') o.services = Number(v());
    else if (argv[i] === '--endpoints-per-service') o.endpointsPerService = Number(v());
    else if (argv[i] === '--changes') o.changes = Number(v());
    else if (argv[i] === '--idle-connections') o.idleConnections = Number(v());
    else if (argv[i] === '--out') o.out = v();
    else if (argv[i] === '--source') {
      const src = v();
      if (src !== 'xds' && src !== 'kubernetes') throw new Error(`--source ${src}: expected xds or kubernetes`);
      o.source = src;
    } else if (argv[i] === '--workloads') {
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
    for (const sub of ['agent', 'pod', 'control', '']) {
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
  fs.mkdirSync(path.join(CG, 'control'), { recursive: true });
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

/** The i-th (from 0) address of 10.<base>.0.0/16, past the network address, which is never a cluster IP. */
function vip(i: number, base: number): string {
  const n = i + 1;
  return `10.${base}.${(n >> 8) & 255}.${n & 255}`;
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

/** Where the agent's configuration comes from, and how one change is made. */
interface Feed {
  /** The agent's --control-plane. */
  controlPlane: string;
  services: number;
  workloads: number;
  /** sluice-control's side of the full sync (--source kubernetes): from its start to its first publish, ms. */
  controlSyncMs?: number;
  controlRss?: () => number;
  /** Probe service `i` at VIP `address`, port 80, whose endpoint is the client pod's listener on SERVER_PORT. */
  change(i: number, address: string): Promise<void>;
  close(): Promise<void>;
}

/** The resources pushed as they are by an xDS server in this process. */
async function xdsFeed(o: Options): Promise<Feed> {
  const server = new DeltaAdsServer(pino({ level: 'silent' }));
  const xdsSocket = path.join(WORK, 'xds.sock');
  await server.listen(`unix:${xdsSocket}`);
  const { workloads, services } = buildResources(o);
  server.setResources(WORKLOAD_TYPE, workloads, '1');
  server.setResources(SERVICE_TYPE, services, '1');
  server.setResources(AUTHORIZATION_POLICY_TYPE, new Map(), '1');
  server.setResources(PEER_AUTHENTICATION_TYPE, new Map(), '1');
  return {
    controlPlane: `unix:${xdsSocket}`,
    services: services.size,
    workloads: workloads.size,
    change: async (i, address) => {
      const svc: Service = {
        name: `probe-${i}`,
        namespace: 'scale',
        clusterIPs: [address],
        ports: [{ name: '', port: 80, targetPort: SERVER_PORT }],
        endpoints: [{ workloadUid: 'client', address: POD_IP, node: 'scale-node', ready: true }],
        loadBalancing: { ...defaultLoadBalancing },
      };
      server.updateResources(SERVICE_TYPE, new Map([[`scale/probe-${i}`, { version: '1', resource: serviceCodec.encode(svc) }]]), [], String(2 + i));
    },
    close: () => server.close(),
  };
}

/** The same cluster as Kubernetes objects: a mesh namespace, the client pod, Services, Pods and EndpointSlices. */
function kubernetesObjects(o: Options): { items: object[]; services: number; workloads: number } {
  const ready = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] };
  const items: object[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'scale', labels: { 'sluice.dev/mesh': 'enabled' } } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'scale', uid: 'client' }, spec: { nodeName: 'scale-node', serviceAccountName: 'client', containers: [{ name: 'c' }] }, status: { podIP: POD_IP, ...ready } },
  ];
  for (let s = 0; s < o.services; s++) {
    items.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${s}`, namespace: 'scale' }, spec: { clusterIP: vip(s, 100), selector: { app: `svc-${s}` }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
    const endpoints = [];
    for (let e = 0; e < o.endpointsPerService; e++) {
      const n = s * o.endpointsPerService + e;
      const address = `10.${128 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
      const node = `node-${n % 100}`;
      items.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod-${n}`, namespace: 'scale', uid: `pod-${n}`, labels: { app: `svc-${s}` } }, spec: { nodeName: node, serviceAccountName: `sa-${s}`, containers: [{ name: 'c' }] }, status: { podIP: address, ...ready } });
      endpoints.push({ addresses: [address], conditions: { ready: true, serving: true, terminating: false }, nodeName: node, targetRef: { kind: 'Pod', namespace: 'scale', name: `pod-${n}`, uid: `pod-${n}` } });
    }
    items.push(endpointSlice(`svc-${s}`, 8080, endpoints));
  }
  return { items, services: o.services, workloads: 1 + o.services * o.endpointsPerService };
}

function endpointSlice(service: string, port: number, endpoints: object[]): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-0`, namespace: 'scale', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: port === 8080 ? 'http' : '', port, protocol: 'TCP' }],
    endpoints,
  };
}

/**
 * sluice-control following the API stand-in, both in the node's netns (the
 * agent reaches xDS on its loopback), the objects loaded at the stand-in's
 * start as a List; waits for sluice-control's first publish.
 */
async function kubernetesFeed(o: Options, children: ChildProcess[]): Promise<Feed> {
  const cluster = kubernetesObjects(o);
  const apiDir = path.join(WORK, 'kube-api');
  const objectsFile = path.join(WORK, 'objects.json');
  fs.writeFileSync(objectsFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: cluster.items }));
  cluster.items.length = 0;
  const files = kubeApiFiles(apiDir);
  const api = spawnIn(path.join(CG, 'control'), NODE_NS, [process.execPath, path.join(ROOT, 'dist', 'src', 'sim', 'kube-api-main.js'), '--dir', apiDir, '--listen', '127.0.0.1:6443', '--objects', objectsFile, '--no-endpoint-slice-controller'], path.join(WORK, 'kube-api.log'));
  children.push(api);
  for (let i = 0; i < 1200 && !fs.existsSync(files.kubeconfig); i++) {
    if (api.exitCode !== null) throw new Error(`the API stand-in exited: ${fs.readFileSync(path.join(WORK, 'kube-api.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!fs.existsSync(files.kubeconfig)) throw new Error('the API stand-in did not start within 60 s');
  const client = new SimKubeApi(files.socket, fs.readFileSync(files.token, 'utf8'));
  const controlSocket = path.join(WORK, 'control.sock');
  const started = process.hrtime.bigint();
  const control = spawnIn(
    path.join(CG, 'control'),
    NODE_NS,
    [
      process.execPath, path.join(ROOT, 'dist', 'src', 'control', 'main.js'),
      '--kubeconfig', files.kubeconfig,
      '--listen', '127.0.0.1:15010',
      '--admin-socket', controlSocket,
      // The VIPs are 10.100-101.x.x; the client pod is 10.99.0.2, the endpoints 10.128-191.x.x.
      '--service-cidr', '10.100.0.0/15',
      '--pod-cidr', '10.128.0.0/10,10.99.0.0/24',
      '--log-file', path.join(WORK, 'control.log'),
    ],
    path.join(WORK, 'control.stderr'),
  );
  children.push(control);
  let controlSyncMs = 0;
  for (let i = 0; i < 2400 && !controlSyncMs; i++) {
    try {
      const s = (await adminGet(controlSocket, '/status')) as { publishedAt?: string | null; kubernetes?: { synced: boolean }; objectErrors?: string[] };
      if (s.kubernetes?.synced && s.publishedAt) {
        controlSyncMs = Number(process.hrtime.bigint() - started) / 1e6;
        if (s.objectErrors?.length) throw new Error(`sluice-control refused objects: ${s.objectErrors.slice(0, 3).join('; ')}`);
      }
    } catch (err) {
      if (/refused objects/.test((err as Error).message)) throw err;
      // not up yet
    }
    if (control.exitCode !== null) throw new Error(`sluice-control exited: ${fs.readFileSync(path.join(WORK, 'control.stderr'), 'utf8')}`);
    if (!controlSyncMs) await new Promise((r) => setTimeout(r, 25));
  }
  if (!controlSyncMs) throw new Error('sluice-control did not publish within 60 s');
  const write = async (p: string, body: object) => {
    const r = await client.request('POST', p, body);
    if (r.status !== 201) throw new Error(`POST ${p}: HTTP ${r.status}: ${r.body.message ?? ''}`);
  };
  return {
    controlPlane: '127.0.0.1:15010',
    services: cluster.services,
    workloads: cluster.workloads,
    controlSyncMs,
    controlRss: () => (control.pid ? rssOf(control.pid) : 0),
    change: async (i, address) => {
      await write('/api/v1/namespaces/scale/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: `probe-${i}`, namespace: 'scale' }, spec: { clusterIP: address, ports: [{ port: 80, targetPort: SERVER_PORT, protocol: 'TCP' }] } });
      const client = { addresses: [POD_IP], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'scale-node', targetRef: { kind: 'Pod', namespace: 'scale', name: 'client', uid: 'client' } };
      await write('/apis/discovery.k8s.io/v1/namespaces/scale/endpointslices', endpointSlice(`probe-${i}`, SERVER_PORT, [client]));
    },
    close: async () => undefined,
  };
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
  let feed: Feed | undefined;
  try {
    const t0 = Date.now();
    feed = o.source === 'xds' ? await xdsFeed(o) : await kubernetesFeed(o, children);
    console.log(`built ${feed.services} services, ${feed.workloads} workloads from ${o.source} in ${Date.now() - t0} ms${feed.controlSyncMs !== undefined ? ` (sluice-control: list and first publish ${feed.controlSyncMs.toFixed(0)} ms)` : ''}`);

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
        '--control-plane', feed.controlPlane,
        '--state-dir', path.join(WORK, 'state'),
        '--bpffs', BPFFS,
        '--cgroup', CG,
        '--proxy-address', PROXY,
        '--pod-netns-dir', path.join(WORK, 'pods'),
        '--admin-socket', adminSocket,
        '--admin-port', '0',
        // One client pod holds every idle connection, two descriptors each (the
        // derived budget assumes six, pipes included): lift the budget and the per-pod share.
        '--max-connections', String(o.idleConnections + 100),
        '--max-connections-per-workload', String(o.idleConnections + 100),
        '--log-file', path.join(WORK, 'agent.log'),
      ],
      path.join(WORK, 'agent.stderr'),
    );
    children.push(agent);
    let fullSyncMs = 0;
    for (let i = 0; i < 1200; i++) {
      try {
        const s = await adminGet(adminSocket, '/status');
        if (s.ready && s.services === feed.services) {
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
      const answer = nextAnswer();
      client.stdin!.write(`probe ${address} 80\n`);
      await new Promise((r) => setTimeout(r, 50)); // the probe is looping before the change
      const pushed = process.hrtime.bigint();
      await feed.change(i, address);
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
      source: o.source,
      scale: { services: o.services, endpoints: o.services * o.endpointsPerService, workloads: feed.workloads, workloadsPushed: o.source === 'kubernetes' ? 'all' : o.workloads },
      fullSyncMs,
      controlSyncMs: feed.controlSyncMs ?? null,
      controlRssBytes: feed.controlRss?.() ?? null,
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
    if (feed.controlSyncMs !== undefined) console.log(`| sluice-control: list from the API and first publish | ${(feed.controlSyncMs / 1000).toFixed(2)} s (its RSS ${((feed.controlRss?.() ?? 0) / 1e6).toFixed(0)} MB) | - |`);
    console.log(`| full sync (agent), ${o.services} services / ${o.services * o.endpointsPerService} endpoints / ${feed.workloads} workloads, from ${o.source} | ${(fullSyncMs / 1000).toFixed(2)} s | <= 1.5 s |`);
    console.log(`| agent RSS idle | ${(rssIdle / 1e6).toFixed(0)} MB (heap ${(idle.heapUsedBytes / 1e6).toFixed(0)} MB, BPF maps ${(mapBytes / 1e6).toFixed(1)} MB) | <= 120 MB |`);
    console.log(`| agent RSS with ${h.held} idle proxied connections | ${(rssConns / 1e6).toFixed(0)} MB | - |`);
    console.log(`| single change (${o.source === 'kubernetes' ? 'Service + EndpointSlice written to the API' : 'pushed over xDS'}) -> first connection | p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms (first, cold: ${cold.toFixed(1)} ms) | p99 <= 50 ms |`);
    console.log(`\nwrote ${file}`);
  } finally {
    await feed?.close().catch(() => undefined);
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
