// End to end on one simulated node: real processes in real network
// namespaces, real clients (curl, redis-benchmark, node TCP clients), the real
// capture programs and node proxy.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { schemaDir } from '../../src/kernel/bpf-datapath';
import { SimFixture, eventually, fixtures } from '../helpers/sim-fixture';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { expectedSha256 } = require(`${fixtures}/blob.js`) as { expectedSha256(mb: number): string };

const SERVER = (name: string, ns: string, labels: string, cmd: string, extra = '') => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${labels} } }
spec:
  nodeName: node-1
  containers: [{ name: main, command: ${cmd} ${extra} }]
---`;

const SERVICE = (name: string, ns: string, ip: string, port: number, target: number, app: string) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterIP: ${ip}
  selector: { app: ${app} }
  ports: [{ port: ${port}, targetPort: ${target} }]
---`;

const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: mesh, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: v1
kind: Namespace
metadata: { name: late }
---
${SERVER('web-1', 'mesh', 'app: web', '["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"]')}
${SERVER('web-2', 'mesh', 'app: web', '["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"]')}
${SERVER('web-refusing', 'mesh', 'app: web', '["sleep", "infinity"]')}
${SERVICE('web', 'mesh', '10.96.0.10', 80, 8080, 'web')}
${SERVER('after-eof', 'mesh', 'app: after-eof', '["node", "{{FIXTURES}}/echo-server.js", "after-eof", "7000"]')}
${SERVICE('after-eof', 'mesh', '10.96.0.20', 7000, 7000, 'after-eof')}
${SERVER('echo', 'mesh', 'app: echo', '["node", "{{FIXTURES}}/echo-server.js", "echo", "7001"]')}
${SERVICE('echo', 'mesh', '10.96.0.21', 7001, 7001, 'echo')}
${SERVER('blob', 'mesh', 'app: blob', '["node", "{{FIXTURES}}/blob.js", "8080"]')}
${SERVICE('blob', 'mesh', '10.96.0.30', 80, 8080, 'blob')}
${SERVER('redis', 'mesh', 'app: redis', '["redis-server", "--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no"]')}
${SERVICE('redis', 'mesh', '10.96.0.40', 6379, 6379, 'redis')}
${SERVER('client', 'mesh', 'role: client', '["sleep", "infinity"]')}
${SERVER('opted-out', 'mesh', 'role: client, sluice.dev/mesh: disabled', '["sleep", "infinity"]')}
${SERVER('outsider', 'plain', 'role: client', '["sleep", "infinity"]')}
${SERVER('latecomer', 'late', 'role: client', '["sleep", "infinity"]')}
`;

const sim = new SimFixture('e2e-capture');
const curl = (pod: string, url: string, timeoutS = 5) => sim.exec(pod, ['curl', '-sS', '--max-time', String(timeoutS), url]);

async function waitForServer(pod: string, argv: string[]): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (sim.exec(pod, argv, 10000).code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server never answered: ${argv.join(' ')}`);
}

