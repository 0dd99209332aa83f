// Differential conformance: every connection through sluice behaves as if it
// were direct. Each case runs the same client and server programs
// (test/fixtures/conformance-*.js) three ways and compares what both ends
// observed (bytes and checksums, how each direction ended, the peer address
// the client sees):
//
//   direct      plain/direct (not in the mesh) -> the server pod's IP, node-1
//   same node   conf/client on node-1 -> VIP -> node proxy -> srv-1 on node-1
//   cross node  conf/client on node-1 -> VIP -> node proxy -> mTLS tunnel -> node-2 -> srv-2
//
// A fault someone reports later is one more row in CASES (or one more `it`
// when it needs the cluster changed: a policy, a link taken down).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually, fixtures } from '../helpers/sim-fixture';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { patternSha256 } = require(`${fixtures}/conformance-pattern.js`) as { patternSha256(n: number): string };

const VIP_1 = '10.96.7.1';
const VIP_2 = '10.96.7.2';
const VIP_EMPTY = '10.96.7.9';
const MIB = 1 << 20;
const API = 'security.sluice.dev/v1alpha1';

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-conformance-'));
const serverLog = (pod: string) => path.join(logDir, `${pod}.jsonl`);

const server = (name: string, node: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: conf, labels: { app: ${name} } }
spec:
  nodeName: ${node}
  serviceAccountName: ${name}
  containers: [{ name: s, command: ["node", "{{FIXTURES}}/conformance-server.js", "${serverLog(name)}"] }]
`;
const service = (name: string, vip: string, app: string) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: conf }
spec:
  clusterIP: ${vip}
  selector: { app: ${app} }
  ports:
${[7001, 7002, 7003, 7004, 7005, 7006, 7101, 7102, 7999].map((p) => `    - { name: p${p}, port: ${p}, targetPort: ${p} }`).join('\n')}
`;
const client = (ns: string, name: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns} }
spec:
  nodeName: node-1
  serviceAccountName: ${name}
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

const TOPOLOGY = [
  `apiVersion: v1\nkind: Namespace\nmetadata: { name: conf, labels: { sluice.dev/mesh: enabled } }`,
  `apiVersion: v1\nkind: Namespace\nmetadata: { name: plain }`,
  server('srv-1', 'node-1'),
  server('srv-2', 'node-2'),
  service('srv-1', VIP_1, 'srv-1'),
  service('srv-2', VIP_2, 'srv-2'),
  service('empty', VIP_EMPTY, 'nothing-has-this-label'),
  client('conf', 'client'),
  client('conf', 'other'),
  client('plain', 'direct'),
].join('\n---\n');

/** What the client end observed (conformance-client.js). */
interface ClientView {
  connect: string;
  peer: string;
  received: number;
  sha256: string;
  head: string;
  end: string;
  endMs: number;
  ms: number;
  pings?: number;
  timedOut?: boolean;
}

/** What the server end observed of one connection (conformance-server.js). */
interface ServerView {
  at: number;
  port: number;
  bytes: number;
  sha256: string;
  tag: string;
  end: string;
}

type PathName = 'direct' | 'same node' | 'cross node';
interface Path {
  name: PathName;
  pod: string;
  host: () => string;
  serverPod: string;
}

const sim = new SimFixture('conformance');
let podIp: Record<string, string> = {};
const PATHS: Path[] = [
  { name: 'direct', pod: 'plain/direct', host: () => podIp['conf/srv-1'], serverPod: 'srv-1' },
  { name: 'same node', pod: 'conf/client', host: () => VIP_1, serverPod: 'srv-1' },
  { name: 'cross node', pod: 'conf/client', host: () => VIP_2, serverPod: 'srv-2' },
];

function runClient(pod: string, host: string, port: number, steps: string[], timeoutMs = 90000): ClientView {
  const r = sim.exec(pod, ['node', `${fixtures}/conformance-client.js`, host, String(port), ...steps], timeoutMs);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ClientView;
  } catch {
    throw new Error(`client in ${pod} printed no result (exit ${r.code}): ${r.stderr}${r.stdout}`);
  }
}

