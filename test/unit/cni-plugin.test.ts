// sluice-cni's pure parts: the spec's environment, configuration and errors,
// which pods need the mesh, the conflist editor, and the plugin run in-process
// against a stand-in agent on a unix socket in a temp directory.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { matchRunningPods, type LocalWorkload } from '../../src/agent/cni-endpoint';
import { validatePodReport } from '../../src/cni/agent-protocol';
import { CNI_ERROR, hostInterfaceOf, parseCniArgs, parseNetConf, podFromArgs, readCniEnv, resultIps, versionAnswer } from '../../src/cni/cni-spec';
import { insertSluice, primaryConfigFile, removeSluice } from '../../src/cni/conflist';
import { meshNeed, meshRecordFrom, parseMeshRecord } from '../../src/cni/mesh-record';
import { runPlugin } from '../../src/cni/plugin';
import { pluginConf } from '../../src/cni/plugin-conf';

const bridgeResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0', mac: 'aa:aa:aa:aa:aa:01' }, { name: 'veth1234', mac: 'aa:aa:aa:aa:aa:02' }, { name: 'eth0', mac: 'aa:aa:aa:aa:aa:03', sandbox: '/var/run/netns/cni-1' }],
  ips: [{ interface: 2, address: '10.244.1.5/24', gateway: '10.244.1.1' }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

const w = (uid: string, namespace: string, captured: boolean, node = 'node-a', labels: Record<string, string> = {}): LocalWorkload => ({ uid, namespace, name: uid, node, captured, labels, ips: [] });

describe('CNI spec: environment and configuration', () => {
  it('reads CNI_ARGS and the pod they name', () => {
    const args = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=0d3c-11');
    assert.deepEqual(podFromArgs(args), { namespace: 'shop', name: 'web-0', uid: '0d3c-11' });
    assert.equal(podFromArgs(parseCniArgs('IgnoreUnknown=1')), undefined);
    assert.throws(() => parseCniArgs('K8S_POD_NAME'), (e: { code: number }) => e.code === CNI_ERROR.invalidEnvironment);
    assert.throws(() => podFromArgs({ K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'a', K8S_POD_UID: '../../etc' }), /K8S_POD_UID/);
  });

  it('refuses a missing command, container id or interface name with code 4 naming the variables', () => {
    assert.throws(() => readCniEnv({}), (e: { code: number; message: string }) => e.code === 4 && /CNI_COMMAND/.test(e.message));
    assert.throws(() => readCniEnv({ CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }), (e: { code: number; message: string }) => e.code === 4 && /CNI_CONTAINERID/.test(e.message));
    assert.throws(() => readCniEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'a-name-longer-than-15' }), /CNI_IFNAME/);
    assert.equal(readCniEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }).netns, '');
  });

  it('refuses bad stdin: 6 for not JSON, 7 for missing fields, 1 for an unsupported version', () => {
    assert.throws(() => parseNetConf('{'), (e: { code: number }) => e.code === 6);
    assert.throws(() => parseNetConf('[]'), (e: { code: number }) => e.code === 6);
    assert.throws(() => parseNetConf('{"cniVersion":"1.0.0","type":"sluice-cni"}'), (e: { code: number; message: string }) => e.code === 7 && /name/.test(e.message));
    assert.throws(() => parseNetConf('{"cniVersion":"9.9.9","name":"n","type":"t"}'), (e: { code: number }) => e.code === 1);
    assert.throws(() => pluginConf({ agentSocket: 'relative' }), (e: { code: number; message: string }) => e.code === 7 && /agentSocket/.test(e.message));
    assert.deepEqual(pluginConf({ excludeNamespaces: ['infra'] }).excludeNamespaces, ['infra']);
  });

  it('VERSION answers in the version asked, listing 1.0.0 and 1.1.0', () => {
    const v = versionAnswer('{"cniVersion":"1.0.0"}');
    assert.equal(v.cniVersion, '1.0.0');
    assert.ok(v.supportedVersions.includes('1.0.0') && v.supportedVersions.includes('1.1.0'));
    assert.equal(versionAnswer('garbage').cniVersion, '1.1.0');
  });

  it('finds the pod IPs and the host-side interface in a result', () => {
    assert.deepEqual(resultIps(bridgeResult), ['10.244.1.5']);
    assert.equal(hostInterfaceOf(bridgeResult, 'eth0'), 'veth1234');
    assert.equal(hostInterfaceOf({ interfaces: [{ name: 'eth0', sandbox: '/x' }] }, 'eth0'), undefined);
  });
});

