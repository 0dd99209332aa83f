// sluice-sim as a user meets it: two nodes, errors that say what is wrong,
// exit codes passed through, every namespace named, nothing left after down.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroup2Root, isAlive } from '../../src/sim/host';
import { SimFixture, eventually } from '../helpers/sim-fixture';

const TWO_NODES = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: api, namespace: shop, labels: { app: api } }
spec:
  nodeName: node-2
  containers: [{ name: api, command: ["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"] }]
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: 10.96.1.1
  selector: { app: api }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

const sim = new SimFixture('e2e-simcli');

function leftovers(name: string): string[] {
  const prefix = `sluice-${name}_`;
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(prefix));
  const pins = fs.readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(prefix));
  const cg = fs.existsSync(path.join(cgroup2Root(), `sluice-${name}`)) ? [`cgroup sluice-${name}`] : [];
  return [...netns, ...pins, ...cg, ...(fs.existsSync(`/run/sluice-sim/${name}`) ? ['state dir'] : [])];
}

describe('sluice-sim command line', { timeout: 300000 }, () => {
  before(() => sim.up(TWO_NODES, 2));
  after(() => sim.down());

  it('routes a VIP connection from node-1 to an endpoint on node-2', async () => {
    let r = sim.exec('shop/client', ['curl', '-sS', '--max-time', '5', '--retry', '20', '--retry-connrefused', '--retry-delay', '1', 'http://10.96.1.1/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/api \(10\.244\.2\.\d+\) on node-2/);
    r = sim.run(['ctl', 'node-1', '--', 'status']);
    assert.match(r.stdout, /relayed=[1-9]/);
  });

  it('each agent holds a workload certificate for the identities on its node only', async () => {
    type Cert = { identity: string; state: string; notAfter?: string };
    const certs = (node: string) => sim.ctlJson<Cert[]>(node, 'certs');
    const ok = await eventually(() => certs('node-1').some((c) => c.state === 'valid') && certs('node-2').some((c) => c.state === 'valid'));
    assert.ok(ok, JSON.stringify([certs('node-1'), certs('node-2')]));
    for (const node of ['node-1', 'node-2']) {
      assert.deepEqual(certs(node).map((c) => c.identity), ['spiffe://cluster.local/ns/shop/sa/default']);
      assert.ok(Date.parse(certs(node)[0].notAfter!) > Date.now());
    }
  });

  it('passes the exit code, stdout and stderr of exec through', () => {
    const r = sim.exec('shop/client', ['sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [7, 'out\n', 'err\n']);
  });

  it('names every network namespace it made, and they exist', () => {
    const s = sim.status();
    const all = [s.netns.fabric, ...s.netns.nodes, ...s.netns.pods];
    assert.equal(all.length, 1 + 2 + 2);
    const existing = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const ns of all) assert.ok(existing.includes(ns), `${ns} exists`);
    assert.deepEqual(s.agents.map((a) => [a.node, a.alive, a.ready]), [['node-1', true, true], ['node-2', true, true]]);
  });

  it('rejects a bad apply naming file, object and field, and changes nothing', () => {
    const file = sim.manifest(`
apiVersion: v1
kind: Service
metadata: { name: bad, namespace: shop }
spec:
  clusterIP: 192.168.7.7
  ports: [{ port: 80 }]
---
apiVersion: v1
kind: Pod
metadata: { name: lost, namespace: shop }
spec:
  nodeName: node-9
  containers: [{ name: c, command: ["true"] }]
`);
    const before = sim.status();
    const r = sim.run(['apply', '-f', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /rejected, nothing was changed/);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')} \\(document 1\\): Service bad: spec\\.clusterIP: must lie in 10\\.96\\.0\\.0/12 \\(got "192\\.168\\.7\\.7"\\)`));
    assert.match(r.stderr, /Pod lost: spec\.nodeName: must be one of node-1\.\.node-2 \(got "node-9"\)/);
    assert.deepEqual(sim.status().pods, before.pods);
  });

  it('says clearly when a YAML file is broken or missing', () => {
    const broken = sim.manifest('kind: Pod\nmetadata: { name: x\n');
    let r = sim.run(['apply', '-f', broken]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\(document 1\): invalid YAML/);
    r = sim.run(['apply', '-f', '/nonexistent/x.yaml']);
    assert.match(r.stderr, /\/nonexistent\/x\.yaml: no such file/);
  });

  it('down removes every process, namespace, cgroup and pin', () => {
    const pids = sim.status().agents.map((a) => a.pid!);
    sim.must(['down']);
    assert.deepEqual(leftovers('e2e-simcli'), []);
    for (const pid of pids) assert.equal(isAlive(pid), false, `agent ${pid} is gone`);
  });
});