/** Like runClient, without blocking; `endedAt` is when the other side ended, in Date.now() terms. */
async function runClientAsync(pod: string, host: string, port: number, steps: string[], timeoutMs = 90000): Promise<ClientView & { endedAt: number }> {
  const r = await sim.execAsync(pod, ['node', `${fixtures}/conformance-client.js`, host, String(port), ...steps], timeoutMs);
  const finishedAt = Date.now();
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const view = JSON.parse(line) as ClientView;
    return { ...view, endedAt: finishedAt - (view.ms - view.endMs) };
  } catch {
    throw new Error(`client in ${pod} printed no result (exit ${r.code}): ${r.stderr}${r.stdout}`);
  }
}

function serverViews(pod: string): ServerView[] {
  if (!fs.existsSync(serverLog(pod))) return [];
  // The server may be appending right now: only whole lines count.
  const lines = fs.readFileSync(serverLog(pod), 'utf8').split('\n');
  lines.pop();
  return lines.filter(Boolean).map((l) => JSON.parse(l) as ServerView);
}

/** The server's record of the connection whose first line was `tag`, once it has closed. */
async function serverSaw(pod: string, tag: string): Promise<ServerView> {
  let found: ServerView | undefined;
  await eventually(() => (found = serverViews(pod).find((v) => v.tag === tag)) !== undefined, 100, 100);
  assert.ok(found, `${pod} recorded no connection tagged ${JSON.stringify(tag)}`);
  return found;
}

/** Connections each agent refused or lost after accepting them: what to read when a line went missing. */
function refusals(): Record<string, unknown> {
  const kinds = ['refusedOverBudget', 'refusedSourceOverBudget', 'noOriginalDst', 'sourceMismatch', 'connectAttemptsFailed', 'resets', 'internalErrors'];
  const out: Record<string, unknown> = {};
  for (const node of ['node-1', 'node-2']) {
    const status = sim.ctlJson<{ proxyCounters: Record<string, number>; tunnels: unknown }>(node, 'status');
    out[node] = { proxy: Object.fromEntries(kinds.map((k) => [k, status.proxyCounters[k] ?? 0])), tunnels: status.tunnels };
  }
  return out;
}

let tags = 0;
const tag = (what: string) => `${what}-${++tags}`;

/** The client was refused after connect (the proxy resets it), or during it. */
const wasReset = (c: ClientView) => c.end === 'ECONNRESET' || c.connect === 'ECONNRESET';

/** Applies policy YAML, lets it reach the agents, runs `body`, and removes the policy again. */
async function withPolicy(yaml: string, body: () => void | Promise<void>): Promise<void> {
  sim.apply(yaml);
  try {
    await new Promise((r) => setTimeout(r, 1500));
    await body();
  } finally {
    sim.delete(yaml);
  }
}

/** One row: run `steps` on every path and check each path's observations. */
interface Case {
  name: string;
  port: number;
  steps: (t: string) => string[];
  /** The server's view is recorded under this tag (first line the client sends). */
  tagged?: boolean;
  check: (c: ClientView, p: Path, s: ServerView | undefined) => void;
}

const sameAsDirect = (c: ClientView, p: Path, port: number) => assert.equal(c.peer, `${p.host()}:${port}`, `${p.name}: the client sees the address and port it dialled`);