describe('which pods need the mesh', () => {
  const record = meshRecordFrom([w('a', 'shop', true), w('b', 'shop', false, 'node-a', { 'sluice.dev/mesh': 'disabled' }), w('c', 'plain', false), w('d', 'optout', false, 'node-b', { 'sluice.dev/mesh': 'disabled' })], 'node-a');

  it('the agent records meshed namespaces, unmeshed ones and its own opted-out pods', () => {
    assert.deepEqual(record.meshedNamespaces, ['shop']);
    assert.deepEqual(record.unmeshedNamespaces, ['plain'], 'a namespace whose only pod opted out is in neither list');
    assert.deepEqual(record.unmeshedPods, ['b', 'c']);
    assert.deepEqual(parseMeshRecord(JSON.stringify(record)), record);
    assert.equal(parseMeshRecord('{"version":2}'), undefined);
  });

  it('skips what the mesh never touches, and fails closed for what it cannot rule out', () => {
    const ex = ['kube-system', 'sluice-system'];
    assert.equal(meshNeed(undefined, '/n', ex, record).kind, 'skip');
    assert.equal(meshNeed({ namespace: 'shop', uid: 'x' }, '', ex, record).kind, 'skip', 'host network');
    assert.equal(meshNeed({ namespace: 'kube-system', uid: 'x' }, '/n', ex, undefined).kind, 'skip');
    assert.equal(meshNeed({ namespace: 'shop', uid: 'x' }, '/n', ex, record).kind, 'required');
    assert.equal(meshNeed({ namespace: 'shop', uid: 'b' }, '/n', ex, record).kind, 'optional', 'opted-out pod of a meshed namespace');
    assert.equal(meshNeed({ namespace: 'plain', uid: 'x' }, '/n', ex, record).kind, 'optional');
    assert.equal(meshNeed({ namespace: 'optout', uid: 'x' }, '/n', ex, record).kind, 'required');
    assert.equal(meshNeed({ namespace: 'new', uid: 'x' }, '/n', ex, record).kind, 'required');
    assert.equal(meshNeed({ namespace: 'plain', uid: 'x' }, '/n', ex, undefined).kind, 'required', 'no record: cannot tell');
  });
});

