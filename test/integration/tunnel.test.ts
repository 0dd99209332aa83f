// The tunnel between node proxies on loopback: HTTP/2 CONNECT over mutual
// TLS 1.3 with certificates from the mesh CA, the destination's checks
// (peer certificate, local target, policy), and session pooling.
import * as assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import { CertificateAuthority } from '../../src/identity/ca';
import { createKeyAndCsr } from '../../src/identity/csr';
import type { Workload } from '../../src/model/resources';
import { PolicySet } from '../../src/proxy/authorization';
import { TunnelPool } from '../../src/proxy/tunnel-client';
import { QUEUED_HEADER, type TlsCredentials } from '../../src/proxy/tunnel-identity';
import type { AccessLogEntry } from '../../src/proxy/node-proxy';
import { TunnelServer } from '../../src/proxy/tunnel-server';

const quiet = pino({ level: 'silent' });
const id = (sa: string) => `spiffe://cluster.local/ns/shop/sa/${sa}`;
const workload = (name: string, sa: string, ip: string): Workload => ({
  uid: name, name, namespace: 'shop', node: 'node-2', ips: [ip], serviceAccount: sa, labels: { app: name },
  identity: id(sa), captured: true, ready: true, nodeAddress: '127.0.0.1',
});

async function issue(ca: CertificateAuthority, identity: string): Promise<TlsCredentials> {
  const { keyPem, csrPem } = await createKeyAndCsr(identity);
  const r = await ca.issue({ csrPem, node: 'n' }, () => undefined);
  if (!r.ok) throw new Error(r.reason);
  return { keyPem, chainPem: [r.certPem, ...r.chainPem] };
}

function roundTrip(stream: Duplex, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => (got += d));
    stream.on('end', () => resolve(got));
    stream.on('error', reject);
    stream.end(payload);
  });
}