const CASES: Case[] = [
  {
    name: 'client half-closes after 1 MiB: the server gets every byte, the answer comes back, then FIN',
    port: 7001,
    steps: () => [`send:${MIB}`, 'end'],
    check: (c, p) => {
      sameAsDirect(c, p, 7001);
      assert.equal(c.connect, 'ok');
      assert.equal(c.end, 'FIN', `${p.name}: ended with FIN`);
      assert.deepEqual(JSON.parse(c.head), { bytes: MIB, sha256: patternSha256(MIB) }, `${p.name}: the server's account`);
    },
  },
  {
    name: '100 MiB from the client, checksummed at the server',
    port: 7001,
    steps: () => [`send:${100 * MIB}`, 'end'],
    check: (c, p) => {
      assert.equal(c.end, 'FIN', p.name);
      assert.deepEqual(JSON.parse(c.head), { bytes: 100 * MIB, sha256: patternSha256(100 * MIB) }, p.name);
    },
  },
  {
    name: 'server speaks first, then sends 100 MiB and half-closes',
    port: 7002,
    steps: () => ['await:hello', `line:SEND ${100 * MIB}`, 'hold:60000'],
    check: (c, p) => {
      assert.ok(c.head.startsWith('hello\n'), `${p.name}: greeting first`);
      assert.equal(c.received, 6 + 100 * MIB, p.name);
      assert.equal(c.end, 'FIN', p.name);
    },
  },
  {
    name: 'the server half-closes first and the client keeps writing: the server gets it all',
    port: 7002,
    tagged: true,
    steps: (t) => ['await:hello', `line:${t}`, 'line:SEND 1000', 'awaitend', 'wait:100', 'send:5000', 'end'],
    check: (c, p, s) => {
      assert.equal(c.end, 'FIN', p.name);
      assert.equal(c.received, 1006, p.name);
      // The server saw the line and the bytes sent after its own FIN, then the client's FIN.
      assert.ok(s && s.bytes > 5000 && s.end === 'FIN', `${p.name}: server saw ${JSON.stringify(s)}`);
    },
  },
  {
    name: 'the server writes "bye" and resets: the client gets "bye", then ECONNRESET',
    port: 7003,
    steps: () => ['line:hi'],
    check: (c, p) => {
      assert.equal(c.head, 'bye', p.name);
      assert.equal(c.end, 'ECONNRESET', `${p.name}: a reset, not a clean close`);
    },
  },
  {
    name: 'the client writes and resets after the connection is established: the server sees a reset',
    port: 7004,
    tagged: true,
    steps: (t) => [`line:${t}`, 'send:5', 'wait:300', 'rst'],
    check: (_c, p, s) => assert.equal(s?.end, 'ECONNRESET', `${p.name}: server saw ${JSON.stringify(s)}`),
  },
  {
    name: 'the client resets mid-transfer: the server sees a reset, never a FIN',
    port: 7006,
    tagged: true,
    steps: (t) => [`line:${t}`, `send:${8 * MIB}`, 'rst'],
    check: (_c, p, s) => assert.ok(s?.end === 'ECONNRESET' || s?.end === 'EPIPE', `${p.name}: server saw ${JSON.stringify(s)}`),
  },
  {
    name: 'connect, then close with nothing sent: the server sees an empty connection end with FIN',
    port: 7004,
    steps: () => ['end'],
    check: (c, p) => {
      assert.equal(c.connect, 'ok', p.name);
      assert.equal(c.end, 'FIN', p.name);
      assert.equal(c.received, 0, p.name);
    },
  },
  {
    name: 'a long-lived connection echoes every line',
    port: 7005,
    steps: () => ['ping:50:20', 'end'],
    check: (c, p) => {
      assert.equal(c.pings, 20, p.name);
      assert.equal(c.received, [...Array(20)].reduce((n, _x, i) => n + `ping ${i + 1}\n`.length, 0), p.name);
      assert.equal(c.end, 'FIN', p.name);
    },
  },
];

