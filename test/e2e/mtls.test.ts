// Two nodes: a client on node-1 reaches a service whose endpoint runs on
// node-2. The bytes between the nodes are TLS (a capture on the fabric link
// shows no plaintext), and node-2's agent authorizes by the verified
// principal of the source workload.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually, fixtures } from '../helpers/sim-fixture';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { expectedSha256 } = require(`${fixtures}/blob.js`) as { expectedSha256(mb: number): string };

// Short-lived workload certificates, so that they rotate during the tests
// (the agents read SLUICE_* variables; sluice-sim passes its environment on).
process.env.SLUICE_CERTIFICATE_TTL = '10';

const VIP = '10.96.2.1';
const BLOB_VIP = '10.96.2.2';
const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: api, namespace: shop, labels: { app: api } }
spec:
  nodeName: node-2
  serviceAccountName: api
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
metadata: { name: blob, namespace: shop, labels: { app: blob } }
spec:
  nodeName: node-2
  serviceAccountName: api
  containers: [{ name: blob, command: ["node", "{{FIXTURES}}/blob.js", "8080"] }]
---
apiVersion: v1
kind: Service
metadata: { name: blob, namespace: shop }
spec:
  clusterIP: ${BLOB_VIP}
  selector: { app: blob }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec:
  nodeName: node-1
  serviceAccountName: web
  containers: [{ name: c, command: ["sleep", "infinity"] }]
---
apiVersion: v1
kind: Pod
metadata: { name: batch, namespace: shop }
spec:
  nodeName: node-1
  serviceAccountName: batch
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

const sim = new SimFixture('e2e-mtls');
const curl = (pod: string) => sim.exec(pod, ['curl', '-sS', '--max-time', '5', `http://${VIP}/`]);
/** The agents' last log lines about refused or denied connections, for a failure message. */
const refusals = () =>
  ['node-1', 'node-2']
    .map((n) => `${n}: ${fs.readFileSync(`/run/sluice-sim/e2e-mtls/logs/agent-${n}.log`, 'utf8').split('\n').filter((l) => /denied|refused|failed|error/i.test(l)).slice(-5).join('\n')}`)
    .join('\n');

interface Status {
  tunnels: { streamsOpened: number; server: { accepted: number; refusedPolicy: number } } | null;
}

