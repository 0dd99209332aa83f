// sluice-cni as a container runtime runs it: installed into a CNI bin
// directory the test makes, chained after Debian's real `bridge` and
// `host-local` plugins, for pods whose network namespaces the test creates
// inside a "node" namespace of its own (the bridge lives there, never in the
// machine's network). The agent's side is the real endpoint module on a unix
// socket in the test's temp directory. Needs root. All CNI state (host-local's
// dataDir, config, records) lives in the temp directory; the machine's
// /etc/cni/net.d, /opt/cni/bin and /var/lib/cni are never touched.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { CniEndpoint, type LocalWorkload } from '../../src/agent/cni-endpoint';
import { pluginEntry, install, keepInstalled, uninstall, uninstallMark, type InstallOptions } from '../../src/cni/install';
import { meshRecordFrom } from '../../src/cni/mesh-record';
import { DEFAULT_PLUGIN_CONF } from '../../src/cni/plugin-conf';

const PREFIX = 'sluice-cnitest-';
const NODE_NS = `${PREFIX}node`;
const DEBIAN_PLUGINS = '/usr/lib/cni';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
const binDir = path.join(dir, 'bin');
const confDir = path.join(dir, 'net.d');
const podsDir = path.join(dir, 'pods');
const meshRecord = path.join(dir, 'meshed-namespaces.json');
const socket = path.join(dir, 'cni.sock');

const conf = { ...DEFAULT_PLUGIN_CONF, agentSocket: socket, podNetnsDir: podsDir, meshRecord, agentTimeoutMs: 1500 };
const installOptions: InstallOptions = { binDir, confDir, nodeBinary: process.execPath, conf };

const primaryConflist = {
  cniVersion: '1.0.0',
  name: 'sluice-cnitest',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cnitest0',
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', dataDir: path.join(dir, 'ipam'), ranges: [[{ subnet: '10.99.0.0/24', gateway: '10.99.0.1' }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
  ],
};

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

function clearLeftovers(): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name.startsWith(PREFIX)) spawnSync('ip', ['netns', 'del', name]);
  }
  for (const d of fs.readdirSync(os.tmpdir())) {
    if (d.startsWith(PREFIX) && path.join(os.tmpdir(), d) !== dir) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
  }
}

interface Invocation {
  exitCode: number;
  stdout: string;
  ms: number;
}

/**
 * Runs one plugin binary inside the node namespace, as a runtime does. Async:
 * the agent's endpoint answers from this process's event loop.
 */
function runPlugin(type: string, command: string, env: Record<string, string>, stdin: string): Promise<Invocation> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', NODE_NS, path.join(binDir, type)], {
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_PATH: binDir, ...env },
      stdio: ['pipe', 'pipe', 'ignore'],
      timeout: 20000,
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ exitCode: code ?? -1, stdout, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    child.stdin.end(stdin);
  });
}

function podEnv(pod: string, namespace: string, uid: string): Record<string, string> {
  return {
    CNI_CONTAINERID: `sandbox-${pod}`,
    CNI_NETNS: `/run/netns/${PREFIX}${pod}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=sandbox-${pod};K8S_POD_UID=${uid}`,
  };
}

