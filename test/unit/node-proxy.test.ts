// The node proxy on loopback, with the kernel's original-destination lookup
// replaced by a table (the real lookup is covered end to end). Every case
// runs twice: bytes relayed in JS, and handed to the splice relay threads.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { defaultLoadBalancing, type Snapshot } from '../../src/model/resources';
import { SpliceRelay } from '../../src/kernel/splice-relay';
import { NodeProxy, type AccessLogEntry, type OriginalDestination } from '../../src/proxy/node-proxy';
import { ServiceIndex } from '../../src/proxy/service-index';

function listen(handler: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined); // resets are part of the tests
    handler(s);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on: bound and closed again. */
async function closedPort(): Promise<number> {
  const s = await listen(() => undefined);
  const p = portOf(s);
  await new Promise((r) => s.close(r));
  return p;
}

for (const relayMode of ['stream', 'splice'] as const) describe(`node proxy (${relayMode} relay)`, () => {
  const servers: net.Server[] = [];
  const relay = relayMode === 'splice' ? new SpliceRelay() : undefined;
  const accessLog: AccessLogEntry[] = [];
  let proxy: NodeProxy;
  let proxyPort: number;
  const routes = new Map<number, OriginalDestination>(); // client local port -> original destination
  let index = new ServiceIndex();

  before(async () => {
    const echo = await listen((s) => s.pipe(s));
    const afterEof = await listen((s) => {
      let n = 0;
      s.on('data', (d) => (n += d.length));
      s.on('end', () => s.end(`got ${n}`));
    });
    const resetter = await listen((s) => s.once('data', () => s.resetAndDestroy()));
    const greeter = await listen((s) => {
      s.write('220 hello\n'); // speaks first, like SMTP or MySQL
      s.pipe(s);
    });
    servers.push(echo, afterEof, resetter, greeter);
    const dead = await closedPort();
    const service = (name: string, vip: string, ports: number[]) => ({
      name,
      namespace: 't',
      clusterIPs: [vip],
      ports: [{ name: '', port: 80, targetPort: ports[0] }],
      endpoints: ports.map((_p, i) => ({ workloadUid: `${name}-${i}`, address: '127.0.0.1', node: 'n', ready: true })),
      loadBalancing: { ...defaultLoadBalancing, connectTimeoutMs: 500 },
    });
    const snapshot: Snapshot = {
      version: 't',
      workloads: [],
      services: [
        service('echo', '10.96.0.1', [portOf(echo)]),
        service('after-eof', '10.96.0.2', [portOf(afterEof)]),
        service('dead', '10.96.0.3', [dead]),
        service('reset', '10.96.0.4', [portOf(resetter)]),
        service('greeter', '10.96.0.5', [portOf(greeter)]),
      ],
    };
    index = ServiceIndex.of(snapshot.services, snapshot.workloads);
    relay?.start(1);
    proxy = new NodeProxy({
      offload: relay,
      accessLog: (e) => accessLog.push(e),
      originalDst: (socket) => routes.get(socket.remotePort ?? 0),
      sourceWorkload: () => undefined,
      index: () => index,
      logger: pino({ level: 'silent' }),
    });
    await proxy.listen('127.0.0.1', 0);
    proxyPort = proxy.address()!.port;
  });

  after(async () => {
    await proxy.close(true);
    relay?.stop();
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  /**
   * Connects to the proxy as if a captured pod had dialled vip:80: the record
   * exists before the proxy accepts, as the sockops program guarantees.
   */
  async function dial(vip: string | undefined): Promise<net.Socket> {
    const localPort = await closedPort();
    if (vip) routes.set(localPort, { address: vip, port: 80, netnsCookie: 1n });
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: proxyPort, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }

  function collect(s: net.Socket): Promise<{ data: string; error?: string }> {
    return new Promise((resolve) => {
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve({ data }));
      s.on('error', (e: NodeJS.ErrnoException) => resolve({ data, error: e.code }));
    });
  }

  it('relays both ways and keeps order', async () => {
    const s = await dial('10.96.0.1');
    const result = collect(s);
    const parts = Array.from({ length: 200 }, (_v, i) => `chunk-${i};`);
    for (const p of parts) s.write(p);
    s.end();
    assert.equal((await result).data, parts.join(''));
  });

  it('forwards a half-close and keeps the reply direction open', async () => {
    const s = await dial('10.96.0.2');
    const result = collect(s);
    s.end('x'.repeat(50000));
    assert.equal((await result).data, 'got 50000');
  });

  it('resets a connection that has no original destination (never an open relay)', async () => {
    const before = proxy.counters.noOriginalDst;
    // On loopback the reset can arrive before the client even sees its connect.
    const error = await dial(undefined).then(
      async (s) => (await collect(s)).error,
      (e: NodeJS.ErrnoException) => e.code,
    );
    assert.equal(error, 'ECONNRESET');
    assert.equal(proxy.counters.noOriginalDst, before + 1);
  });

  it('resets the client when no endpoint accepts, after trying each once', async () => {
    const s = await dial('10.96.0.3');
    const r = await collect(s);
    assert.equal(r.error, 'ECONNRESET');
    assert.ok(proxy.counters.connectAttemptsFailed >= 1);
  });

  it('turns an endpoint reset into a client reset', async () => {
    const s = await dial('10.96.0.4');
    const result = collect(s);
    s.write('hello');
    assert.equal((await result).error, 'ECONNRESET');
  });

  it('delivers what an endpoint says first, before the client speaks', async () => {
    const s = await dial('10.96.0.5');
    const result = collect(s);
    await new Promise((r) => setTimeout(r, 50));
    s.end('ping\n');
    assert.equal((await result).data, '220 hello\nping\n');
  });

  it('moves 64 MiB intact in both directions at once', async () => {
    const s = await dial('10.96.0.1');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
    const received: Buffer[] = [];
    let total = 0;
    const done = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        received.push(d);
        total += d.length;
      });
      s.on('end', () => resolve());
    });
    for (let i = 0; i < 64; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    s.end();
    await done;
    assert.equal(total, 64 << 20);
    const all = Buffer.concat(received);
    for (let i = 0; i < 64; i++) assert.ok(all.subarray(i << 20, (i + 1) << 20).equals(chunk), `chunk ${i} intact`);
  });

  it('lists live connections with their service and endpoint', async () => {
    // Earlier tests' pairs report their end asynchronously (relay thread -> JS): let them go first.
    for (let i = 0; i < 100 && proxy.activeConnections > 0; i++) await new Promise((r) => setTimeout(r, 50));
    const s = await dial('10.96.0.1');
    s.write('ping');
    await new Promise((r) => s.once('data', r));
    // This connection, by the client's own port.
    const live = proxy.connections().find((c) => c.service === 't/echo' && c.sourceAddress.endsWith(`:${s.localPort}`));
    assert.ok(live, 'connection listed');
    assert.equal(live.state, 'relaying');
    assert.equal(live.vip, '10.96.0.1:80');
    assert.equal(live.bytesFromClient, 4);
    assert.equal(live.bytesFromEndpoint, 4);
    s.destroy();
  });

  it('writes one access log entry per connection, with how it ended', async () => {
    for (let i = 0; i < 50 && proxy.activeConnections > 0; i++) await new Promise((r) => setTimeout(r, 20)); // earlier tests' connections
    accessLog.length = 0;
    const s = await dial('10.96.0.1');
    const result = collect(s);
    s.end('12345');
    assert.equal((await result).data, '12345');
    const dead = await dial('10.96.0.3');
    await collect(dead);
    for (let i = 0; i < 50 && accessLog.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const closed = accessLog.find((e) => e.service === 't/echo');
    assert.ok(closed, JSON.stringify(accessLog));
    assert.deepEqual([closed.outcome, closed.vip, closed.bytesFromClient, closed.bytesFromEndpoint], ['closed', '10.96.0.1:80', 5, 5]);
    assert.equal(accessLog.find((e) => e.service === 't/dead')?.outcome, 'connect failed');
  });

  it('forgets a connection once both sides are closed', async () => {
    const s = await dial('10.96.0.1');
    const result = collect(s);
    s.end('bye');
    await result;
    for (let i = 0; i < 100 && proxy.activeConnections > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(proxy.connections().map((c) => `${c.service} ${c.state} ${c.sourceAddress}`), [], 'nothing left live');
  });
});
