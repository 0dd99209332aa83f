// The agents run from the built container image (`npm run image`, which
// scripts/test.sh runs first) the way the kubelet runs the DaemonSet's agent
// container: the image's root filesystem, its Node.js and libbpf, and only
// the capabilities deploy/base/sluice-agent.yaml grants. Capture, policy-free
// relaying and the cross-node mTLS tunnel must all work with that set.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentContainerSpec, capabilityMask } from '../../src/sim/agent-container';
import { SimFixture, projectRoot } from '../helpers/sim-fixture';

const SIM = 'e2e-image';
const VERSION = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
const ARCHIVE = path.join(projectRoot, 'build', 'image', `sluice-${VERSION}.oci.tar`);
const MANIFEST = path.join(projectRoot, 'deploy', 'base', 'sluice-agent.yaml');

const pod = (name: string, node: string, labels: string, cmd: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, labels: { ${labels} } }
spec:
  nodeName: ${node}
  containers: [{ name: main, command: ${cmd} }]
---`;

const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
${pod('web-1', 'node-1', 'app: web', '["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"]')}
${pod('web-2', 'node-2', 'app: web-remote', '["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"]')}
${pod('client', 'node-1', 'role: client', '["sleep", "infinity"]')}
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.10
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: web-remote, namespace: shop }
spec:
  clusterIP: 10.96.0.11
  selector: { app: web-remote }
  ports: [{ port: 80, targetPort: 8080 }]
`;

