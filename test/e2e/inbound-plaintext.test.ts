// Authorization policy holds for plaintext from outside the mesh: a pod that
// is not enrolled (same node) and one on another node dial a meshed pod's
// own address. Under PERMISSIVE, with a policy selecting the pod, the
// kernel's inbound program hands those connections to the node proxy's
// listener inside the pod's netns, and the proxy judges them with no
// identity (only ipBlocks and ports can allow them), as Istio ambient does.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually, projectRoot } from '../helpers/sim-fixture';

const API = 'security.sluice.dev/v1alpha1';
const HELLO = '{{FIXTURES}}/../../examples/apps/hello-server.js';

const pod = (ns: string, name: string, node: string, command: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { app: ${name} } }
spec:
  nodeName: ${node}
  containers: [{ name: c, command: ${command} }]
`;

const TOPOLOGY = [
  `apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }`,
  `apiVersion: v1
kind: Namespace
metadata: { name: frontend, labels: { sluice.dev/mesh: enabled } }`,
  `apiVersion: v1
kind: Namespace
metadata: { name: plain }`,
  pod('shop', 'server', 'node-1', `["node", "${HELLO}"]`),
  pod('frontend', 'client', 'node-1', '["sleep", "infinity"]'),
  pod('plain', 'near', 'node-1', '["sleep", "infinity"]'),
  pod('plain', 'far', 'node-2', '["sleep", "infinity"]'),
].join('\n---\n');

const allowFrontend = (extra = '') => `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: server } }
  action: ALLOW
  rules:
    - from: [{ source: { namespaces: ["frontend"] } }]
${extra}`;

const sim = new SimFixture('e2e-inbound');
const agentMain = path.join(projectRoot, 'dist', 'src', 'agent', 'main.js');
let serverIp = '';
let nearIp = '';

const curl = (from: string) => sim.exec(from, ['curl', '-sS', '--max-time', '3', `http://${serverIp}:8080/`]);

interface Status {
  proxyCounters: Record<string, number>;
  inboundCapture: { pods: { pod: string; ip: string; listening: boolean; error?: string }[]; mapErrors: string[] };
  pid: number;
}
const status = () => sim.ctlJson<Status>('node-1', 'status');
const bpfCounters = () => sim.ctlJson<{ counters: Record<string, number> }>('node-1', 'maps').counters;

function agentLog(): string {
  const s = JSON.parse(sim.must(['status', '-o', 'json'])) as { agents: { node: string; log: string }[] };
  return fs.readFileSync(s.agents.find((a) => a.node === 'node-1')!.log, 'utf8');
}

async function listening(): Promise<boolean> {
  return eventually(() => status().inboundCapture.pods.some((p) => p.pod === 'shop/server' && p.listening), 100, 100);
}

describe('policy holds for plaintext from outside the mesh', { timeout: 300000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY, 2);
    const pods = sim.status().pods;
    serverIp = pods.find((p) => p.name === 'server')!.ip;
    nearIp = pods.find((p) => p.name === 'near')!.ip;
    assert.ok(await eventually(() => curl('plain/far').code === 0, 100, 200), 'the server answers across nodes');
  });
  after(() => sim.down());

  it('without a policy, plaintext goes straight into the pod: no listener, nothing redirected', () => {
    for (const from of ['plain/near', 'plain/far']) assert.equal(curl(from).code, 0, `${from} is served`);
    assert.deepEqual(status().inboundCapture.pods, [], 'no pod needs inbound capture');
    assert.equal(bpfCounters().inbound_redirected, 0);
  });

  it('with an ALLOW policy for namespace frontend, plaintext from outside the mesh is refused, same node and across nodes', async () => {
    const logOffset = agentLog().length;
    const denied = status().proxyCounters.policyDenied;
    sim.apply(allowFrontend());
    assert.ok(await listening(), `the node proxy listens in the pod: ${JSON.stringify(status().inboundCapture)}`);
    for (const from of ['plain/near', 'plain/far']) {
      const r = curl(from);
      assert.notEqual(r.code, 0, `${from} must be refused, got: ${r.stdout}`);
    }
    assert.ok(bpfCounters().inbound_redirected >= 2, 'the kernel handed both connections to the proxy');
    assert.ok(status().proxyCounters.policyDenied >= denied + 2, 'the proxy denied them');
    const lines = agentLog().slice(logOffset).split('\n').filter((l) => l.includes('connection denied'));
    assert.ok(lines.some((l) => l.includes('outside the mesh') && l.includes('shop/allow-frontend')), `the denial names the source and the policy: ${lines.join('\n')}`);
  });

  it('a meshed client in the allowed namespace still reaches the pod by its address', () => {
    const r = curl('frontend/client');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/server/);
  });

  it('ipBlocks can allow plaintext from outside the mesh: the allowed address is served through the proxy, the other is not', () => {
    const redirected = bpfCounters().inbound_redirected;
    sim.apply(allowFrontend(`    - from: [{ source: { ipBlocks: ["${nearIp}/32"] } }]`));
    const r = curl('plain/near');
    assert.equal(r.code, 0, `the address the policy allows is served: ${r.stderr}`);
    assert.match(r.stdout, /hello from shop\/server/);
    assert.notEqual(curl('plain/far').code, 0, 'another address is still refused');
    assert.ok(bpfCounters().inbound_redirected >= redirected + 2, 'both went through the proxy');
  });

  it('after an agent restart the policy still holds, and allowed plaintext is served again', async () => {
    const before = status().pid;
    sim.must(['agent', 'node-1', 'restart'], 120000);
    assert.notEqual(status().pid, before, 'a new agent runs');
    assert.ok(await listening(), 'the new agent listens in the pod');
    assert.notEqual(curl('plain/far').code, 0, 'still refused');
    assert.equal(curl('plain/near').code, 0, 'still served');
  });

  it('an upgrade (the new agent takes over the listeners of the old one) keeps the policy and serves what it allows', async () => {
    const before = status().pid;
    sim.must(['agent', 'node-1', 'upgrade'], 120000);
    assert.notEqual(status().pid, before, 'the new agent answers');
    assert.ok(await listening(), 'the new agent listens in the pod');
    assert.notEqual(curl('plain/far').code, 0, 'still refused');
    assert.equal(curl('plain/near').code, 0, 'still served');
  });

  it('deleting the policy lets plaintext straight in again', async () => {
    sim.delete(allowFrontend());
    assert.ok(await eventually(() => status().inboundCapture.pods.length === 0, 100, 100), 'the listener is closed');
    const redirected = bpfCounters().inbound_redirected;
    for (const from of ['plain/near', 'plain/far']) assert.equal(curl(from).code, 0, `${from} is served`);
    assert.equal(bpfCounters().inbound_redirected, redirected, 'nothing goes through the proxy any more');
  });

  it('with the agent stopped, plaintext into a protected pod is dropped (fail closed); sluice-agent uninstall lets it in', async () => {
    sim.apply(allowFrontend());
    assert.ok(await listening(), 'protected again');
    const node = sim.status().nodes[0];
    sim.must(['agent', 'node-1', 'stop']);
    assert.notEqual(curl('plain/far').code, 0, 'no agent, no listener: the SYN is dropped, never let past the policy');
    const r = spawnSync('nsenter', [`--net=/run/netns/${sim.status().netns.nodes[0]}`, '--', process.execPath, agentMain, 'uninstall', '--bpffs', node.bpffs], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const after = curl('plain/far');
    assert.equal(after.code, 0, `sluice is off the node: plaintext goes straight in: ${after.stderr}`);
  });
});
