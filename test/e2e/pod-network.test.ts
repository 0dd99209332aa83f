// Pods networked by the node's real CNI chain (Debian's bridge + host-local,
// then sluice-cni as `sluice-cni install` chains it), end to end: the agent
// learns every pod from sluice-cni, a meshed pod whose node has no agent
// waits (the runtime retries its sandbox) and starts meshed once the agent
// is back, and deleting a pod releases its address and its record.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture } from '../helpers/sim-fixture';

const SIM = 'e2e-podnet';
const SIM_DIR = `/run/sluice-sim/${SIM}`;
const NODE_DIR = `${SIM_DIR}/nodes/node-1`;

const pod = (name: string, ns: string, labels: string, cmd: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${labels} } }
spec:
  nodeName: node-1
  containers: [{ name: main, command: ${cmd} }]
---`;

const WEB = pod('web', 'mesh', 'app: web', '["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"]');
const LATE = pod('late-client', 'mesh', 'role: client', '["sleep", "infinity"]');
const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: mesh, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
${WEB}
${pod('client', 'mesh', 'role: client', '["sleep", "infinity"]')}
${pod('outsider', 'plain', 'role: client', '["sleep", "infinity"]')}
apiVersion: v1
kind: Service
metadata: { name: web, namespace: mesh }
spec:
  clusterIP: 10.96.0.10
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
`;

interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  ips: string[];
  hostInterface?: string;
  reportedBy: string;
}

function records(): PodRecord[] {
  const dir = path.join(NODE_DIR, 'pods');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as PodRecord);
}

function reservedAddresses(): string[] {
  const dir = path.join(NODE_DIR, 'cni', 'ipam', 'sim-pods');
  return fs.readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
}

describe('pods networked by the CNI chain', { concurrency: false }, () => {
  const sim = new SimFixture(SIM);

  before(() => sim.up(TOPOLOGY));
  after(() => sim.down());

  it('chains sluice-cni last into the node\'s primary conflist', () => {
    const list = JSON.parse(fs.readFileSync(path.join(NODE_DIR, 'cni', 'net.d', '10-sim-pods.conflist'), 'utf8')) as { plugins: { type: string; agentSocket?: string }[] };
    assert.deepEqual(list.plugins.map((p) => p.type), ['bridge', 'sluice-cni']);
    assert.equal(list.plugins[1].agentSocket, path.join(NODE_DIR, 'cni.sock'));
  });

  it('every pod got its address from host-local and was reported to the agent by sluice-cni', () => {
    const status = sim.status();
    const byName = new Map(records().map((r) => [`${r.namespace}/${r.name}`, r]));
    for (const p of status.pods) {
      const r = byName.get(`${p.namespace}/${p.name}`);
      assert.ok(r, `a record for ${p.namespace}/${p.name}`);
      assert.equal(r.reportedBy, 'agent', 'written by the agent when sluice-cni reported the pod');
      assert.deepEqual(r.ips, [p.ip]);
      assert.match(r.hostInterface ?? '', /^veth/, 'the veth the bridge plugin made');
    }
    assert.deepEqual(reservedAddresses(), status.pods.map((p) => p.ip).sort());
    const enrolled = Object.fromEntries(status.pods.map((p) => [`${p.namespace}/${p.name}`, p.enrolled]));
    assert.deepEqual(enrolled, { 'mesh/web': true, 'mesh/client': true, 'plain/outsider': false });
    const r = sim.exec('mesh/client', ['curl', '-s', '--retry', '5', '--retry-connrefused', '--retry-delay', '1', 'http://10.96.0.10/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from mesh\/web /);
  });

  it('a meshed pod created while its node\'s agent is down waits, then starts meshed when the agent is back', async () => {
    sim.must(['agent', 'node-1', 'stop']);
    const applying = sim.applyAsync(LATE);
    await new Promise((r) => setTimeout(r, 3000));
    const waiting = sim.status().pods.find((p) => p.name === 'late-client');
    assert.ok(waiting, 'the pod is known to the sim');
    assert.equal(waiting.running, false, 'its command has not started while no agent can enroll it');
    sim.must(['agent', 'node-1', 'start']);
    const applied = await applying;
    assert.equal(applied.code, 0, applied.stderr);
    const late = sim.status().pods.find((p) => p.name === 'late-client');
    assert.ok(late?.enrolled && late.running, 'enrolled and running');
    const r = sim.exec('mesh/late-client', ['curl', '-s', 'http://10.96.0.10/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from mesh\/web /, 'its connection to the VIP is captured');
  });

  it('deleting a pod removes its record and releases its address', () => {
    const ip = sim.status().pods.find((p) => p.name === 'late-client')!.ip;
    sim.delete(LATE);
    assert.equal(records().some((r) => r.name === 'late-client'), false, 'sluice-cni DEL removed the record');
    assert.equal(reservedAddresses().includes(ip), false, 'host-local released the address');
  });
});