function procStatus(pid: number): Record<string, string> {
  return Object.fromEntries(
    fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

describe('agents run from the container image with the DaemonSet\'s capabilities', { concurrency: false }, () => {
  const sim = new SimFixture(SIM);

  before(() => {
    assert.ok(fs.existsSync(ARCHIVE), `${ARCHIVE} is missing: build it with "npm run image" (scripts/test.sh does)`);
    sim.up(TOPOLOGY, 2, ARCHIVE);
  });
  after(() => sim.down());

  it('each agent holds exactly the manifest\'s capabilities and runs the image\'s files', () => {
    const want = capabilityMask(agentContainerSpec(MANIFEST).capabilities);
    for (const agent of sim.status().agents) {
      assert.ok(agent.alive && agent.ready && agent.pid, `${agent.node}'s agent is up`);
      const s = procStatus(agent.pid!);
      assert.deepEqual({ CapEff: s.CapEff, CapPrm: s.CapPrm, CapBnd: s.CapBnd, CapInh: s.CapInh, CapAmb: s.CapAmb }, { CapEff: want, CapPrm: want, CapBnd: want, CapInh: '0'.repeat(16), CapAmb: '0'.repeat(16) }, agent.node);
      const root = fs.readlinkSync(`/proc/${agent.pid}/root`);
      assert.equal(root, `/run/sluice-sim/${SIM}/image/rootfs`, 'chrooted into the image');
      assert.equal(fs.readlinkSync(`/proc/${agent.pid}/exe`), `${root}/usr/bin/node`, 'the image\'s Node.js');
      assert.match(fs.readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8'), /^node\0\/usr\/local\/bin\/sluice-agent\0/, 'the image\'s sluice-agent');
    }
  });

  it('captures and relays on the node, with the image\'s addon and BPF object', () => {
    const r = sim.exec('shop/client', ['curl', '-s', '--retry', '5', '--retry-connrefused', '--retry-delay', '1', 'http://10.96.0.10/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/web-1 /);
    const status = sim.ctlJson<{ bpf: { attached: unknown[] } }>('node-1', 'status');
    assert.equal(status.bpf.attached.length, 5, 'every capture program attached');
  });

  it('carries a connection to another node over the mTLS tunnel', () => {
    const r = sim.exec('shop/client', ['curl', '-s', '--retry', '5', '--retry-connrefused', '--retry-delay', '1', 'http://10.96.0.11/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/web-2 \(10\.244\.2\./);
  });

  it('an upgrade from the image hands the listeners over and keeps serving', () => {
    const before = sim.status().agents.find((a) => a.node === 'node-1')!.pid;
    sim.must(['agent', 'node-1', 'upgrade'], 120000);
    const after = sim.status().agents.find((a) => a.node === 'node-1')!;
    assert.ok(after.pid && after.pid !== before && after.alive, 'a new agent runs');
    const r = sim.exec('shop/client', ['curl', '-s', 'http://10.96.0.10/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/web-1 /);
  });
});

/** deploy/base/sluice-agent.yaml with one capability taken out of the agent container. */
function manifestWithout(capability: string, dir: string): string {
  const text = fs.readFileSync(MANIFEST, 'utf8');
  const line = /^(\s+add: )\[(.*)\]$/m.exec(text);
  assert.ok(line, 'the manifest lists the added capabilities on one line');
  const kept = line[2].split(',').map((c) => c.trim()).filter((c) => c !== `"${capability}"`);
  assert.equal(kept.length, line[2].split(',').length - 1, `${capability} is in the manifest`);
  const file = path.join(dir, `sluice-agent-without-${capability}.yaml`);
  fs.writeFileSync(file, text.replace(line[0], `${line[1]}[${kept.join(', ')}]`));
  return file;
}

const STRICT_POD = `
apiVersion: v1
kind: Namespace
metadata: { name: vault, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: security.sluice.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: vault }
spec:
  mtls: { mode: STRICT }
---
apiVersion: v1
kind: Pod
metadata: { name: secrets, namespace: vault }
spec:
  nodeName: node-1
  containers: [{ name: main, command: ["sleep", "infinity"] }]
`;

const ONE_NODE = TOPOLOGY.replace(/nodeName: node-2/g, 'nodeName: node-1');

describe('why the agent container has each of its capabilities', { concurrency: false }, () => {
  const sim = new SimFixture('e2e-imagecap');
  const dir = fs.mkdtempSync(path.join('/tmp', 'sluice-test-imagecap-'));
  after(() => {
    sim.down();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('SYS_ADMIN: without it the agent cannot load its BPF programs (nor, with BPF and PERFMON instead, enroll a pod)', () => {
    const r = sim.run(['up', '-f', sim.manifest(ONE_NODE), '--image', ARCHIVE, '--agent-manifest', manifestWithout('SYS_ADMIN', dir)], 180000);
    assert.notEqual(r.code, 0, 'up fails');
    assert.match(r.stderr, /agent on node-1 exited:[\s\S]*load \/opt\/sluice\/build\/bpf\/sluice\.bpf\.o: Operation not permitted/);
    sim.run(['down']);
    // BPF and PERFMON would let it load and attach, but reading a pod's netns cookie needs setns (SYS_ADMIN).
    const file = path.join(dir, 'sluice-agent-bpf-perfmon.yaml');
    fs.writeFileSync(file, fs.readFileSync(manifestWithout('SYS_ADMIN', dir), 'utf8').replace(/^(\s+add: )\[(.*)\]$/m, '$1["BPF", "PERFMON", $2]'));
    const bpf = sim.run(['up', '-f', sim.manifest(ONE_NODE), '--image', ARCHIVE, '--agent-manifest', file], 180000);
    assert.notEqual(bpf.code, 0, 'up fails');
    assert.match(bpf.stderr, /shop\/client on node-1.*not enrolled yet: netns cookie of .*Operation not permitted/);
    sim.run(['down']);
  });

  it('NET_ADMIN: without it the STRICT filter cannot be attached, and a STRICT pod waits instead of running unprotected', async () => {
    sim.must(['up', '-f', sim.manifest(ONE_NODE), '--image', ARCHIVE, '--agent-manifest', manifestWithout('NET_ADMIN', dir)], 180000);
    const r = sim.exec('shop/client', ['curl', '-s', '--retry', '5', '--retry-connrefused', '--retry-delay', '1', 'http://10.96.0.10/']);
    assert.equal(r.code, 0, `capture and relaying need no NET_ADMIN: ${r.stderr}`);
    const applied = await sim.applyAsync(STRICT_POD, 180000);
    assert.notEqual(applied.code, 0, 'the STRICT pod is not started');
    assert.match(applied.stderr, /vault\/secrets on node-1.*STRICT cannot be enforced: attach tc to ifindex \d+: .*Operation not permitted/);
    assert.equal(sim.status().pods.some((p) => p.name === 'secrets'), false);
  });
});
