// The control plane and the agents in motion, on one simulated node, with a
// real client running throughout: endpoints follow scaling with no failed
// request, the agent serves its last good state while the control plane is
// away (even across its own restart), and reconnects when it is back.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, projectRoot, type Result } from '../helpers/sim-fixture';

const NAME = 'e2e-resilience';
const VIP = '10.96.0.10';

const web = (name: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-1
  containers: [{ name: web, command: ["node", "{{FIXTURES}}/../../examples/apps/hello-server.js"] }]
`;

const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: ${VIP}
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
${web('web-1')}
---
${web('web-2')}
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop }
spec:
  nodeName: node-1
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

/**
 * Sequential requests to the VIP until the stop file appears (at most 600),
 * one line each: "<start ms> OK <serving pod>" or "<start ms> FAIL <error>".
 */
// Each request's line also goes to the progress file ($2), which the test
// reads to move on once enough requests ran in a phase (how many a second
// depends on the machine's load, so the test waits for counts, not times).
const CLIENT_LOOP = `
stop=$1; progress=$2; i=0; fails=0
while [ $i -lt 2000 ] && [ ! -e "$stop" ]; do
  t=$(date +%s%3N)
  if out=$(curl -sS --max-time 3 http://${VIP}/ 2>&1); then
    line="$t OK $(echo "$out" | cut -d' ' -f3)"
  else
    fails=$((fails+1)); line=$(echo "$t FAIL $out" | tr '\\n' ' ')
  fi
  echo "$line"; echo "$line" >> "$progress"
  i=$((i+1)); sleep 0.03
done
echo "done requests=$i failures=$fails"
`;

interface Request {
  at: number;
  ok: boolean;
  pod: string;
  line: string;
}

function parseLoop(out: string): { requests: Request[]; summary: string } {
  const lines = out.trim().split('\n');
  const requests = lines
    .filter((l) => /^\d+ (OK|FAIL)/.test(l))
    .map((l) => {
      const [at, verdict, pod] = l.split(' ');
      return { at: Number(at), ok: verdict === 'OK', pod: verdict === 'OK' ? pod : '', line: l };
    });
  return { requests, summary: lines.filter((l) => l.startsWith('done ')).join('') };
}

interface ConfigView {
  source: string;
  version: string;
  xds: { state: string; lastError: string };
}

const sim = new SimFixture(NAME);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function servedBy(n: number): Map<string, number> {
  const served = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = sim.exec('shop/client', ['curl', '-sS', '--max-time', '3', `http://${VIP}/`], 20000);
    assert.equal(r.code, 0, `request ${i} through the VIP failed: ${r.stderr}`);
    const pod = /^hello from (\S+) /.exec(r.stdout)?.[1] ?? `unexpected answer ${JSON.stringify(r.stdout)}`;
    served.set(pod, (served.get(pod) ?? 0) + 1);
  }
  return served;
}

