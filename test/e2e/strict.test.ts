// PeerAuthentication STRICT: plaintext connection attempts into an enrolled
// pod are refused in the kernel, while meshed traffic (through the node
// proxy) and probes from the node still get in.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually, projectRoot } from '../helpers/sim-fixture';

const VIP = '10.96.3.1';
const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: v1
kind: Pod
metadata: { name: api, namespace: shop, labels: { app: api } }
spec:
  nodeName: node-1
  containers: [{ name: api, command: ["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"] }]
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: ${VIP}
  selector: { app: api }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
---
apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: plain }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

const peerAuthentication = (mode: string) => `
apiVersion: security.sluice.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  mtls: { mode: ${mode} }
`;

const sim = new SimFixture('e2e-strict');
const agentMain = path.join(projectRoot, 'dist', 'src', 'agent', 'main.js');
let apiIp = '';
const direct = (pod: string) => sim.exec(pod, ['curl', '-sS', '--max-time', '2', `http://${apiIp}:8080/`]);
const viaVip = (pod: string) => sim.exec(pod, ['curl', '-sS', '--max-time', '5', `http://${VIP}/`]);

describe('PeerAuthentication STRICT', { timeout: 300000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY);
    apiIp = sim.status().pods.find((p) => p.name === 'api')!.ip;
    assert.ok(await eventually(() => direct('plain/outsider').code === 0, 100, 100), 'the server answers');
  });
  after(() => sim.down());

  it('refuses a plaintext connection from outside the mesh, in the kernel', () => {
    sim.apply(peerAuthentication('STRICT'));
    const r = direct('plain/outsider');
    assert.notEqual(r.code, 0, 'the outsider is refused');
    const maps = sim.ctlJson<{ counters: Record<string, number> }>('node-1', 'maps');
    assert.ok(maps.counters.strict_dropped > 0, 'dropped by the strict program');
  });

  it('still lets meshed traffic through the node proxy, and probes from the node', () => {
    const r = viaVip('shop/client');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/api/);
    const node = sim.status().netns.nodes[0];
    const probe = spawnSync('nsenter', [`--net=/run/netns/${node}`, '--', 'curl', '-sS', '--max-time', '2', `http://${apiIp}:8080/`], { encoding: 'utf8' });
    assert.equal(probe.status, 0, `a probe from the node: ${probe.stderr}`);
  });

  it('PERMISSIVE lets plaintext in again, applied live, and counts it', () => {
    sim.apply(peerAuthentication('PERMISSIVE'));
    const counted = () => sim.ctlJson<{ counters: Record<string, number> }>('node-1', 'maps').counters.plaintext_accepted;
    const before = counted();
    const r = direct('plain/outsider');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(counted() > before, 'plaintext into an enrolled pod is counted under PERMISSIVE');
  });

  it('sluice-agent uninstall takes STRICT filters and capture off the node', () => {
    sim.apply(peerAuthentication('STRICT'));
    assert.notEqual(direct('plain/outsider').code, 0, 'STRICT holds before the uninstall');
    const node = sim.status().nodes[0];
    sim.must(['agent', 'node-1', 'stop']);
    const r = spawnSync('nsenter', [`--net=/run/netns/${sim.status().netns.nodes[0]}`, '--', process.execPath, agentMain, 'uninstall', '--bpffs', node.bpffs], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { removed } = JSON.parse(r.stdout) as { removed: { strictFilters: number[]; links: string[] } };
    assert.ok(removed.strictFilters.length >= 1, 'the STRICT filter of the api pod');
    assert.equal(removed.links.length, 5, 'every capture program');
    const after = direct('plain/outsider');
    assert.equal(after.code, 0, `plaintext gets in once sluice is off the node: ${after.stderr}`);
    assert.notEqual(viaVip('shop/client').code, 0, 'nothing captures the VIP any more');
    const again = spawnSync('nsenter', [`--net=/run/netns/${sim.status().netns.nodes[0]}`, '--', process.execPath, agentMain, 'uninstall', '--bpffs', node.bpffs], { encoding: 'utf8' });
    assert.equal(again.status, 0, `a second uninstall finds nothing to do: ${again.stderr}`);
  });
});
