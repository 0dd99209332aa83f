// Every failure point on a connection's path ends that connection only:
// the proxy keeps serving, the failure is counted, and the log says it once
// per kind per interval. Each point is driven by making one dependency fail.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { defaultLoadBalancing, type Workload } from '../../src/model/resources';
import { FailureLog } from '../../src/proxy/failure-log';
import { NodeProxy, type OriginalDestination, type ProxyDeps } from '../../src/proxy/node-proxy';
import { ServiceIndex } from '../../src/proxy/service-index';

/** How a client connection through the proxy ended: 'reset', 'end', or the data it got. */
function attempt(port: number, payload = 'ping'): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = '';
    s.on('connect', () => s.end(payload));
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got || 'end'));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' ? 'reset' : String(e.code)));
  });
}

const errnoError = (code: string) => Object.assign(new Error(`original destination of fd 9: ${code}`), { code });

describe('node proxy: failures end one connection, never the proxy', () => {
  let echo: net.Server;
  let proxy: NodeProxy;
  let port = 0;
  const lines: string[] = [];
  // What each dependency does now; a test swaps one to fail.
  let originalDst: ProxyDeps['originalDst'];
  let sourceWorkload: ProxyDeps['sourceWorkload'] = () => undefined;
  let keepalive: ProxyDeps['keepalive'] = () => undefined;
  const index = new ServiceIndex();

  before(async () => {
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(`echo:${d}`));
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    index.upsertService({
      name: 'echo',
      namespace: 't',
      clusterIPs: ['10.96.0.1'],
      ports: [{ name: '', port: 80, targetPort: (echo.address() as net.AddressInfo).port }],
      endpoints: [{ workloadUid: 'e', address: '127.0.0.1', node: 'n', ready: true }],
      loadBalancing: defaultLoadBalancing,
    });
    const route: OriginalDestination = { address: '10.96.0.1', port: 80, netnsCookie: 7n };
    originalDst = () => route;
    const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(l) });
    proxy = new NodeProxy({
      originalDst: (s) => originalDst(s),
      sourceWorkload: (c) => sourceWorkload(c),
      keepalive: (s) => keepalive?.(s),
      index: () => index,
      logger,
    });
    await proxy.listen('127.0.0.1', 0);
    port = proxy.address()!.port;
  });
  after(async () => {
    await proxy.close(true);
    await new Promise((r) => echo.close(r));
  });

  it('serves a connection when nothing fails', async () => {
    assert.equal(await attempt(port), 'echo:ping');
  });

  it('a client gone before accept (ENOTCONN from the lookup) is counted, not thrown', async () => {
    const before = proxy.counters.abortedBeforeAccept;
    originalDst = () => {
      throw errnoError('ENOTCONN');
    };
    try {
      await attempt(port);
      assert.equal(proxy.counters.abortedBeforeAccept, before + 1);
    } finally {
      originalDst = () => ({ address: '10.96.0.1', port: 80, netnsCookie: 7n });
    }
    assert.equal(await attempt(port), 'echo:ping', 'the proxy still serves');
  });

  it('any other lookup error resets that connection and counts an internal error', async () => {
    const before = proxy.counters.internalErrors;
    originalDst = () => {
      throw errnoError('EBADF');
    };
    try {
      assert.equal(await attempt(port), 'reset');
      assert.equal(proxy.counters.internalErrors, before + 1);
    } finally {
      originalDst = () => ({ address: '10.96.0.1', port: 80, netnsCookie: 7n });
    }
    assert.equal(await attempt(port), 'echo:ping');
  });

  it('a record that belongs to another pod (a stale tuple) is refused', async () => {
    const other: Workload = {
      uid: 'o', name: 'o', namespace: 't', node: 'n', ips: ['10.244.1.9'], serviceAccount: 'o', labels: {},
      identity: 'spiffe://cluster.local/ns/t/sa/o', captured: true, ready: true, nodeAddress: '',
    };
    sourceWorkload = () => other;
    try {
      assert.equal(await attempt(port), 'reset');
      assert.ok(proxy.counters.sourceMismatch >= 1);
    } finally {
      sourceWorkload = () => undefined;
    }
  });

  it('a keepalive that cannot be set is not a failure of the connection', async () => {
    keepalive = () => {
      throw new Error('setsockopt: EINVAL');
    };
    try {
      assert.equal(await attempt(port), 'echo:ping');
    } finally {
      keepalive = () => undefined;
    }
  });

  it('a service index that throws ends the connection only', async () => {
    const before = proxy.counters.internalErrors;
    const vip = index.vip.bind(index);
    index.vip = () => {
      throw new Error('index broken');
    };
    try {
      assert.equal(await attempt(port), 'reset');
      assert.equal(proxy.counters.internalErrors, before + 1);
    } finally {
      index.vip = vip;
    }
    assert.equal(await attempt(port), 'echo:ping');
  });
});

describe('failure log', () => {
  it('logs once per kind per interval and reports what it held back', () => {
    const lines: Record<string, unknown>[] = [];
    let now = 0;
    const log = new FailureLog(pino({}, { write: (l: string) => lines.push(JSON.parse(l)) }), 1000, () => now);
    for (let i = 0; i < 5; i++) log.report('endpoint connect', { i }, 'connect failed');
    log.report('tunnel open', {}, 'tunnel failed');
    assert.equal(lines.length, 2, 'one line per kind');
    now = 1500;
    log.report('endpoint connect', {}, 'connect failed');
    assert.equal(lines.length, 3);
    assert.equal(lines[2].suppressedSinceLast, 4);
    assert.deepEqual(log.snapshot(), { 'endpoint connect': 6, 'tunnel open': 1 });
  });
});
