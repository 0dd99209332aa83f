// One pod opens far more connections than its share, then the agent runs
// out of descriptors altogether: the agent keeps running, other pods are
// still served, and STRICT never fails open (plaintext stays dropped).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually } from '../helpers/sim-fixture';

// The agents read SLUICE_* variables; sluice-sim passes its environment on.
process.env.SLUICE_MAX_CONNECTIONS = '300';
process.env.SLUICE_MAX_CONNECTIONS_PER_WORKLOAD = '120';

const VIP = '10.96.4.1';
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
  containers: [{ name: api, command: ["node", "{{FIXTURES}}/echo-server.js", "echo", "8080"] }]
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: ${VIP}
  selector: { app: api }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: security.sluice.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  mtls: { mode: STRICT }
${['hog', 'hog-2', 'client'].map((name) => `---
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`).join('')}---
apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: plain }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

/** Opens N connections to the VIP at once and holds them for HOLD ms; prints how many connected and stayed open. */
const HOG = `
const net = require('net');
const [n, hold] = [Number(process.argv[1]), Number(process.argv[2])];
let open = 0, failed = 0;
const sockets = [];
for (let i = 0; i < n; i++) {
  const s = net.connect(80, '${VIP}');
  s.on('connect', () => open++);
  s.on('error', () => failed++);
  s.on('close', () => { if (s.connected) open--; });
  sockets.push(s);
}
setTimeout(() => { console.log(JSON.stringify({ open: sockets.filter((s) => !s.destroyed).length, failed })); process.exit(0); }, hold);
`;

interface Status {
  pid: number;
  ready: boolean;
  proxyCounters: Record<string, number>;
  connectionBudget: { maxConnections: number; maxPerSource: number; inUse: number; waiting: number };
}

const sim = new SimFixture('e2e-exhaustion');
let apiIp = '';
const status = () => sim.ctlJson<Status>('node-1', 'status');
const echo = (pod: string) => sim.exec(pod, ['node', '-e', `const s=require('net').connect(80,'${VIP}',()=>s.end('ping'));let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(d);process.exit(d==='ping'?0:1)});s.on('error',e=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),5000)`]);
const plaintext = () => sim.exec('plain/outsider', ['node', '-e', `const s=require('net').connect(8080,'${apiIp}',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.error(e.code);process.exit(1)});setTimeout(()=>{console.error('timeout');process.exit(1)},2000)`]);

describe('descriptor exhaustion: the agent fails closed and keeps serving', { timeout: 300000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY);
    apiIp = sim.status().pods.find((p) => p.name === 'api')!.ip;
    assert.ok(await eventually(() => echo('shop/client').code === 0, 100, 200), 'the service answers');
    assert.notEqual(plaintext().code, 0, 'STRICT drops plaintext from the start');
  });
  after(() => {
    sim.down();
    delete process.env.SLUICE_MAX_CONNECTIONS;
    delete process.env.SLUICE_MAX_CONNECTIONS_PER_WORKLOAD;
  });

  it('one pod gets its share of the budget, no more: the excess waits, past its queue it is refused; the others are still served', async () => {
    const before = status();
    assert.deepEqual({ max: before.connectionBudget.maxConnections, perSource: before.connectionBudget.maxPerSource }, { max: 300, perSource: 120 });
    // 120 relayed, 720 waiting (six per share: a waiting connection holds one descriptor), 60 refused.
    const hog = sim.execAsync('shop/hog', ['node', '-e', HOG, '900', '6000'], 60000);
    assert.ok(await eventually(() => status().proxyCounters.refusedSourceOverBudget >= 60, 100, 100), 'the excess past the queue is refused');
    const during = status();
    assert.ok(during.connectionBudget.waiting >= 700, `the rest waits (${during.connectionBudget.waiting})`);
    assert.ok(during.connectionBudget.inUse <= 120, `the hog relays at most its share (${during.connectionBudget.inUse})`);
    assert.equal(echo('shop/client').code, 0, 'another pod is still served while the hog holds its share');
    const result = JSON.parse((await hog).stdout.trim()) as { open: number; failed: number };
    assert.ok(result.open <= 840, `the hog held at most its share and its queue (${result.open})`);
    assert.ok(await eventually(() => status().connectionBudget.waiting === 0, 100, 100), 'the queue drains once the hog is gone');
    const after = status();
    assert.equal(after.pid, before.pid, 'the agent did not restart');
  });

  it('with the descriptors themselves exhausted, the agent survives and STRICT stays on', async () => {
    const before = status();
    // Leave the agent ~150 descriptors more than it holds now: two hogs of
    // 120 connections (two descriptors each once relayed) run it out.
    const used = fs.readdirSync(`/proc/${before.pid}/fd`).length;
    const limit = used + 150;
    const original = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync(`/proc/${before.pid}/limits`, 'utf8'))!;
    assert.equal(spawnSync('prlimit', ['--pid', String(before.pid), `--nofile=${limit}:${limit}`]).status, 0);
    try {
      const hogs = [sim.execAsync('shop/hog', ['node', '-e', HOG, '120', '8000'], 60000), sim.execAsync('shop/hog-2', ['node', '-e', HOG, '120', '8000'], 60000)];
      await new Promise((r) => setTimeout(r, 3000));
      // While descriptors are short: plaintext into the STRICT pod is still dropped.
      assert.notEqual(plaintext().code, 0, 'STRICT did not fail open');
      const held = (await Promise.all(hogs)).map((r) => (JSON.parse(r.stdout.trim()) as { open: number }).open);
      // The descriptors really ran out: fewer than the 240 the budget allows stayed open.
      assert.ok(held[0] + held[1] < 240, `connections held: ${held.join(' + ')}`);
      // Rescans and reconciles ran under pressure; the pod keeps its STRICT entry.
      await new Promise((r) => setTimeout(r, 2500));
      assert.notEqual(plaintext().code, 0, 'still dropped after the pressure');
    } finally {
      spawnSync('prlimit', ['--pid', String(before.pid), `--nofile=${original[1]}:${original[2]}`]);
    }
    const after = status();
    assert.equal(after.pid, before.pid, 'the agent did not crash');
    assert.equal(after.ready, true);
    assert.ok(await eventually(() => echo('shop/client').code === 0, 50, 200), 'served again once the connections are gone');
  });
});