describe('conformance: a connection through sluice behaves as if direct', { timeout: 900000 }, () => {
  before(async () => {
    sim.up(TOPOLOGY, 2);
    podIp = Object.fromEntries(sim.status().pods.map((p) => [`${p.namespace}/${p.name}`, p.ip]));
    // Every path answers before the cases start (agents need their certificates for the tunnel).
    for (const p of PATHS) {
      const ok = await eventually(() => runClient(p.pod, p.host(), 7001, ['line:ready', 'end'], 10000).end === 'FIN', 100, 300);
      assert.ok(ok, `path ${p.name} never worked`);
    }
  });
  after(() => {
    sim.down();
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(c.name, async () => {
      for (const p of PATHS) {
        const t = tag(c.name.split(' ')[1]);
        const view = runClient(p.pod, p.host(), c.port, c.steps(t));
        const seen = c.tagged ? await serverSaw(p.serverPod, t) : undefined;
        c.check(view, p, seen);
      }
    });
  }

  it('an abortive close before the proxy accepts never takes the agent down (fault 1)', () => {
    const before = sim.ctlJson<{ pid: number }>('node-1', 'status').pid;
    // SO_LINGER 0 right after connect, many times: the reset lands while the connection waits to be accepted.
    const script = `const net=require('net');let n=0;const go=()=>{if(n++===50)return;const s=net.connect(7004,'${VIP_1}');s.on('connect',()=>{s.resetAndDestroy();setImmediate(go)});s.on('error',go)};go();`;
    for (const p of PATHS.slice(1)) {
      const r = sim.exec(p.pod, ['node', '-e', script.replace(VIP_1, p.host())]);
      assert.equal(r.code, 0, r.stderr);
    }
    const afterStatus = sim.ctlJson<{ pid: number; ready: boolean }>('node-1', 'status');
    assert.equal(afterStatus.pid, before, 'the agent did not restart');
    assert.equal(afterStatus.ready, true);
    for (const p of PATHS) assert.equal(runClient(p.pod, p.host(), 7001, ['line:after', 'end']).end, 'FIN', `${p.name} still serves`);
  });

  it('connect, write a line, close, 200 times: the server gets all 200 lines on every path (fault 2)', async () => {
    for (const p of PATHS) {
      const t = tag('short');
      const r = sim.exec(p.pod, ['node', `${fixtures}/conformance-client.js`, p.host(), '7004', `many:200:${t}`]);
      assert.deepEqual(JSON.parse(r.stdout.trim()), { sent: 200, failed: 0 }, `${p.name}: ${r.stderr}`);
      let lines = 0;
      await eventually(() => (lines = serverViews(p.serverPod).filter((v) => v.tag.startsWith(`${t} `) && v.bytes > 0).length) === 200, 100, 100);
      assert.equal(lines, 200, `${p.name}: lines that reached the server`);
    }
  });

  it('1,000 short connections from 10 clients at once all succeed', async () => {
    for (const p of PATHS.slice(1)) {
      const t = tag('burst');
      const runs = await Promise.all([...Array(10)].map(() => sim.execAsync(p.pod, ['node', `${fixtures}/conformance-client.js`, p.host(), '7004', `many:100:${t}`], 120000)));
      for (const r of runs) assert.deepEqual(JSON.parse(r.stdout.trim()), { sent: 100, failed: 0 }, `${p.name}: ${r.stderr}; refusals ${JSON.stringify(refusals())}`);
      let lines = 0;
      await eventually(() => (lines = serverViews(p.serverPod).filter((v) => v.tag.startsWith(`${t} `)).length) === 1000, 100, 100);
      assert.equal(lines, 1000, `${p.name}: lines that reached the server; refusals ${JSON.stringify(refusals())}`);
    }
  });

  it('no listener on the endpoint: the client sees a reset and no byte (direct: ECONNREFUSED)', () => {
    const direct = runClient('plain/direct', podIp['conf/srv-1'], 7999, ['line:x']);
    assert.equal(direct.connect, 'ECONNREFUSED');
    for (const p of PATHS.slice(1)) {
      const c = runClient(p.pod, p.host(), 7999, ['line:x']);
      // The proxy accepts before it can know; every endpoint is tried, then the client is reset.
      assert.ok(c.connect === 'ECONNRESET' || (c.connect === 'ok' && c.end === 'ECONNRESET'), `${p.name}: ${JSON.stringify(c)}`);
      assert.equal(c.received, 0, p.name);
    }
  });

  it('a Service with no endpoints refuses at connect, as kube-proxy does (fault 4)', () => {
    for (let i = 0; i < 20; i++) {
      const c = runClient('conf/client', VIP_EMPTY, 7001, ['line:x']);
      assert.equal(c.connect, 'ECONNREFUSED', JSON.stringify(c));
    }
    const curl = sim.exec('conf/client', ['curl', '-sS', '--max-time', '5', `http://${VIP_EMPTY}:7001/`]);
    assert.equal(curl.code, 7, `curl: couldn't connect (${curl.stderr})`);
  });

  it('the endpoint process is killed mid-transfer: the client sees the same end as direct', async () => {
    const runs: [PathName, string, string, number][] = [
      ['direct', 'plain/direct', podIp['conf/srv-1'], 7101],
      ['same node', 'conf/client', VIP_1, 7101],
      ['cross node', 'conf/client', VIP_2, 7102],
    ];
    const results: Record<string, ClientView> = {};
    for (const [name, pod, host, port] of runs) {
      const serverPod = port === 7101 ? 'conf/srv-1' : 'conf/srv-2';
      const dying = sim.execAsync(serverPod, ['node', `${fixtures}/conformance-server.js`, '-', 'mortal', String(port)], 40000);
      let view: ClientView | undefined;
      await eventually(() => (view = runClient(pod, host, port, ['hold:20000'])).received > 0, 20, 300);
      results[name] = view!;
      await dying;
    }
    for (const [name, c] of Object.entries(results)) {
      assert.equal(c.connect, 'ok', name);
      assert.ok(c.received > 0, `${name}: bytes arrived before the kill`);
      assert.equal(c.end, results.direct.end, `${name} ends as direct does (${JSON.stringify(c)})`);
    }
  });

  it('a policy change closes open connections it no longer allows within 1 s, and keeps the others (fault 5)', async () => {
    const denyOther = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: deny-other, namespace: conf }
spec:
  action: DENY
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/conf/sa/other"] } }]
`;
    const open = [VIP_1, VIP_2].flatMap((vip) => [
      { who: 'other', vip, run: runClientAsync('conf/other', vip, 7005, ['ping:250:40', 'end']) },
      { who: 'client', vip, run: runClientAsync('conf/client', vip, 7005, ['ping:250:40', 'end']) },
    ]);
    await new Promise((r) => setTimeout(r, 2000));
    const appliedAt = Date.now();
    sim.apply(denyOther);
    try {
      const results = await Promise.all(open.map(async (o) => ({ ...o, view: await o.run })));
      for (const r of results) {
        if (r.who === 'other') {
          assert.equal(r.view.end, 'ECONNRESET', `${r.vip}: the denied connection was reset (${JSON.stringify(r.view)})`);
          assert.ok(r.view.pings! < 40, `${r.vip}: it stopped early`);
        } else {
          assert.equal(r.view.pings, 40, `${r.vip}: the allowed connection kept echoing`);
          assert.equal(r.view.end, 'FIN', r.vip);
        }
      }
      // Within a second of the agent applying the change (its last reconcile:
      // node-1 for the same-node connection, node-2, the tunnel's destination,
      // for the cross-node one); the way there through the control plane and
      // xDS is bounded loosely.
      for (const r of results.filter((x) => x.who === 'other')) {
        const node = r.vip === VIP_1 ? 'node-1' : 'node-2';
        // The agent logs when the reconcile that applied the policy closed connections.
        const line = fs
          .readFileSync(`/run/sluice-sim/conformance/logs/agent-${node}.log`, 'utf8')
          .split('\n')
          .filter((l) => l.includes('closed open connections that policy no longer allows'))
          .map((l) => JSON.parse(l) as { time: string | number })
          .map((l) => (typeof l.time === 'number' ? l.time : Date.parse(l.time)))
          .find((t) => t >= appliedAt - 1000);
        assert.ok(line !== undefined, `${node} logged the connections it closed`);
        const appliedByAgent = line;
        assert.ok(r.view.endedAt - appliedByAgent < 1000, `${r.vip}: reset ${r.view.endedAt - appliedByAgent} ms after ${node} applied the policy`);
        assert.ok(r.view.endedAt - appliedAt < 10000, `${r.vip}: reset ${r.view.endedAt - appliedAt} ms after the apply`);
      }
      const fresh = runClient('conf/other', VIP_1, 7001, ['line:x', 'end']);
      assert.ok(wasReset(fresh), `new connections are denied too (${JSON.stringify(fresh)})`);
    } finally {
      sim.delete(denyOther);
    }
  });

  it('a meshed client cannot bypass policy by dialling the pod IP, same node or cross node', async () => {
    const denyOther = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: deny-other-direct, namespace: conf }
spec:
  action: DENY
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/conf/sa/other"] } }]
`;
    await withPolicy(denyOther, () => {
      for (const pod of ['conf/srv-1', 'conf/srv-2']) {
        const allowed = runClient('conf/client', podIp[pod], 7001, ['line:x', 'end']);
        assert.equal(allowed.end, 'FIN', `${pod}: an allowed client still reaches the pod IP (${JSON.stringify(allowed)})`);
        assert.equal(allowed.peer.split(':')[0], podIp[pod], 'and sees the address it dialled');
        const denied = runClient('conf/other', podIp[pod], 7001, ['line:x', 'end']);
        assert.ok(wasReset(denied), `${pod}: the denied client is refused on the pod IP too (${JSON.stringify(denied)})`);
        const trace = sim.run(['ctl', 'node-1', '--', 'trace', '--from', 'conf/other', '--to', `${podIp[pod]}:7001`]);
        assert.match(trace.stdout + trace.stderr, /denied/, `${pod}: trace says so`);
      }
    });
  });

  it('an ipBlocks policy sees the source pod on every path, and trace agrees (fault 7)', async () => {
    const allowClientIp = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: allow-client-ip, namespace: conf }
spec:
  selector: { matchLabels: { app: srv-2 } }
  action: ALLOW
  rules:
    - from: [{ source: { ipBlocks: ["${podIp['conf/client']}/32"] } }]
---
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: allow-client-ip-1, namespace: conf }
spec:
  selector: { matchLabels: { app: srv-1 } }
  action: ALLOW
  rules:
    - from: [{ source: { ipBlocks: ["${podIp['conf/client']}/32"] } }]
`;
    await withPolicy(allowClientIp, () => {
      for (const vip of [VIP_1, VIP_2]) {
        assert.equal(runClient('conf/client', vip, 7001, ['line:x', 'end']).end, 'FIN', `${vip}: the client's address is allowed`);
        const other = runClient('conf/other', vip, 7001, ['line:x', 'end']);
        assert.ok(wasReset(other), `${vip}: another pod is not (${JSON.stringify(other)})`);
        const allowed = sim.must(['ctl', 'node-1', '--', 'trace', '--from', 'conf/client', '--to', `${vip}:7001`]);
        const denied = sim.run(['ctl', 'node-1', '--', 'trace', '--from', 'conf/other', '--to', `${vip}:7001`]);
        assert.match(allowed, /captured and allowed/, vip);
        assert.match(denied.stdout + denied.stderr, /denied/, vip);
      }
    });
  });

  it('a dead peer is noticed: the client is reset within the documented bound, with or without keepalive (fault 6)', async () => {
    const fabric = sim.status().netns.fabric;
    const srv1Netns = sim.status().pods.find((p) => p.name === 'srv-1')!.netns;
    let marks = 0;
    const markers: string[] = [];
    const hold = (ka: boolean) => {
      const marker = path.join(logDir, `dead-peer-${++marks}`);
      markers.push(marker);
      return [...(ka ? ['ka:2000'] : []), 'line:hold', 'await:hold', `mark:${marker}`, 'hold:40000'];
    };
    const runs = {
      directCross: runClientAsync('plain/direct', podIp['conf/srv-2'], 7005, hold(true)),
      meshCross: runClientAsync('conf/client', VIP_2, 7005, hold(true)),
      meshCrossNoKeepalive: runClientAsync('conf/client', VIP_2, 7005, hold(false)),
      meshSame: runClientAsync('conf/client', VIP_1, 7005, hold(true)),
    };
    // Every connection is established and has echoed once before the peers go silent.
    assert.ok(await eventually(() => markers.every((m) => fs.existsSync(m)), 300, 100), 'all four connections up');
    const down = Date.now();
    const ip = (args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });
    assert.equal(ip(['-n', fabric, 'link', 'set', 'f2', 'down']).status, 0);
    assert.equal(ip(['-n', srv1Netns, 'link', 'set', 'eth0', 'down']).status, 0);
    try {
      const r = Object.fromEntries(await Promise.all(Object.entries(runs).map(async ([k, v]) => [k, await v] as const)));
      assert.equal(r.directCross.end, 'ETIMEDOUT', `direct: the client's keepalive gives up (${JSON.stringify(r.directCross)})`);
      for (const k of ['meshCross', 'meshCrossNoKeepalive', 'meshSame'] as const) {
        assert.equal(r[k].end, 'ECONNRESET', `${k}: sluice noticed the dead peer and reset the client (${JSON.stringify(r[k])})`);
        // Documented bound: 11 s (keepalive on the proxy's sockets; PING on tunnels: 10 s), plus scheduling slack.
        assert.ok(r[k].endedAt - down < 14000, `${k}: reset ${r[k].endedAt - down} ms after the peer went silent`);
      }
    } finally {
      ip(['-n', fabric, 'link', 'set', 'f2', 'up']);
      ip(['-n', srv1Netns, 'link', 'set', 'eth0', 'up']);
    }
    // The dead pooled tunnel was dropped: new connections across nodes work again.
    const ok = await eventually(() => runClient('conf/client', VIP_2, 7001, ['line:x', 'end'], 15000).end === 'FIN', 40, 500);
    assert.ok(ok, 'cross-node connections work again after the link is back');
  });

  it('the agent is killed (kill -9) mid-transfer: both ends see a reset, never a clean end', async () => {
    const t1 = tag('crash');
    const t2 = tag('crash');
    const runs = [
      { vip: VIP_1, server: 'srv-1', t: t1, run: runClientAsync('conf/client', VIP_1, 7005, [`line:${t1}`, 'ping:100:100', 'end']) },
      { vip: VIP_2, server: 'srv-2', t: t2, run: runClientAsync('conf/client', VIP_2, 7005, [`line:${t2}`, 'ping:100:100', 'end']) },
    ];
    await new Promise((r) => setTimeout(r, 2000));
    const pid = sim.ctlJson<{ pid: number }>('node-1', 'status').pid;
    process.kill(pid, 'SIGKILL');
    try {
      for (const r of runs) {
        const view = await r.run;
        assert.equal(view.end, 'ECONNRESET', `${r.vip}: the client saw a reset (${JSON.stringify(view)})`);
        const seen = await serverSaw(r.server, r.t);
        assert.ok(seen.end === 'ECONNRESET' || seen.end === 'EPIPE', `${r.vip}: the server saw a reset (${JSON.stringify(seen)})`);
      }
    } finally {
      sim.must(['agent', 'node-1', 'start']);
    }
    assert.ok(await eventually(() => runClient('conf/client', VIP_1, 7001, ['line:x', 'end'], 10000).end === 'FIN', 100, 300), 'serving again after the restart');
  });
});