describe('conflist editor', () => {
  const primary = {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    disableCheck: false,
    plugins: [
      { type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]] } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  const entry = { type: 'sluice-cni', agentTimeoutMs: 5000 };

  it('inserts sluice-cni last, once, keeping every other plugin, its order and every other field', () => {
    const once = insertSluice(JSON.stringify(primary), entry)!;
    const parsed = JSON.parse(once);
    assert.deepEqual(parsed.plugins.map((p: { type: string }) => p.type), ['bridge', 'portmap', 'sluice-cni']);
    assert.deepEqual({ ...parsed, plugins: parsed.plugins.slice(0, 2) }, primary);
    assert.equal(insertSluice(once, entry), undefined, 'idempotent: nothing to write the second time');
    const moved = JSON.parse(insertSluice(JSON.stringify({ ...primary, plugins: [entry, ...primary.plugins] }), { type: 'sluice-cni' })!);
    assert.deepEqual(moved.plugins.map((p: { type: string }) => p.type), ['bridge', 'portmap', 'sluice-cni'], 'an earlier entry is moved last, with the new settings');
    assert.deepEqual(moved.plugins[2], { type: 'sluice-cni' });
  });

  it('turns a single-plugin .conf into a list, and removes itself again', () => {
    const conf = { cniVersion: '0.4.0', name: 'net', type: 'bridge', bridge: 'cni0' };
    const list = JSON.parse(insertSluice(JSON.stringify(conf), entry)!);
    assert.deepEqual(list, { cniVersion: '0.4.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'cni0' }, entry] });
    assert.deepEqual(JSON.parse(removeSluice(JSON.stringify(list))!), { cniVersion: '0.4.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'cni0' }] });
    assert.equal(removeSluice(JSON.stringify(primary)), undefined);
    assert.throws(() => insertSluice('{"name":"x"}', entry), /neither/);
  });

  it('picks the primary file as the runtime does: the first config file in lexical order', () => {
    assert.equal(primaryConfigFile(['99-loopback.conf', '10-calico.conflist', '.hidden.conflist', 'README', '10-calico.conflist.tmp']), '10-calico.conflist');
    assert.equal(primaryConfigFile(['README']), undefined);
  });
});

describe('pods running before the agent are matched by IP', () => {
  it('one netns per workload; ambiguous IPs match nothing', () => {
    const ws = [{ ...w('u1', 'shop', true), ips: ['10.244.1.5'] }, { ...w('u2', 'shop', true), ips: ['10.244.1.6'] }, { ...w('u3', 'shop', true), ips: ['10.244.1.7'] }];
    const netns = new Map([['/var/run/netns/cni-a', ['10.244.1.5']], ['/var/run/netns/cni-b', ['10.244.1.7']], ['/var/run/netns/cni-c', ['10.244.1.7']]]);
    assert.deepEqual(matchRunningPods(ws, netns), [{ uid: 'u1', namespace: 'shop', name: 'u1', netns: '/var/run/netns/cni-a', ips: ['10.244.1.5'] }]);
  });

  it('the agent validates reports: the uid becomes a file name', () => {
    const good = { uid: 'u1', namespace: 'shop', name: 'web', netns: '/var/run/netns/x', containerId: 'c1', ifname: 'eth0', ips: ['10.0.0.1'], waitMs: 100 };
    assert.deepEqual(validatePodReport(good), good);
    assert.throws(() => validatePodReport({ ...good, uid: '../x' }), /uid/);
    assert.throws(() => validatePodReport({ ...good, netns: 'x', waitMs: -1 }), /netns.*waitMs/);
  });
});

describe('the plugin against a stand-in agent', () => {
  let dir: string;
  let server: http.Server;
  let answer: { status: number; body: unknown } = { status: 200, body: { enrolled: true } };
  const reports: unknown[] = [];
  const conf = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ cniVersion: '1.0.0', name: 'k8s', type: 'sluice-cni', agentSocket: path.join(dir, 'cni.sock'), podNetnsDir: path.join(dir, 'pods'), meshRecord: path.join(dir, 'mesh.json'), agentTimeoutMs: 1000, prevResult: bridgeResult, ...extra });
  const env = (command: string, ns = 'shop', extra: NodeJS.ProcessEnv = {}) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'sandbox1',
    CNI_NETNS: '/var/run/netns/cni-1',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=web-0;K8S_POD_UID=uid-1`,
    ...extra,
  });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cni-unit-'));
    fs.writeFileSync(path.join(dir, 'mesh.json'), JSON.stringify(meshRecordFrom([w('x', 'shop', true), w('y', 'plain', false)], 'node-a')));
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (body) reports.push(JSON.parse(body));
        const text = JSON.stringify(answer.body);
        res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
    await new Promise<void>((r) => server.listen(path.join(dir, 'cni.sock'), r));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ADD reports the pod and prints prevResult unchanged', async () => {
    answer = { status: 200, body: { enrolled: true } };
    const out = await runPlugin(env('ADD'), conf());
    assert.equal(out.exitCode, 0, out.stdout);
    assert.deepEqual(JSON.parse(out.stdout), bridgeResult);
    assert.deepEqual(reports.at(-1), { uid: 'uid-1', namespace: 'shop', name: 'web-0', netns: '/var/run/netns/cni-1', containerId: 'sandbox1', ifname: 'eth0', ips: ['10.244.1.5'], hostInterface: 'veth1234', waitMs: 500 });
  });

  it('ADD of a meshed pod fails with 11 when the agent does not enroll it; an unmeshed pod goes on and leaves its record', async () => {
    answer = { status: 503, body: { error: 'the control plane has not told this agent about the pod yet' } };
    const meshed = await runPlugin(env('ADD'), conf());
    assert.equal(meshed.exitCode, 1);
    assert.equal(JSON.parse(meshed.stdout).code, 11);
    const plain = await runPlugin(env('ADD', 'plain'), conf());
    assert.equal(plain.exitCode, 0);
    assert.deepEqual(JSON.parse(plain.stdout), bridgeResult);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'pods', 'uid-1.json'), 'utf8')).reportedBy, 'sluice-cni');
    answer = { status: 400, body: { error: 'invalid uid' } };
    assert.equal(JSON.parse((await runPlugin(env('ADD'), conf())).stdout).code, 100);
  });

  it('CHECK finds the record ADD left; DEL removes it and stays idempotent', async () => {
    assert.equal((await runPlugin(env('CHECK', 'plain'), conf())).exitCode, 0);
    assert.equal((await runPlugin(env('CHECK', 'plain', { CNI_CONTAINERID: 'other' }), conf())).exitCode, 1);
    assert.deepEqual(await runPlugin(env('DEL', 'plain'), conf()), { stdout: '', exitCode: 0, log: 'sluice-cni: DEL sandbox1 (k8s): 1 record(s) removed' });
    assert.equal((await runPlugin(env('DEL', 'plain'), conf())).exitCode, 0);
    assert.equal((await runPlugin(env('DEL', 'plain', { CNI_NETNS: '', CNI_ARGS: '' }), conf({ prevResult: undefined }))).exitCode, 0);
    assert.equal(JSON.parse((await runPlugin(env('CHECK', 'plain'), conf())).stdout).code, 101);
  });

  it('STATUS is empty when the agent is ready, 50 when not', async () => {
    answer = { status: 200, body: { ready: true } };
    assert.deepEqual(await runPlugin({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0', prevResult: undefined })), { stdout: '', exitCode: 0 });
    const down = await runPlugin({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0', prevResult: undefined, agentSocket: path.join(dir, 'none.sock') }));
    assert.equal(JSON.parse(down.stdout).code, 50);
  });

  it('ADD without prevResult, or with malformed input, is an error object and touches nothing', async () => {
    fs.rmSync(path.join(dir, 'pods'), { recursive: true, force: true });
    const before = reports.length;
    for (const [e, stdin, code] of [
      [env('ADD'), conf({ prevResult: undefined }), 7],
      [env('ADD'), 'not json', 6],
      [env('ADD', 'shop', { CNI_IFNAME: '' }), conf(), 4],
      [env('ADD', 'shop', { CNI_ARGS: 'K8S_POD_NAMESPACE=Bad_NS;K8S_POD_NAME=a' }), conf(), 4],
      [env('ADD'), conf({ agentTimeoutMs: 'soon' }), 7],
    ] as const) {
      const out = await runPlugin(e, stdin);
      const error = JSON.parse(out.stdout);
      assert.equal(out.exitCode, 1);
      assert.equal(error.code, code, out.stdout);
      assert.equal(typeof error.msg, 'string');
      assert.equal(typeof error.cniVersion, 'string');
    }
    assert.equal(reports.length, before, 'the agent was not called');
    assert.equal(fs.existsSync(path.join(dir, 'pods')), false, 'no record written');
  });
});