describe('single node: capture and node proxy', { timeout: 600000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY);
    const pods = sim.status().pods;
    const ip = (name: string) => pods.find((p) => p.name === name)!.ip;
    // Servers are host processes: wait until they listen (by pod IP, no proxy involved).
    await waitForServer('plain/outsider', ['curl', '-sf', '--max-time', '1', `http://${ip('web-1')}:8080/`]);
    await waitForServer('plain/outsider', ['curl', '-sf', '--max-time', '1', `http://${ip('web-2')}:8080/`]);
    await waitForServer('plain/outsider', ['curl', '-sf', '--max-time', '1', '-o', '/dev/null', `http://${ip('blob')}:8080/blob?mb=1`]);
    await waitForServer('plain/outsider', ['redis-cli', '-h', ip('redis'), 'ping']);
    await waitForServer('plain/outsider', ['node', `${fixtures}/tcp-client.js`, 'peername', ip('echo'), '7001']);
    await waitForServer('plain/outsider', ['node', `${fixtures}/tcp-client.js`, 'peername', ip('after-eof'), '7000']);
  });
  after(() => sim.down());

  it('enrolls the pods of the mesh namespace only', () => {
    const enrolled = Object.fromEntries(sim.status().pods.map((p) => [`${p.namespace}/${p.name}`, p.enrolled]));
    assert.equal(enrolled['mesh/client'], true);
    assert.equal(enrolled['mesh/web-1'], true);
    assert.equal(enrolled['mesh/opted-out'], false, 'a pod labelled sluice.dev/mesh=disabled is never enrolled');
    assert.equal(enrolled['plain/outsider'], false);
  });

  it('a client pod reaches web through its VIP, via the node proxy', () => {
    const r = curl('mesh/client', 'http://10.96.0.10/');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hello from mesh\/web-[12] /);
    const maps = sim.ctlJson<{ counters: Record<string, number> }>('node-1', 'maps');
    assert.ok(maps.counters.connect_captured >= 1, 'connect4 counted the capture');
    const status = sim.ctlJson<{ proxyCounters: Record<string, number> }>('node-1', 'status');
    assert.ok(status.proxyCounters.relayed >= 1, 'the node proxy relayed it');
  });

  it('spreads requests over endpoints and skips one that refuses connections without the client noticing', () => {
    const served = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = curl('mesh/client', 'http://10.96.0.10/');
      assert.equal(r.code, 0, `request ${i} failed: ${r.stderr}`);
      const pod = /hello from (\S+)/.exec(r.stdout)?.[1] ?? '?';
      served.set(pod, (served.get(pod) ?? 0) + 1);
    }
    assert.ok(served.get('mesh/web-1')! > 0 && served.get('mesh/web-2')! > 0, `both endpoints serve: ${JSON.stringify([...served])}`);
    const status = sim.ctlJson<{ proxyCounters: Record<string, number> }>('node-1', 'status');
    assert.ok(status.proxyCounters.connectAttemptsFailed >= 1, 'the refusing endpoint was tried and skipped');
  });

  it('the application sees the VIP as its peer (getpeername)', () => {
    const r = sim.exec('mesh/client', ['node', `${fixtures}/tcp-client.js`, 'peername', '10.96.0.21', '7001']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '10.96.0.21:7001');
  });

  it('does not redirect pods outside the mesh: their VIP connects fail, as with no mesh at all', () => {
    for (const pod of ['plain/outsider', 'mesh/opted-out']) {
      const r = curl(pod, 'http://10.96.0.10/', 2);
      assert.notEqual(r.code, 0, `${pod} must not reach the VIP`);
    }
    const web1 = sim.status().pods.find((p) => p.name === 'web-1')!.ip;
    assert.equal(curl('plain/outsider', `http://${web1}:8080/`).code, 0, 'the pod network itself works');
  });

  it('moves 256 MiB through the VIP with the same checksum', () => {
    const r = sim.exec('mesh/client', ['sh', '-c', 'curl -sS --max-time 120 "http://10.96.0.30/blob?mb=256" | sha256sum'], 180000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], expectedSha256(256));
  });

  it('keeps the other direction open after the client half-closes', () => {
    const r = sim.exec('mesh/client', ['node', `${fixtures}/tcp-client.js`, 'half-close', '10.96.0.20', '7000', '100000']);
    assert.equal(r.code, 0, r.stderr);
    const sent = Buffer.alloc(100000, 0x61);
    const hash = require('node:crypto').createHash('sha256').update(sent).digest('hex');
    assert.equal(r.stdout.trim(), `got 100000 bytes sha256 ${hash}`);
  });

  it('completes 500 concurrent connections', () => {
    const r = sim.exec('mesh/client', ['node', `${fixtures}/tcp-client.js`, 'concurrent', '10.96.0.21', '7001', '500'], 90000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.trim(), 'ok 500');
  });

  it('serves redis-benchmark through the VIP', () => {
    const r = sim.exec('mesh/client', ['redis-benchmark', '-h', '10.96.0.40', '-p', '6379', '-n', '2000', '-c', '20', '-t', 'ping,set,get', '-q'], 90000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /GET: .*requests per second/);
  });

  it('leaves connections opened before enrollment intact', async () => {
    const echoIp = sim.status().pods.find((p) => p.name === 'echo')!.ip;
    const running = sim.execAsync('late/latecomer', ['node', `${fixtures}/tcp-client.js`, 'steady', echoIp, '7001', '4']);
    await new Promise((r) => setTimeout(r, 1000));
    sim.apply(`
apiVersion: v1
kind: Namespace
metadata: { name: late, labels: { sluice.dev/mesh: enabled } }
`);
    assert.equal(sim.status().pods.find((p) => p.name === 'latecomer')!.enrolled, true, 'enrolled without restart');
    const counted = await eventually(() => {
      const s = sim.ctlJson<{ enrolled: { workload: string; preexistingConnections?: number }[] }>('node-1', 'status');
      return s.enrolled.find((e) => e.workload === 'late/latecomer')?.preexistingConnections === 1;
    });
    assert.ok(counted, 'the agent counted the connection that was open before enrollment');
    const r = await running;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /ok \d+ lines/);
    assert.equal(curl('late/latecomer', 'http://10.96.0.10/').code, 0, 'new connections are captured');
  });

  it('follows endpoint changes: a deleted pod gets no more traffic', () => {
    sim.delete(SERVER('web-2', 'mesh', 'app: web', '["sleep", "infinity"]'));
    for (let i = 0; i < 10; i++) {
      const r = curl('mesh/client', 'http://10.96.0.10/');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /hello from mesh\/web-1 /);
    }
  });

  it('keeps pins while the agent restarts, then captures again', () => {
    const before = sim.status().nodes[0];
    const pins = fs.readdirSync(schemaDir(before.bpffs)).sort();
    sim.must(['agent', 'node-1', 'stop']);
    assert.deepEqual(fs.readdirSync(schemaDir(before.bpffs)).sort(), pins, 'maps and links stay pinned while the agent is away');
    sim.must(['agent', 'node-1', 'start']);
    const status = sim.ctlJson<{ bpf: { attached: { program: string; reused: boolean }[] } }>('node-1', 'status');
    assert.ok(status.bpf.attached.length === 5 && status.bpf.attached.every((a) => a.reused), 'the restarted agent re-used the pinned links');
    const r = curl('mesh/client', 'http://10.96.0.10/');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from mesh\/web-1 /);
  });
});