/** The conflist in confDir run the way libcni does: ADD/CHECK in order with prevResult, DEL in reverse. */
async function runChain(command: 'ADD' | 'CHECK' | 'DEL', env: Record<string, string>, prevResult?: unknown): Promise<{ results: Invocation[]; last: Invocation }> {
  const list = JSON.parse(fs.readFileSync(path.join(confDir, '10-primary.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: { type: string }[] };
  const plugins = command === 'DEL' ? [...list.plugins].reverse() : list.plugins;
  const results: Invocation[] = [];
  let prev = prevResult;
  for (const p of plugins) {
    const netconf = { cniVersion: list.cniVersion, name: list.name, ...p, ...(prev ? { prevResult: prev } : {}) };
    const r = await runPlugin(p.type, command, env, JSON.stringify(netconf));
    results.push(r);
    if (r.exitCode !== 0) return { results, last: r };
    if (command === 'ADD') prev = JSON.parse(r.stdout);
  }
  return { results, last: results[results.length - 1] };
}

const workloads = new Map<string, LocalWorkload>();
const workload = (uid: string, namespace: string, name: string, captured: boolean): LocalWorkload => ({ uid, namespace, name, node: 'node-t', captured, labels: {}, ips: [] });
let endpoint: CniEndpoint | undefined;
/** uid → when the stand-in reconciler enrolls the pod (ms since epoch): a slow reconcile. */
const enrollAt = new Map<string, number>();

/** The agent's endpoint; a pod counts as enrolled once its record is in the pod netns directory (the registry's job in the agent). */
async function startAgent(): Promise<void> {
  endpoint = new CniEndpoint({
    node: 'node-t',
    socketPath: socket,
    podNetnsDir: podsDir,
    meshRecordFile: meshRecord,
    hostNetnsDir: '',
    workload: (uid) => workloads.get(uid),
    enrolled: (uid) => fs.existsSync(path.join(podsDir, `${uid}.json`)) && Date.now() >= (enrollAt.get(uid) ?? 0),
    podError: () => undefined,
    pending: () => [],
    logger: pino({ level: 'silent' }),
  });
  await endpoint.listen();
  endpoint.workloadsChanged(workloads.values());
}

async function stopAgent(): Promise<void> {
  await endpoint?.close();
  endpoint = undefined;
  fs.rmSync(socket, { force: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

describe('sluice-cni chained after bridge + host-local', { concurrency: false }, () => {
  before(async () => {
    clearLeftovers();
    for (const ns of ['node', 'web', 'plain', 'sys', 'late']) sh('ip', ['netns', 'add', `${PREFIX}${ns}`]);
    fs.mkdirSync(confDir, { recursive: true });
    fs.writeFileSync(path.join(confDir, '10-primary.conflist'), JSON.stringify(primaryConflist, null, 2));
    install(installOptions);
    for (const p of ['bridge', 'host-local', 'loopback']) fs.symlinkSync(path.join(DEBIAN_PLUGINS, p), path.join(binDir, p));
    workloads.set('uid-web', workload('uid-web', 'shop', 'web', true));
    workloads.set('uid-plain', workload('uid-plain', 'plain', 'plain', false));
    await startAgent();
  });

  after(async () => {
    await stopAgent();
    clearLeftovers();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('VERSION lists 1.0.0 and 1.1.0', async () => {
    const r = await runPlugin('sluice-cni', 'VERSION', {}, '{"cniVersion":"1.0.0"}');
    assert.equal(r.exitCode, 0);
    const v = JSON.parse(r.stdout);
    assert.equal(v.cniVersion, '1.0.0');
    assert.ok(v.supportedVersions.includes('1.0.0') && v.supportedVersions.includes('1.1.0'));
  });

  it('ADD, CHECK, DEL of a meshed pod: prevResult passes through, the agent enrolls it before ADD returns', async () => {
    const env = podEnv('web', 'shop', 'uid-web');
    const add = await runChain('ADD', env);
    assert.equal(add.last.exitCode, 0, add.last.stdout);
    const bridge = JSON.parse(add.results[0].stdout);
    assert.deepEqual(JSON.parse(add.last.stdout), bridge, 'the chain result is the bridge plugin\'s result');
    const record = JSON.parse(fs.readFileSync(path.join(podsDir, 'uid-web.json'), 'utf8'));
    const podIp = (bridge.ips[0].address as string).split('/')[0];
    assert.deepEqual(
      { uid: record.uid, namespace: record.namespace, name: record.name, netns: record.netns, ips: record.ips, reportedBy: record.reportedBy },
      { uid: 'uid-web', namespace: 'shop', name: 'web', netns: env.CNI_NETNS, ips: [podIp], reportedBy: 'agent' },
    );
    assert.match(record.hostInterface, /^veth/);
    const addrs = spawnSync('ip', ['-n', `${PREFIX}web`, '-j', 'addr', 'show', 'eth0'], { encoding: 'utf8' }).stdout;
    assert.ok(addrs.includes(podIp), 'the pod has its address from host-local');

    const check = await runChain('CHECK', env, bridge);
    assert.equal(check.last.exitCode, 0, check.last.stdout);

    const del = await runChain('DEL', env, bridge);
    assert.equal(del.last.exitCode, 0, del.last.stdout);
    assert.equal(fs.existsSync(path.join(podsDir, 'uid-web.json')), false);
    const again = await runChain('DEL', env, bridge);
    assert.equal(again.last.exitCode, 0, 'DEL is idempotent');
    const unknown = await runPlugin('sluice-cni', 'DEL', podEnv('nobody', 'shop', 'uid-nobody'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'sluice-cni', ...conf }));
    assert.equal(unknown.exitCode, 0, 'DEL of a pod nobody knows succeeds');
  });

  it('a pod enrolled only after a while: ADD waits for the answer and succeeds', async () => {
    // Regression: the plugin half-closed its request, and Node's HTTP server
    // then closed the connection before the answer ("answer is not HTTP").
    enrollAt.set('uid-web', Date.now() + 700);
    const env = podEnv('web', 'shop', 'uid-web');
    const add = await runChain('ADD', env);
    try {
      assert.equal(add.last.exitCode, 0, add.last.stdout);
      assert.ok(add.results[add.results.length - 1].ms >= 600, `sluice-cni answered after the enrollment (${add.results[add.results.length - 1].ms.toFixed(0)} ms)`);
    } finally {
      enrollAt.delete('uid-web');
      await runChain('DEL', env, add.results[0].exitCode === 0 ? JSON.parse(add.results[0].stdout) : undefined);
    }
  });

  it('agent down: ADD fails with 11 for a meshed pod, succeeds for unmeshed and excluded ones', async () => {
    await stopAgent();
    fs.writeFileSync(meshRecord, JSON.stringify(meshRecordFrom(workloads.values(), 'node-t')));
    const meshed = await runChain('ADD', podEnv('web', 'shop', 'uid-web'));
    assert.notEqual(meshed.last.exitCode, 0);
    const error = JSON.parse(meshed.last.stdout);
    assert.equal(error.code, 11);
    assert.match(error.msg, /cannot be reached/);
    await runChain('DEL', podEnv('web', 'shop', 'uid-web'), JSON.parse(meshed.results[0].stdout)); // the runtime cleans up after a failed ADD

    const plain = await runChain('ADD', podEnv('plain', 'plain', 'uid-plain'));
    assert.equal(plain.last.exitCode, 0, plain.last.stdout);
    assert.deepEqual(JSON.parse(plain.last.stdout), JSON.parse(plain.results[0].stdout));
    assert.equal(JSON.parse(fs.readFileSync(path.join(podsDir, 'uid-plain.json'), 'utf8')).reportedBy, 'sluice-cni', 'left for the agent to find when it is back');

    const sys = await runChain('ADD', podEnv('sys', 'kube-system', 'uid-sys'));
    assert.equal(sys.last.exitCode, 0, sys.last.stdout);
    assert.equal(fs.existsSync(path.join(podsDir, 'uid-sys.json')), false, 'excluded namespaces are never reported');

    const unknownNs = await runChain('ADD', podEnv('late', 'brand-new', 'uid-late'));
    assert.equal(JSON.parse(unknownNs.last.stdout).code, 11, 'a namespace the record does not rule out fails closed');
    await runChain('DEL', podEnv('late', 'brand-new', 'uid-late'), JSON.parse(unknownNs.results[0].stdout));
    await startAgent();
  });

  it('malformed input: a CNI error object on stdout, a non-zero exit, nothing touched', async () => {
    fs.mkdirSync(podsDir, { recursive: true });
    const before = fs.readdirSync(podsDir).sort();
    const cases: [Record<string, string>, string, number][] = [
      [podEnv('web', 'shop', 'uid-web'), '{"cniVersion":', 6],
      [podEnv('web', 'shop', 'uid-web'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'sluice-cni' }), 7],
      [{ ...podEnv('web', 'shop', 'uid-web'), CNI_CONTAINERID: '' }, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'sluice-cni', prevResult: {} }), 4],
      [podEnv('web', 'shop', 'uid-web'), JSON.stringify({ cniVersion: '0.1.0', name: 'n', type: 'sluice-cni', prevResult: {} }), 1],
    ];
    for (const [env, stdin, code] of cases) {
      const r = await runPlugin('sluice-cni', 'ADD', env, stdin);
      assert.notEqual(r.exitCode, 0);
      const e = JSON.parse(r.stdout);
      assert.equal(e.code, code, r.stdout);
      assert.equal(typeof e.msg, 'string');
    }
    assert.deepEqual(fs.readdirSync(podsDir).sort(), before);
  });

  it('ADD takes little time (median of 50 runs of the installed plugin, agent up)', async (t) => {
    const netconf = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'sluice-cni', ...conf, prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.99.0.50/24' }], interfaces: [] } });
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await runPlugin('sluice-cni', 'ADD', podEnv('plain', 'plain', 'uid-plain'), netconf);
      assert.equal(r.exitCode, 0, r.stdout);
      times.push(r.ms);
    }
    t.diagnostic(`sluice-cni ADD median ${median(times).toFixed(1)} ms over 50 runs (including ip netns exec)`);
  });
});

describe('installing on the node: the conflist', { concurrency: false }, () => {
  const idir = path.join(dir, 'install');
  const opts: InstallOptions = { binDir: path.join(idir, 'bin'), confDir: path.join(idir, 'net.d'), nodeBinary: process.execPath, conf: { ...DEFAULT_PLUGIN_CONF, agentTimeoutMs: 3000 } };
  const file = path.join(opts.confDir, '10-calico.conflist');
  const original = {
    name: 'k8s-pod-network',
    cniVersion: '0.3.1',
    plugins: [
      { type: 'calico', log_level: 'info', datastore_type: 'kubernetes', ipam: { type: 'calico-ipam' }, policy: { type: 'k8s' }, kubernetes: { kubeconfig: '/etc/cni/net.d/calico-kubeconfig' } },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
      { type: 'portmap', snat: true, capabilities: { portMappings: true } },
    ],
  };
  const read = () => JSON.parse(fs.readFileSync(file, 'utf8'));

  before(() => {
    fs.mkdirSync(opts.confDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(original));
    fs.writeFileSync(path.join(opts.confDir, '99-loopback.conf'), JSON.stringify({ cniVersion: '0.3.1', name: 'lo', type: 'loopback' }));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('inserts itself once, last, keeping every other plugin, the order and every field', () => {
    const changed = install(opts);
    assert.ok(changed.includes(file));
    assert.ok(fs.statSync(path.join(opts.binDir, 'sluice-cni')).mode & 0o100);
    const list = read();
    assert.deepEqual(list.plugins.map((p: { type: string }) => p.type), ['calico', 'bandwidth', 'portmap', 'sluice-cni']);
    assert.deepEqual({ ...list, plugins: list.plugins.slice(0, 3) }, original);
    assert.deepEqual(list.plugins[3], pluginEntry(opts.conf));
    const text = fs.readFileSync(file, 'utf8');
    assert.deepEqual(install(opts), [], 'a second install changes nothing');
    assert.equal(fs.readFileSync(file, 'utf8'), text);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(opts.confDir, '99-loopback.conf'), 'utf8')).type, 'loopback', 'other files untouched');
    assert.deepEqual(fs.readdirSync(opts.confDir).sort(), ['10-calico.conflist', '99-loopback.conf'], 'no temporary files left');
  });

  it('puts itself back when the primary CNI rewrites its file', async () => {
    const reports: string[][] = [];
    const stop = keepInstalled(opts, (changed) => reports.push(changed), 200);
    try {
      fs.writeFileSync(file, JSON.stringify(original));
      const deadline = Date.now() + 5000;
      while (read().plugins.length !== 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(read().plugins.map((p: { type: string }) => p.type), ['calico', 'bandwidth', 'portmap', 'sluice-cni']);
      assert.ok(reports.some((c) => c.includes(file)));
    } finally {
      stop();
    }
  });

  it('removes itself and its files on uninstall', () => {
    const changed = uninstall(opts.binDir, opts.confDir);
    assert.ok(changed.includes(file));
    assert.deepEqual(read(), original);
    assert.equal(fs.existsSync(path.join(opts.binDir, 'sluice-cni')), false);
    assert.equal(fs.existsSync(path.join(opts.binDir, 'sluice-cni.d')), false);
    assert.deepEqual(uninstall(opts.binDir, opts.confDir), [], 'idempotent');
  });

  it('an uninstall run beside a watching install (kubectl exec into cni-install) stays done', async () => {
    const mark = uninstallMark(opts.binDir, opts.confDir);
    fs.rmSync(mark, { force: true });
    install(opts);
    const reports: string[] = [];
    const stop = keepInstalled(opts, (changed, _error, uninstalled) => reports.push(uninstalled ? 'uninstalled' : changed.join(',')), 100);
    try {
      uninstall(opts.binDir, opts.confDir);
      await new Promise((r) => setTimeout(r, 700));
      assert.deepEqual(read(), original, 'not chained again');
      assert.equal(fs.existsSync(path.join(opts.binDir, 'sluice-cni')), false, 'not copied again');
      assert.deepEqual(reports, ['uninstalled'], 'the watch says it stopped, and re-installs nothing');
    } finally {
      stop();
      fs.rmSync(mark, { force: true });
    }
  });
});