async function eventuallyAsync(what: string, fn: () => boolean, tries = 100, delayMs = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (fn()) return;
    await sleep(delayMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('control plane resilience in a simulated cluster', { timeout: 300000 }, () => {
  const stopFile = path.join(os.tmpdir(), `sluice-test-${NAME}.stop`);
  const progressFile = path.join(os.tmpdir(), `sluice-test-${NAME}.progress`);
  /** Requests the client loop has made so far whose time is at or after `from`. */
  const madeSince = (from: number) => (fs.existsSync(progressFile) ? parseLoop(fs.readFileSync(progressFile, 'utf8')).requests.filter((q) => q.at >= from).length : 0);
  /** Waits (at most 60 s) until the client made `n` requests since `from`: a phase is long enough by count, whatever the load. */
  const requestsSince = async (from: number, n: number) => {
    for (let i = 0; i < 600 && madeSince(from) < n; i++) await sleep(100);
    assert.ok(madeSince(from) >= n, `the client made ${madeSince(from)} of ${n} requests in 60 s`);
  };

  before(async () => {
    // Leftovers of a crashed earlier run: `up` removes the cluster of the same name first.
    fs.rmSync(stopFile, { force: true });
    fs.rmSync(progressFile, { force: true });
    sim.up(TOPOLOGY);
    const pods = sim.status().pods;
    for (const name of ['web-1', 'web-2']) {
      const ip = pods.find((p) => p.name === name)!.ip;
      await eventuallyAsync(`${name} to listen`, () => sim.exec('shop/client', ['curl', '-sf', '--max-time', '1', `http://${ip}:8080/`], 10000).code === 0, 100, 100);
    }
  });
  after(() => {
    fs.rmSync(stopFile, { force: true });
    fs.rmSync(progressFile, { force: true });
    sim.down();
  });

  it('scaling a deployment changes the endpoints that traffic reaches, with no failed requests from a client running throughout', async (t) => {
    const nodeNetns = sim.status().netns.nodes[0];
    const proxyMac = () => (JSON.parse(execFileSync('ip', ['-n', nodeNetns, '-j', 'link', 'show', 'cni0'], { encoding: 'utf8' })) as { address: string }[])[0].address;
    const macBefore = proxyMac();
    const running: Promise<Result> = sim.execAsync('shop/client', ['sh', '-c', CLIENT_LOOP, 'sh', stopFile, progressFile], 300000);
    const startedAt = Date.now();
    let scaledUpAt = Infinity;
    let web1GoneAt = Infinity;
    try {
      await requestsSince(startedAt, 30);
      sim.apply(`${web('web-3')}\n---\n${web('web-4')}`);
      scaledUpAt = Date.now();
      await requestsSince(scaledUpAt, 60);
      sim.delete(web('web-1'));
      web1GoneAt = Date.now();
      await requestsSince(web1GoneAt, 30);
    } finally {
      fs.writeFileSync(stopFile, ''); // the client loop ends at its next turn
    }
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    const { requests, summary } = parseLoop(r.stdout);
    // Pods cache the link-layer address of the node proxy address (the pod
    // bridge cni0): if it changes as pods come and go, they are cut off from
    // the node proxy until their neighbour entry is re-resolved.
    assert.equal(proxyMac(), macBefore, 'the node proxy address kept its MAC address while pods came and went');
    const failed = requests.filter((q) => !q.ok);
    assert.match(summary, /^done requests=\d+ failures=\d+$/, `the client loop ran to its end: ${r.stdout.slice(-500)}`);
    assert.deepEqual(failed.map((q) => q.line), [], 'no request failed');
    assert.match(summary, /failures=0$/);
    // The client ran throughout: before the scale-up, while it settled, and after web-1 went away.
    const within = (from: number, to = Infinity) => requests.filter((q) => q.at >= from && q.at < to).length;
    assert.ok(within(0, scaledUpAt) >= 30 && within(scaledUpAt, web1GoneAt) >= 60 && within(web1GoneAt) >= 30, `the client ran throughout (${within(0, scaledUpAt)}, ${within(scaledUpAt, web1GoneAt)}, ${within(web1GoneAt)} requests in the three phases)`);
    const count = (pod: string, from: number, to = Infinity) => requests.filter((q) => q.pod === pod && q.at >= from && q.at < to).length;
    assert.ok(count('shop/web-1', 0, scaledUpAt) > 0, 'web-1 served before it was removed');
    assert.ok(count('shop/web-3', scaledUpAt) > 0, 'the new pod web-3 served traffic');
    assert.ok(count('shop/web-4', scaledUpAt) > 0, 'the new pod web-4 served traffic');
    assert.equal(count('shop/web-1', web1GoneAt), 0, 'web-1 served nothing after its removal returned');
    t.diagnostic(`${summary}; served: ${['shop/web-1', 'shop/web-2', 'shop/web-3', 'shop/web-4'].map((p) => `${p}=${count(p, 0)}`).join(' ')}`);
    const pods = new Set(requests.map((q) => q.pod));
    assert.deepEqual([...pods].sort(), ['shop/web-1', 'shop/web-2', 'shop/web-3', 'shop/web-4']);
  });

  it('with the control plane stopped, requests through the VIP keep working on the last good state', async () => {
    sim.must(['control', 'stop']);
    const s = JSON.parse(sim.must(['status', '-o', 'json'])) as { control: { alive: boolean } };
    assert.equal(s.control.alive, false);
    await eventuallyAsync('the agent to notice', () => sim.ctlJson<ConfigView>('node-1', 'config').xds.state !== 'connected');
    const served = servedBy(20);
    assert.equal(served.get('shop/web-1'), undefined, 'the removed pod stays removed');
    assert.deepEqual([...served.keys()].filter((p) => !['shop/web-2', 'shop/web-3', 'shop/web-4'].includes(p)), []);
  });

  it('an agent restarted while the control plane is down comes up from its persisted state and serves', () => {
    const before = sim.ctlJson<{ pid: number; config: ConfigView }>('node-1', 'status');
    sim.must(['agent', 'node-1', 'restart']);
    const after = sim.ctlJson<{ pid: number; ready: boolean; config: ConfigView }>('node-1', 'status');
    assert.notEqual(after.pid, before.pid, 'a new agent process');
    assert.equal(after.ready, true);
    assert.notEqual(after.config.xds.state, 'connected');
    assert.match(after.config.source, /serving state saved at/);
    assert.equal(after.config.version, before.config.version, 'the persisted version');
    const served = servedBy(10);
    assert.equal(served.get('shop/web-1'), undefined);
    assert.ok(served.size >= 1);
  });

  it('when the control plane is back, the agent reconnects, gets what changed meanwhile, and follows changes again', () => {
    // A change made while the control plane is away reaches the agent once it is back.
    sim.delete(web('web-4'));
    sim.must(['control', 'start']);
    const config = sim.ctlJson<ConfigView>('node-1', 'config');
    assert.equal(config.xds.state, 'connected', 'control start returns once the agent is back in sync');
    assert.equal(config.xds.lastError, '');
    assert.doesNotMatch(config.source, /serving state saved at/, 'no longer serving from the persisted state');
    let served = servedBy(12);
    assert.deepEqual([...served.keys()].filter((p) => !['shop/web-2', 'shop/web-3'].includes(p)), [], 'web-4, deleted while the control plane was down, gets nothing');
    // The new stream is live: a change made now reaches the agent too.
    sim.delete(web('web-3'));
    served = servedBy(6);
    assert.deepEqual([...served.keys()], ['shop/web-2']);
  });

  it("the control plane's informers ride out API failures: a dropped watch resumes, 410 Gone lists again, errors retry; changes made meanwhile are served", async () => {
    type Resources = { kubernetes: { resources: { resource: string; lists: number; expired: number; errors: number }[] } };
    const sluicectl = path.join(projectRoot, 'dist', 'src', 'cli', 'main.js');
    const controlStatus = () => JSON.parse(execFileSync(process.execPath, [sluicectl, '--control', `/run/sluice-sim/${NAME}/control.sock`, '-o', 'json', 'status'], { encoding: 'utf8' })) as Resources;
    const pods = () => controlStatus().kubernetes.resources.find((r) => r.resource === 'pods')!;
    const before = pods();
    // A dropped stream: resumed from its resourceVersion, no new list.
    sim.must(['api-fault', 'watch', 'pods', 'close']);
    sim.apply(web('web-5'));
    assert.equal(pods().lists, before.lists, 'a dropped watch resumes without listing again');
    // History compacted and the watch told 410 Gone: the informer lists again.
    sim.must(['api-fault', 'compact']);
    sim.must(['api-fault', 'watch', 'pods', 'gone-event']);
    sim.apply(web('web-6'));
    const after410 = pods();
    assert.ok(after410.expired > before.expired && after410.lists > before.lists, `410 Gone made it list again: ${JSON.stringify(after410)}`);
    // An error answer: retried with backoff.
    sim.must(['api-fault', 'watch', 'services', 'error']);
    sim.delete(web('web-5'));
    const ip = sim.status().pods.find((p) => p.name === 'web-6')!.ip;
    await eventuallyAsync('web-6 to listen', () => sim.exec('shop/client', ['curl', '-sf', '--max-time', '1', `http://${ip}:8080/`], 10000).code === 0, 100, 100);
    const served = servedBy(12);
    assert.deepEqual([...served.keys()].filter((p) => !['shop/web-2', 'shop/web-6'].includes(p)), [], `only the pods the API holds serve: ${[...served.keys()]}`);
    assert.ok(served.get('shop/web-6'), 'the pod added across the 410 is served');
    const r = sim.run(['api-fault', 'watch', 'pods', 'melt']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /fault "melt": expected one of close, gone-event, gone-http, error/);
  });
});
