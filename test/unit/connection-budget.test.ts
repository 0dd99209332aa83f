// The connection budget: how it is derived from the descriptor limit, and
// what the node proxy does with a connection over it. A connection over its
// pod's share waits (its bytes are kept) instead of being reset; it is reset
// only past the wait, the pod's queue, or the whole budget.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import pino from 'pino';
import { connectionLimits, reservedDescriptors } from '../../src/agent/connection-budget';
import { defaultLoadBalancing } from '../../src/model/resources';
import type { ConnectionLimits } from '../../src/proxy/budget-queues';
import { NodeProxy, type AccessLogEntry, type OriginalDestination } from '../../src/proxy/node-proxy';
import { ServiceIndex } from '../../src/proxy/service-index';

describe('connection limits from the descriptor limit', () => {
  it('keeps a reserve and gives each pod a quarter', () => {
    const limits = connectionLimits(0, 0, 20000, 1);
    assert.equal(limits.maxConnections, Math.floor((20000 - reservedDescriptors(20000, 1)) / 6));
    assert.equal(limits.maxPerSource, Math.floor(limits.maxConnections / 4));
  });

  it('takes explicit limits as given, and never derives less than one', () => {
    assert.deepEqual(connectionLimits(300, 120, 20000), { maxConnections: 300, maxPerSource: 120 });
    assert.deepEqual(connectionLimits(0, 0, 100), { maxConnections: 1, maxPerSource: 1 });
  });
});

/** A port nothing listens on: bound and closed again. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('node proxy over its connection budget', () => {
  /** Counts what each connection delivered; answers "got N" at the client's end. */
  const received: number[] = [];
  let server: net.Server;
  let proxy: NodeProxy | undefined;
  const accessLog: AccessLogEntry[] = [];
  const routes = new Map<number, OriginalDestination>();
  const open: net.Socket[] = [];

  before(async () => {
    server = net.createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('error', () => undefined);
      s.on('data', (d) => (n += d.length));
      s.on('end', () => {
        received.push(n);
        s.end(`got ${n}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  });

  after(() => new Promise((r) => server.close(r)));

  afterEach(async () => {
    for (const s of open.splice(0)) s.destroy();
    await proxy?.close(true);
    proxy = undefined;
    received.length = 0;
    accessLog.length = 0;
  });

  async function start(limits: ConnectionLimits): Promise<number> {
    const service = {
      name: 'sink',
      namespace: 't',
      clusterIPs: ['10.96.0.1'],
      ports: [{ name: '', port: 80, targetPort: (server.address() as net.AddressInfo).port }],
      endpoints: [{ workloadUid: 'sink-0', address: '127.0.0.1', node: 'n', ready: true }],
      loadBalancing: defaultLoadBalancing,
    };
    const index = ServiceIndex.of([service], []);
    proxy = new NodeProxy({
      accessLog: (e) => accessLog.push(e),
      originalDst: (socket) => routes.get(socket.remotePort ?? 0),
      sourceWorkload: () => undefined,
      index: () => index,
      logger: pino({ level: 'silent' }),
      limits,
    });
    await proxy.listen('127.0.0.1', 0);
    return proxy.address()!.port;
  }

  /**
   * A connection from 127.0.0.1 (one source) as if it had dialled the VIP:
   * the record exists before the proxy accepts. `end`: what the client got
   * ("data" then a clean end, or the error code).
   */
  async function dial(proxyPort: number): Promise<{ socket: net.Socket; end: Promise<string> }> {
    const localPort = await freePort();
    routes.set(localPort, { address: '10.96.0.1', port: 80, netnsCookie: 1n });
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
    open.push(socket);
    const end = new Promise<string>((resolve) => {
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (d) => (data += d));
      socket.on('end', () => resolve(data));
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    await new Promise<void>((resolve) => {
      socket.once('connect', resolve);
      void end.then(() => resolve());
    });
    return { socket, end };
  }

  async function until(what: string, test: () => boolean): Promise<void> {
    for (let i = 0; i < 100 && !test(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(test(), what);
  }

  it("waits for the pod's share instead of resetting, and delivers what the client wrote and closed meanwhile", async () => {
    const port = await start({ maxConnections: 10, maxPerSource: 1 });
    const held = await dial(port);
    held.socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    // Writes, half-closes and then goes away entirely while it waits: a burst of short connections.
    const short = await dial(port);
    short.socket.end('y'.repeat(1000), () => short.socket.destroy());
    const waiting = await dial(port);
    waiting.socket.end('z'.repeat(10));
    await until('two waiting', () => proxy!.waitingConnections === 2);
    assert.equal(proxy!.activeConnections, 1, 'the share is never exceeded');
    held.socket.end();
    assert.equal(await waiting.end, 'got 10', 'the waiting connection is served once a slot is free');
    await until('all three delivered', () => received.length === 3);
    assert.deepEqual([...received].sort((a, b) => a - b), [1, 10, 1000]);
    assert.equal(proxy!.counters.waitedForBudget, 2);
    assert.equal(proxy!.counters.refusedSourceOverBudget, 0);
  });

  it('resets a connection that waited longer than waitMs, and says so in the access log', async () => {
    const port = await start({ maxConnections: 10, maxPerSource: 1, waitMs: 200 });
    (await dial(port)).socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    assert.equal(await (await dial(port)).end, 'ECONNRESET');
    assert.equal(proxy!.counters.refusedSourceOverBudget, 1);
    assert.equal(proxy!.waitingConnections, 0);
    const refused = accessLog.find((e) => e.outcome === 'refused');
    assert.ok(refused, 'access log entry');
    assert.match(refused.error, /share of the connection budget for the 200 ms/);
  });

  it("resets at once when the pod's queue is full, or the whole budget is held", async () => {
    let port = await start({ maxConnections: 10, maxPerSource: 1, maxWaitingPerSource: 1 });
    (await dial(port)).socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    await dial(port);
    await until('one waiting', () => proxy!.waitingConnections === 1);
    assert.equal(await (await dial(port)).end, 'ECONNRESET', 'the queue holds one');
    assert.equal(proxy!.counters.refusedSourceOverBudget, 1);
    await proxy!.close(true);

    // All queues together hold no more than six per free slot: here one slot, six waiting.
    port = await start({ maxConnections: 2, maxPerSource: 1, maxWaitingPerSource: 100 });
    (await dial(port)).socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    for (let i = 0; i < 6; i++) await dial(port);
    await until('six waiting', () => proxy!.waitingConnections === 6);
    assert.equal(await (await dial(port)).end, 'ECONNRESET', 'the seventh has no descriptors to wait with');
    await proxy!.close(true);

    port = await start({ maxConnections: 1, maxPerSource: 5 });
    (await dial(port)).socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    assert.equal(await (await dial(port)).end, 'ECONNRESET', 'nothing waits when the whole budget is held');
    assert.equal(proxy!.counters.refusedOverBudget, 1);
    assert.equal(proxy!.waitingConnections, 0);
  });

  it('resets the waiting connections when the proxy closes', async () => {
    const port = await start({ maxConnections: 10, maxPerSource: 1 });
    (await dial(port)).socket.write('x');
    await until('the first connection relaying', () => proxy!.activeConnections === 1);
    const waiting = await dial(port);
    await until('one waiting', () => proxy!.waitingConnections === 1);
    await proxy!.close(true);
    assert.equal(await waiting.end, 'ECONNRESET');
    assert.equal(proxy!.waitingConnections, 0);
  });
});