describe('two nodes: mutual TLS between node proxies', { timeout: 300000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY, 2);
    // The server starts with its pod, and each agent needs its certificates first.
    const ok = await eventually(() => curl('shop/web').code === 0, 100, 200);
    assert.ok(ok, `cross-node request never succeeded: ${curl('shop/web').stderr}`);
  });
  after(() => sim.down());

  it('a client on node-1 reaches the endpoint on node-2 through the tunnel', () => {
    const r = curl('shop/web');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from shop\/api \(10\.244\.2\.\d+\) on node-2/);
    const n1 = sim.ctlJson<Status>('node-1', 'status');
    const n2 = sim.ctlJson<Status>('node-2', 'status');
    assert.ok(n1.tunnels && n1.tunnels.streamsOpened >= 1, 'node-1 opened tunnel streams');
    assert.ok(n2.tunnels && n2.tunnels.server.accepted >= 1, 'node-2 accepted them');
  });

  it('the link between the nodes carries TLS, never the plaintext request or response', async () => {
    const fabric = sim.status().netns.fabric;
    const pcap = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-mtls-')), 'fabric.pcap');
    const dump = spawn('nsenter', [`--net=/run/netns/${fabric}`, '--', 'tcpdump', '-i', 'br0', '-U', '-s', '0', '-w', pcap, 'tcp'], { stdio: 'ignore' });
    try {
      await eventually(() => fs.existsSync(pcap), 50, 100);
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 5; i++) assert.equal(curl('shop/web').code, 0);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      dump.kill('SIGINT');
      await new Promise((r) => dump.once('exit', r));
    }
    const bytes = fs.readFileSync(pcap);
    assert.ok(bytes.length > 1000, 'the capture saw traffic');
    assert.equal(bytes.includes(Buffer.from('hello from')), false, 'no plaintext response on the wire');
    assert.equal(bytes.includes(Buffer.from('GET / HTTP')), false, 'no plaintext request on the wire');
    const count = (filter: string) => spawnSync('tcpdump', ['-nn', '-r', pcap, filter], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).length;
    assert.ok(count('tcp port 15008') > 0, 'traffic went to the tunnel port');
    assert.equal(count('tcp port 8080'), 0, 'nothing went to the pod port across the link');
    fs.rmSync(path.dirname(pcap), { recursive: true, force: true });
  });

  it('certificate rotation during a long transfer does not break it', async () => {
    type Cert = { identity: string; serial?: string };
    const serials = () => sim.ctlJson<Cert[]>('node-1', 'certs').map((c) => `${c.identity}=${c.serial}`).sort().join(' ');
    const before = serials();
    // About 16 s at 2 MiB/s: longer than a certificate's half-life (5 s).
    const transfer = sim.execAsync('shop/web', ['sh', '-c', `curl -sS --max-time 60 --limit-rate 2M "http://${BLOB_VIP}/blob?mb=32" | sha256sum`], 90000);
    const r = await transfer;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], expectedSha256(32), 'the transfer arrived whole');
    assert.notEqual(serials(), before, 'certificates rotated while it ran');
  });

  it('with the control plane down, established and new connections keep working while certificates are valid', async () => {
    const long = sim.execAsync('shop/web', ['sh', '-c', `curl -sS --max-time 30 --limit-rate 1M "http://${BLOB_VIP}/blob?mb=3" | sha256sum`], 60000);
    sim.must(['control', 'stop']);
    try {
      const r = curl('shop/web');
      assert.equal(r.code, 0, `new connection with the control plane down: ${r.stderr}`);
      const done = await long;
      assert.equal(done.stdout.split(' ')[0], expectedSha256(3), 'the established transfer completed');
    } finally {
      sim.must(['control', 'start']);
    }
  });

  it('node-2 authorizes by principal: the web service account is allowed, batch is refused', async () => {
    sim.apply(`
apiVersion: security.sluice.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: api-from-web, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/web"] } }]
`);
    const before = sim.ctlJson<Status>('node-2', 'status').tunnels!.server.refusedPolicy;
    const web = curl('shop/web');
    assert.equal(web.code, 0, `web is allowed: ${web.stderr}\n${refusals()}`);
    assert.notEqual(curl('shop/batch').code, 0, 'batch is refused');
    assert.ok(sim.ctlJson<Status>('node-2', 'status').tunnels!.server.refusedPolicy > before, 'refused at the destination, by its verified principal');
    const log = fs.readFileSync(`/run/sluice-sim/e2e-mtls/logs/agent-node-2.log`, 'utf8');
    assert.match(log, /"peer":"spiffe:\/\/cluster\.local\/ns\/shop\/sa\/batch".*tunnel stream refused: denied/);
  });

  it('SIGTERM stops an agent that holds incoming tunnel sessions, at once', async () => {
    const web = curl('shop/web');
    assert.equal(web.code, 0, `a tunnel session from node-1 into node-2 is open: ${web.stderr}\n${refusals()}`);
    const started = Date.now();
    sim.must(['agent', 'node-2', 'stop']);
    const took = Date.now() - started;
    const log = fs.readFileSync('/run/sluice-sim/e2e-mtls/logs/agent-node-2.log', 'utf8');
    try {
      assert.match(log, /"msg":"agent stopped"/, 'it stopped by itself, not by SIGKILL');
      assert.ok(took < 8000, `stopped in ${took} ms`);
    } finally {
      sim.must(['agent', 'node-2', 'start']);
    }
    assert.ok(await eventually(() => curl('shop/web').code === 0, 100, 200), 'node-2 serves again after its start');
  });
});