describe('mTLS tunnel between node proxies (loopback)', { timeout: 60000 }, () => {
  let echo: net.Server;
  let echoPort = 0;
  let server: TunnelServer;
  const port = 20000 + (process.pid % 20000);
  const creds = new Map<string, TlsCredentials>();
  let root = '';
  let policies = PolicySet.empty();
  const accessLog: AccessLogEntry[] = [];
  const local = new Map<string, Workload>([['127.0.0.1', workload('api', 'api', '127.0.0.1')]]);
  // Source pods on the other node, by address (what a carried source address is checked against).
  const sources = new Map<string, Workload[]>([
    ['10.244.1.2', [{ ...workload('web', 'web', '10.244.1.2'), node: 'node-1' }]],
    ['10.244.1.3', [{ ...workload('batch', 'batch', '10.244.1.3'), node: 'node-1' }]],
  ]);
  const from = (sa: string) => ({ sourceIdentity: id(sa), sourceAddress: sa === 'web' ? '10.244.1.2' : '10.244.1.3' });
  const pool = () => new TunnelPool((identity) => creds.get(identity), port);

  before(async () => {
    const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    root = ca.rootPem;
    for (const sa of ['api', 'web', 'batch']) creds.set(id(sa), await issue(ca, id(sa)));
    // A certificate for the same identity from a CA the mesh does not trust.
    const rogue = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    creds.set(id('rogue'), await issue(rogue, id('web')));
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('end', () => s.end(`echo:${data}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as net.AddressInfo).port;
    server = new TunnelServer({
      credentials: (identity) => (identity === id('api') ? creds.get(identity) : undefined),
      rootPem: () => root,
      localWorkload: (ip) => local.get(ip),
      workloadsWithIp: (ip) => sources.get(ip) ?? [],
      limits: { maxConnections: 6, maxPerSource: 4, waitMs: 1500 },
      authorize: (dest, source, p) => policies.authorize(dest, source, p),
      accessLog: (entry) => accessLog.push(entry),
      logger: quiet,
    });
    await server.listen('127.0.0.1', port);
  });
  after(async () => {
    await server.close();
    await new Promise((r) => echo.close(r));
  });

  it('carries a connection to a local pod, half-close included, and pools the session', async () => {
    const p = pool();
    try {
      const req = { ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target: `127.0.0.1:${echoPort}` };
      assert.equal(await roundTrip(await p.open(req, 3000), 'one'), 'echo:one');
      assert.equal(await roundTrip(await p.open(req, 3000), 'two'), 'echo:two');
      assert.equal(p.counters.sessionsOpened, 1, 'one TLS session for both connections');
      assert.equal(p.counters.streamsOpened, 2);
      assert.ok(server.counters.accepted >= 2);
    } finally {
      p.close();
    }
  });

  it('refuses a target that is not a pod of that node, saying so', async () => {
    const p = pool();
    try {
      const before = server.counters.refusedTarget;
      await assert.rejects(
        p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target: `10.9.9.9:${echoPort}` }, 3000),
        /refused \(404: 10\.9\.9\.9:\d+ is not a pod on this node\)/,
      );
      assert.equal(server.counters.refusedTarget, before + 1);
    } finally {
      p.close();
    }
  });

  it('applies authorization with the verified principal: one service account allowed, another refused', async () => {
    policies = new PolicySet([
      { name: 'api-from-web', namespace: 'shop', selector: { app: 'api' }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }], to: [] }] },
    ]);
    const p = pool();
    try {
      const target = `127.0.0.1:${echoPort}`;
      assert.equal(await roundTrip(await p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000), 'ok'), 'echo:ok');
      await assert.rejects(
        p.open({ ...from('batch'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000),
        /refused \(403: denied: no ALLOW policy matched/,
      );
    } finally {
      p.close();
      policies = PolicySet.empty();
    }
  });

  it('refuses a client certificate the mesh root did not sign', async () => {
    const p = new TunnelPool((identity) => (identity === id('web') ? creds.get(id('rogue')) : undefined), port);
    try {
      const before = server.counters.refusedTls;
      await assert.rejects(p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target: `127.0.0.1:${echoPort}` }, 3000));
      for (let i = 0; i < 40 && server.counters.refusedTls === before; i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(server.counters.refusedTls > before, 'counted at the TLS layer');
    } finally {
      p.close();
    }
  });

  it('will not talk to a server that cannot present the destination identity', async () => {
    const p = pool();
    try {
      await assert.rejects(
        p.open({ ...from('web'), destinationIdentity: id('batch'), nodeAddress: '127.0.0.1', target: `127.0.0.1:${echoPort}` }, 3000),
      );
      assert.equal(p.counters.streamsOpened, 0);
    } finally {
      p.close();
    }
  });

  it('carries the source pod address: ipBlocks match the pod, not the node', async () => {
    policies = new PolicySet([
      { name: 'api-from-web-ip', namespace: 'shop', selector: { app: 'api' }, action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['10.244.1.2/32'] } }], to: [] }] },
    ]);
    const p = pool();
    try {
      const target = `127.0.0.1:${echoPort}`;
      assert.equal(await roundTrip(await p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000), 'ip'), 'echo:ip');
      await assert.rejects(p.open({ ...from('batch'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000), /403: denied/);
    } finally {
      p.close();
      policies = PolicySet.empty();
    }
  });

  it('refuses a source address that does not belong to the verified identity', async () => {
    const p = pool();
    try {
      const before = server.counters.refusedSource;
      // batch's certificate claiming web's address, and an address nobody has.
      for (const sourceAddress of ['10.244.1.2', '10.9.9.9']) {
        await assert.rejects(
          p.open({ sourceIdentity: id('batch'), sourceAddress, destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target: `127.0.0.1:${echoPort}` }, 3000),
          /refused \(400: source address 10\.\d+\.\d+\.\d+ (does not belong to|is not a known workload)/,
        );
      }
      assert.equal(server.counters.refusedSource, before + 2);
    } finally {
      p.close();
    }
  });

  it('a reset travels both ways as a reset, never as a clean end', async () => {
    // A pod that writes "bye" and resets; and one that records how its peer ended.
    const ended: string[] = [];
    const pod = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', (e: NodeJS.ErrnoException) => ended.push(e.code ?? 'error'));
      s.on('end', () => ended.push('FIN'));
      s.once('data', (d) => {
        if (String(d) === 'reset me') s.write('bye', () => setTimeout(() => s.resetAndDestroy(), 20));
      });
    });
    await new Promise<void>((r) => pod.listen(0, '127.0.0.1', () => r()));
    const target = `127.0.0.1:${(pod.address() as net.AddressInfo).port}`;
    const p = pool();
    try {
      const s1 = await p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000);
      const outcome = await new Promise<string>((resolve) => {
        let got = '';
        s1.on('data', (d) => (got += d));
        s1.on('error', () => resolve(`${got}+reset`));
        s1.on('aborted', () => resolve(`${got}+reset`));
        s1.on('close', () => resolve(`${got}+${(s1 as unknown as { rstCode?: number }).rstCode ? 'reset' : 'end'}`));
        s1.write('reset me');
      });
      assert.equal(outcome, 'bye+reset');
      // The other direction: the source side resets after writing 5 bytes.
      const s2 = await p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000);
      s2.on('error', () => undefined);
      s2.write('12345', () => setTimeout(() => s2.destroy(new Error('client reset')), 20));
      for (let i = 0; i < 100 && !ended.includes('ECONNRESET'); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(ended.includes('ECONNRESET'), `the pod saw a reset (saw ${ended.join(',')})`);
      assert.ok(!ended.includes('FIN'), 'and never a FIN');
    } finally {
      p.close();
      await new Promise((r) => pod.close(r));
    }
  });

  it('closes an open stream that a new policy no longer allows, and keeps an allowed one', async () => {
    const p = pool();
    try {
      const target = `127.0.0.1:${echoPort}`;
      const web = await p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000);
      const batch = await p.open({ ...from('batch'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000);
      const batchReset = new Promise<boolean>((resolve) => {
        batch.on('error', () => resolve(true));
        batch.on('aborted', () => resolve(true));
      });
      web.on('error', () => undefined);
      policies = new PolicySet([
        { name: 'deny-batch', namespace: 'shop', action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/batch'] } }], to: [] }] },
      ]);
      assert.equal(server.revalidate(), 1);
      assert.equal(await batchReset, true);
      assert.equal(await roundTrip(web, 'still'), 'echo:still');
    } finally {
      p.close();
      policies = PolicySet.empty();
    }
  });

  it('past a source pod\'s share a stream waits for room, past its connect timeout, as a same-node connection does; past the whole budget or the wait, 503', async () => {
    const p = pool();
    const target = `127.0.0.1:${echoPort}`;
    const held: Duplex[] = [];
    const open = (who: string, timeoutMs = 300) => p.open({ ...from(who), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, timeoutMs);
    try {
      for (let i = 0; i < 4; i++) held.push(await open('web', 3000)); // web holds its share (4)
      const waitedBefore = server.counters.waitedForBudget;
      let settled = false;
      const queued = open('web').finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(settled, false, 'the fifth stream of web waits at the destination, past its 300 ms connect timeout');
      assert.equal(await roundTrip(held.shift()!, 'bye'), 'echo:bye'); // one of web's streams ends...
      const admitted = await queued; // ...and the waiting one takes its place
      assert.equal(await roundTrip(admitted, 'late'), 'echo:late');
      assert.equal(server.counters.waitedForBudget, waitedBefore + 1);
      held.push(await open('web', 3000)); // web holds its share again

      const refusedBefore = server.counters.refusedOverBudget;
      await assert.rejects(open('web'), /refused \(503: over the connection budget of the destination node for the 1500 ms the stream waited/);
      held.push(await open('batch', 3000), await open('batch', 3000));
      // Six held in all: batch's third is refused at once though within its share.
      await assert.rejects(open('batch'), /refused \(503: over the connection budget of the destination node\)/);
      assert.equal(server.counters.refusedOverBudget, refusedBefore + 2);
      const refusals = accessLog.filter((e) => e.outcome === 'refused' && /connection budget/.test(e.error));
      assert.deepEqual(refusals.slice(-2).map((e) => e.durationMs), [1500, 0], 'a refusal after the wait logs the time waited; one at once, 0');

      // The source goes away while its stream waits: logged once, as a reset, with the time it waited.
      // One of batch's ends: the whole budget has room, web's share has none, so web's next stream waits.
      held.pop()!.destroy();
      for (let i = 0; i < 100 && server.openStreams > 5; i++) await new Promise((r) => setTimeout(r, 20));
      // Its own session, so that only the waiting stream goes.
      const cancelledBefore = server.counters.cancelledWhileWaiting;
      const leaving = pool();
      const doomed = leaving.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target }, 3000).catch(() => 'gone');
      await new Promise((r) => setTimeout(r, 300));
      leaving.close();
      assert.equal(await doomed, 'gone');
      for (let i = 0; i < 100 && server.counters.cancelledWhileWaiting === cancelledBefore; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(server.counters.cancelledWhileWaiting, cancelledBefore + 1);
      const cancelled = accessLog.filter((e) => /ended the stream while it waited/.test(e.error));
      assert.equal(cancelled.length, 1);
      assert.equal(cancelled[0].outcome, 'reset');
      assert.ok(cancelled[0].durationMs >= 250 && cancelled[0].durationMs < 1500, `waited ${cancelled[0].durationMs} ms`);
    } finally {
      for (const h of held) h.destroy();
      p.close();
    }
  });

  it('a destination that repeats its queued answer cannot hold the source past the first wait', async () => {
    // A hand-made destination with the api workload's certificate: it answers
    // every CONNECT with "queued for 300 ms", again every 200 ms, for 8 s, and never admits.
    const api = creds.get(id('api'))!;
    const fake = http2.createSecureServer({ key: api.keyPem, cert: api.chainPem.slice(0, -1).join(''), ca: root, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', allowHTTP1: false });
    let repeating = true;
    let repeats = 0;
    const timers: NodeJS.Timeout[] = [];
    fake.on('stream', (stream) => {
      stream.on('error', () => undefined);
      const queued = () => {
        if (!repeating || stream.closed) return;
        repeats++;
        try {
          stream.additionalHeaders({ ':status': 100, [QUEUED_HEADER]: '300' });
        } catch {
          // the source went away
        }
      };
      queued();
      const t = setInterval(queued, 200);
      timers.push(t, setTimeout(() => clearInterval(t), 8000));
    });
    fake.on('sessionError', () => undefined);
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    const fakePort = (fake.address() as net.AddressInfo).port;
    const stopRepeating = setTimeout(() => (repeating = false), 8000);
    const p = new TunnelPool((identity) => creds.get(identity), fakePort);
    try {
      await assert.rejects(
        p.open({ ...from('web'), destinationIdentity: id('api'), nodeAddress: '127.0.0.1', target: '127.0.0.1:1' }, 300),
        /queued at the destination and no answer in/,
      );
      assert.ok(repeating, 'given up while the destination still repeated its answer: only the first one counted');
      assert.ok(repeats >= 3, `the destination repeated itself (${repeats} answers)`);
    } finally {
      clearTimeout(stopRepeating);
      for (const t of timers) clearTimeout(t);
      p.close();
      await new Promise((r) => fake.close(r));
    }
  });
});
