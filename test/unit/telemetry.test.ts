// Istio-compatible TCP metrics and the access log, from the node proxy and
// the tunnel's destination side on loopback: same-node connections (both
// relays), a cross-node one through a real mTLS tunnel (both ends log and
// count), denied and refused connections; and promtool on both registries.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import * as client from 'prom-client';
import { SpliceRelay } from '../../src/kernel/splice-relay';
import { CertificateAuthority } from '../../src/identity/ca';
import { createKeyAndCsr } from '../../src/identity/csr';
import { defaultLoadBalancing, type Service, type Workload } from '../../src/model/resources';
import { AccessLog } from '../../src/observability/access-log';
import { createControlRegistry } from '../../src/observability/control-metrics';
import { IstioTcpMetrics } from '../../src/observability/istio-metrics';
import { ComponentLoggers } from '../../src/observability/logger';
import { createRegistry } from '../../src/observability/metrics';
import { PolicySet } from '../../src/proxy/authorization';
import { authorizeConnection } from '../../src/proxy/connection-decision';
import { NodeProxy, type OriginalDestination } from '../../src/proxy/node-proxy';
import { ServiceIndex } from '../../src/proxy/service-index';
import { tcpLabels, workloadName } from '../../src/proxy/telemetry';
import { TunnelPool } from '../../src/proxy/tunnel-client';
import type { TlsCredentials } from '../../src/proxy/tunnel-identity';
import { TunnelServer } from '../../src/proxy/tunnel-server';

const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const pod = (name: string, ns: string, sa: string, node: string, labels: Record<string, string> = {}): Workload => ({
  uid: `${ns}-${name}`, name, namespace: ns, node, ips: ['127.0.0.1'], serviceAccount: sa, labels,
  identity: id(ns, sa), captured: true, ready: true, nodeAddress: '127.0.0.1',
});

/** Lines a pino logger wrote, parsed. */
function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info', timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, { write: (l: string) => lines.push(JSON.parse(l)) });
  return { logger, lines };
}

/** The value of one sample of a metric whose labels include `match`, or 0. */
async function sample(registry: client.Registry, name: string, match: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const values = (await metric.get()).values.filter((v) => Object.entries(match).every(([k, want]) => String(v.labels[k]) === want));
  return values.reduce((a, v) => a + v.value, 0);
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exchange(port: number, localPort: number, payload: string, keepOpen = false): Promise<{ socket: net.Socket; got: Promise<string> }> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
  s.on('error', () => undefined); // a reset is an answer here
  let data = '';
  const got = new Promise<string>((r) => {
    s.on('data', (d) => (data += d));
    s.on('close', () => r(data));
  });
  s.once('connect', () => (keepOpen ? s.write(payload) : s.end(payload)));
  return Promise.resolve({ socket: s, got });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

for (const relayMode of ['stream', 'splice'] as const) describe(`Istio TCP metrics and access log, same node (${relayMode} relay)`, () => {
  const relay = relayMode === 'splice' ? new SpliceRelay() : undefined;
  const registry = new client.Registry();
  const istio = new IstioTcpMetrics(registry);
  const { logger, lines } = capture();
  const access = new AccessLog(logger, { enabled: true });
  const routes = new Map<number, OriginalDestination>();
  const client_ = pod('client-7d9c5f6b8-x2x4q', 'demo', 'client', 'n', { app: 'client', version: 'v1', 'pod-template-hash': '7d9c5f6b8' });
  const web = pod('web-0', 'demo', 'web', 'n', { app: 'web', 'statefulset.kubernetes.io/pod-name': 'web-0' });
  let echo: net.Server;
  let proxy: NodeProxy;
  let port = 0;
  let policies = PolicySet.empty();

  before(async () => {
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const service: Service = {
      name: 'web', namespace: 'demo', clusterIPs: ['10.96.0.10'],
      ports: [{ name: '', port: 80, targetPort: (echo.address() as net.AddressInfo).port }],
      endpoints: [{ workloadUid: web.uid, address: '127.0.0.1', node: 'n', ready: true }],
      loadBalancing: defaultLoadBalancing,
    };
    const index = ServiceIndex.of([service], [client_, web]);
    relay?.start(1);
    proxy = new NodeProxy({
      offload: relay,
      node: 'n',
      originalDst: (s) => routes.get(s.remotePort ?? 0),
      sourceWorkload: () => client_,
      index: () => index,
      policies: () => policies,
      logger: pino({ level: 'silent' }),
      telemetry: istio,
      accessLog: (e) => access.write(e),
      // No queue: the third connection of the pod is refused at once.
      limits: { maxConnections: 100, maxPerSource: 2, maxWaitingPerSource: 0 },
    });
    await proxy.listen('127.0.0.1', 0);
    port = proxy.address()!.port;
  });

  after(async () => {
    await proxy.close(true);
    relay?.stop();
    await new Promise((r) => echo.close(r));
  });

  async function dial(payload: string, keepOpen = false) {
    const localPort = await freePort();
    routes.set(localPort, { address: '10.96.0.10', port: 80, netnsCookie: 1n });
    return exchange(port, localPort, payload, keepOpen);
  }

  const labels = { source_workload: 'client', destination_workload: 'web', destination_service: 'web.demo.svc.cluster.local' };

  it('counts bytes of a live connection before it closes, for both reporters', async () => {
    const { socket, got } = await dial('x'.repeat(1000), true);
    await until('the echo', () => proxy.connections()[0]?.bytesFromEndpoint === 1000);
    proxy.reportBytes();
    assert.equal(await sample(registry, 'istio_tcp_connections_opened_total', { ...labels, reporter: 'source' }), 1);
    assert.equal(await sample(registry, 'istio_tcp_connections_opened_total', { ...labels, reporter: 'destination' }), 1);
    assert.equal(await sample(registry, 'istio_tcp_received_bytes_total', { ...labels, reporter: 'source' }), 1000, 'from the client, before the end');
    assert.equal(await sample(registry, 'istio_tcp_sent_bytes_total', { ...labels, reporter: 'source' }), 1000, 'back to the client');
    assert.equal(await sample(registry, 'istio_tcp_connections_closed_total', labels), 0);
    socket.end('yz');
    await got;
    await until('the close', async () => (await sample(registry, 'istio_tcp_connections_closed_total', { ...labels, reporter: 'source' })) === 1);
    assert.equal(await sample(registry, 'istio_tcp_received_bytes_total', { ...labels, reporter: 'destination' }), 1002, 'the rest at close, counted once');
    assert.equal(await sample(registry, 'istio_tcp_received_bytes_total', { connection_security_policy: 'unknown', source_principal: id('demo', 'client'), destination_principal: id('demo', 'web'), request_protocol: 'tcp', response_flags: '-', source_app: 'client', source_version: 'v1', destination_service_name: 'web', destination_service_namespace: 'demo', source_cluster: 'Kubernetes' }), 2004);
  });

  it('writes ztunnel-style access log fields for a same-node connection', async () => {
    lines.length = 0;
    const { got } = await dial('hello');
    assert.equal(await got, 'hello');
    await until('the access log line', () => lines.length > 0);
    const l = lines[0];
    assert.equal(l.level, 'info');
    assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(l.msg, 'connection complete');
    assert.deepEqual(
      [l['src.workload'], l['src.namespace'], l['src.identity'], l['dst.workload'], l['dst.namespace'], l['dst.identity'], l['dst.service'], l['dst.vip'], l.direction, l.security, l.bytes_sent, l.bytes_recv, l.outcome],
      ['client', 'demo', id('demo', 'client'), 'web', 'demo', id('demo', 'web'), 'web.demo.svc.cluster.local', '10.96.0.10:80', 'outbound', 'plaintext', 5, 5, 'closed'],
    );
    assert.match(String(l['src.addr']), /^127\.0\.0\.1:\d+$/);
    assert.match(String(l['dst.addr']), /^127\.0\.0\.1:\d+$/);
    assert.match(String(l.duration), /^\d+ms$/);
    assert.equal(l.error, undefined);
  });

  it('a denied connection: access log outcome and reason, closed with response_flags DENY', async () => {
    policies = new PolicySet([{ name: 'deny-all', namespace: 'demo', action: 'DENY', rules: [{ from: [], to: [] }] }]);
    lines.length = 0;
    const { got } = await dial('nope');
    assert.equal(await got, '');
    await until('the access log line', () => lines.some((l) => l.outcome === 'denied'));
    const l = lines.find((x) => x.outcome === 'denied')!;
    assert.equal(l['dst.workload'], 'web');
    assert.match(String(l.error), /^denied: /);
    assert.equal(await sample(registry, 'istio_tcp_connections_closed_total', { ...labels, reporter: 'source', response_flags: 'DENY' }), 1);
    policies = PolicySet.empty();
  });

  it('a connection refused over the per-source budget is logged, outcome refused', async () => {
    const held = [await dial('a', true), await dial('b', true)];
    await until('two live connections', () => proxy.activeConnections === 2);
    lines.length = 0;
    const { got } = await dial('c');
    await got;
    await until('the access log line', () => lines.some((l) => l.outcome === 'refused'));
    const l = lines.find((x) => x.outcome === 'refused')!;
    assert.deepEqual([l['src.workload'], l['dst.service'], l.direction], ['client', 'web.demo.svc.cluster.local', 'outbound']);
    assert.match(String(l.error), /share of the connection budget/);
    for (const h of held) h.socket.destroy();
  });
});

describe('Istio TCP metrics and access log across nodes (mTLS tunnel, both ends)', { timeout: 30000 }, () => {
  const creds = new Map<string, TlsCredentials>();
  const srcRegistry = new client.Registry();
  const dstRegistry = new client.Registry();
  const srcIstio = new IstioTcpMetrics(srcRegistry);
  const dstIstio = new IstioTcpMetrics(dstRegistry);
  const srcLog = capture();
  const dstLog = capture();
  const client_ = pod('client', 'demo', 'client', 'node-1', { app: 'client' });
  const web = { ...pod('web', 'demo', 'web', 'node-2', { app: 'web' }), ips: ['127.0.0.2'] };
  let echo: net.Server;
  let server: TunnelServer;
  let pool: TunnelPool;
  let proxy: NodeProxy;
  let port = 0;
  let policies = PolicySet.empty();
  const routes = new Map<number, OriginalDestination>();

  before(async () => {
    const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    for (const w of [client_, web]) {
      const { keyPem, csrPem } = await createKeyAndCsr(w.identity);
      const r = await ca.issue({ csrPem, node: 'n' }, () => undefined);
      if (!r.ok) throw new Error(r.reason);
      creds.set(w.identity, { keyPem, chainPem: [r.certPem, ...r.chainPem] });
    }
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.2', () => r()));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const service: Service = {
      name: 'web', namespace: 'demo', clusterIPs: ['10.96.0.10'], ports: [{ name: '', port: 80, targetPort: echoPort }],
      endpoints: [{ workloadUid: web.uid, address: '127.0.0.2', node: 'node-2', ready: true }], loadBalancing: defaultLoadBalancing,
    };
    const index = ServiceIndex.of([service], [client_, web]);
    const tunnelPort = await freePort();
    server = new TunnelServer({
      credentials: (identity) => creds.get(identity),
      rootPem: () => ca.rootPem,
      localWorkload: (ip) => (ip === '127.0.0.2' ? web : undefined),
      workloadsWithIp: (ip) => index.workloadsWithIp(ip),
      authorize: (d, s, p) => authorizeConnection(policies, d, d.namespace, s, p),
      serviceFor: (d, p) => index.serviceOfEndpoint(d.uid, p),
      telemetry: dstIstio,
      accessLog: (e) => new AccessLog(dstLog.logger, { enabled: true }).write(e),
      logger: pino({ level: 'silent' }),
    });
    await server.listen('127.0.0.1', tunnelPort);
    pool = new TunnelPool((identity) => creds.get(identity), tunnelPort);
    const access = new AccessLog(srcLog.logger, { enabled: true });
    proxy = new NodeProxy({
      node: 'node-1',
      tunnel: pool,
      originalDst: (s) => routes.get(s.remotePort ?? 0),
      sourceWorkload: () => client_,
      index: () => index,
      logger: pino({ level: 'silent' }),
      telemetry: srcIstio,
      accessLog: (e) => access.write(e),
    });
    await proxy.listen('127.0.0.1', 0);
    port = proxy.address()!.port;
  });

  after(async () => {
    await proxy.close(true);
    pool.close();
    await server.close();
    await new Promise((r) => echo.close(r));
  });

  async function dial(payload: string) {
    const localPort = await freePort();
    routes.set(localPort, { address: '10.96.0.10', port: 80, netnsCookie: 1n });
    return exchange(port, localPort, payload);
  }

  it('both ends count the connection as mutual_tls and log it, outbound and inbound', async () => {
    const { got } = await dial('over the tunnel');
    assert.equal(await got, 'over the tunnel');
    await until('both access log lines', () => srcLog.lines.length > 0 && dstLog.lines.length > 0);
    const out = srcLog.lines[0];
    const inb = dstLog.lines[0];
    assert.deepEqual([out.direction, out.security, out['src.identity'], out['dst.identity'], out['dst.workload'], out.bytes_sent, out.bytes_recv], ['outbound', 'mTLS', id('demo', 'client'), id('demo', 'web'), 'web', 15, 15]);
    assert.deepEqual(
      [inb.direction, inb.security, inb['src.workload'], inb['src.namespace'], inb['src.identity'], inb['dst.workload'], inb['dst.identity'], inb['dst.service'], inb.bytes_sent, inb.bytes_recv, inb.outcome],
      ['inbound', 'mTLS', 'client', 'demo', id('demo', 'client'), 'web', id('demo', 'web'), 'web.demo.svc.cluster.local', 15, 15, 'closed'],
    );
    const mtls = { source_workload: 'client', destination_workload: 'web', connection_security_policy: 'mutual_tls', destination_service: 'web.demo.svc.cluster.local' };
    await until('closed at both ends', async () => (await sample(dstRegistry, 'istio_tcp_connections_closed_total', mtls)) === 1);
    assert.equal(await sample(srcRegistry, 'istio_tcp_received_bytes_total', { ...mtls, reporter: 'source' }), 15);
    assert.equal(await sample(dstRegistry, 'istio_tcp_received_bytes_total', { ...mtls, reporter: 'destination' }), 15);
    assert.equal(await sample(srcRegistry, 'istio_tcp_connections_opened_total', { reporter: 'destination' }), 0, 'the source side reports only as source');
  });

  it('a stream the destination denies is logged inbound with the reason, and counted DENY there', async () => {
    policies = new PolicySet([{ name: 'deny-all', namespace: 'demo', action: 'DENY', rules: [{ from: [], to: [] }] }]);
    dstLog.lines.length = 0;
    srcLog.lines.length = 0;
    const { got } = await dial('nope');
    assert.equal(await got, '');
    await until('both lines', () => dstLog.lines.length > 0 && srcLog.lines.length > 0);
    assert.deepEqual([dstLog.lines[0].direction, dstLog.lines[0].outcome, dstLog.lines[0]['src.workload']], ['inbound', 'denied', 'client']);
    assert.match(String(dstLog.lines[0].error), /denied/);
    assert.equal(srcLog.lines[0].outcome, 'connect failed');
    assert.match(String(srcLog.lines[0].error), /refused \(403/);
    assert.equal(await sample(dstRegistry, 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: 'DENY' }), 1);
    policies = PolicySet.empty();
  });
});

describe('telemetry building blocks', () => {
  it('names workloads as Istio does: Deployment, StatefulSet and DaemonSet pods by their controller', () => {
    assert.equal(workloadName({ name: 'web-7d9c5f6b8-x2x4q', labels: { 'pod-template-hash': '7d9c5f6b8' } }), 'web');
    assert.equal(workloadName({ name: 'db-2', labels: { 'statefulset.kubernetes.io/pod-name': 'db-2' } }), 'db');
    assert.equal(workloadName({ name: 'agent-x2x4q', labels: { 'controller-revision-hash': 'abc', 'pod-template-generation': '1' } }), 'agent');
    assert.equal(workloadName({ name: 'client', labels: {} }), 'client');
  });

  it('caps label sets: past the cap new ones go to an overflow series, and idle ones expire', () => {
    let now = 0;
    const registry = new client.Registry();
    const m = new IstioTcpMetrics(registry, { maxLabelSets: 2, idleExpiryMs: 1000, now: () => now });
    const l = (svc: string) => tcpLabels('source', undefined, undefined, { name: svc, namespace: 'x' }, false);
    for (const s of ['a', 'b', 'c', 'd']) {
      m.opened(l(s));
      m.closed(l(s), '-');
    }
    assert.equal(m.labelSets, 3, 'two of their own and one overflow series');
    now = 5000;
    assert.equal(m.expireIdle(), 3);
    assert.equal(m.labelSets, 0);
  });

  it('the access log holds back a flood of one kind of failure and says how much it held', () => {
    let now = 0;
    const { logger, lines } = capture();
    const log = new AccessLog(logger, { enabled: true, burst: 3, intervalMs: 1000, now: () => now });
    const denied = { direction: 'outbound', src: { pod: 'a/b', workload: 'b', namespace: 'a', principal: '', address: '' }, dst: { pod: 'unknown', workload: 'unknown', namespace: 'unknown', principal: '', address: '' }, vip: '', service: '', endpoint: '', security: 'plaintext', outcome: 'denied', error: 'denied: x', durationMs: 0, bytesFromClient: 0, bytesFromEndpoint: 0 } as const;
    for (let i = 0; i < 100; i++) log.write(denied);
    log.write({ ...denied, outcome: 'closed', error: '' });
    assert.equal(lines.length, 4, 'three denials and the ordinary connection');
    now = 1500;
    log.write(denied);
    assert.equal(lines.at(-1)?.suppressed, 97);
    log.enabled = false;
    log.write(denied);
    assert.equal(lines.length, 5);
  });

  it('log levels change per component at run time', () => {
    const logs = new ComponentLoggers(pino({ level: 'info' }, { write: () => undefined }));
    logs.component('proxy');
    assert.equal(logs.apply('proxy=debug,tunnel=warn'), undefined);
    assert.deepEqual(logs.levels(), { default: 'info', proxy: 'debug', tunnel: 'warn' });
    assert.equal(logs.apply('debug'), undefined);
    assert.deepEqual(logs.levels(), { default: 'debug', proxy: 'debug', tunnel: 'debug' });
    assert.match(logs.apply('proxy=loud') ?? '', /LEVEL one of/);
  });
});

describe('promtool check metrics', () => {

  function check(text: string): void {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  }

  /** Every family named *_total is a counter; every counter is named *_total. */
  function typesRight(text: string): void {
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (m[1].endsWith('_total')) assert.equal(m[2], 'counter', `${m[1]} is a ${m[2]}`);
      if (m[2] === 'counter') assert.ok(m[1].endsWith('_total'), `counter ${m[1]} without _total`);
    }
  }

  it('the agent\'s /metrics, with every family populated, is clean', async () => {
    const registry = createRegistry({
      version: '0.1.0',
      proxyCounters: () => ({ accepted: 3, policyDenied: 1, bytesFromClients: 10, bytesFromEndpoints: 20 }),
      activeConnections: () => 1,
      waitingConnections: () => 0,
      bpfCounters: () => ({ connect_captured: 5 }),
      maps: () => [{ map: 'sluice_tuples', entries: 3, capacity: 262144 }],
      enrolledWorkloads: () => 2,
      snapshotVersion: () => 'v1',
      xds: () => ({ state: 'connected', connects: 1, types: [{ type: 'sluice.v1.Workload', received: 2, acks: 2, nacks: 0, lastAckAt: new Date().toISOString() }] }),
      certificates: () => ({ certificates: [{ identity: id('demo', 'web'), state: 'valid', notAfter: new Date(Date.now() + 3600e3).toISOString() }], issued: 1, failures: 0 }),
      tunnels: () => ({ outboundSessions: 1, sessionsOpened: 1, streamsOpened: 2, refused: 0, deadPeers: 0, inboundSessions: 1, inboundSessionsAccepted: 1, inboundStreams: 0, inboundCounters: { accepted: 2, refusedPolicy: 1 } }),
      policyDecisions: () => [{ policy: 'demo/allow', action: 'allow', count: 3 }],
      relay: () => ({ threads: 1, pairs: 1, bytesFromClients: 10, bytesFromEndpoints: 20, pairsDone: 4 }),
      failures: () => ({ 'connect failed': 1 }),
    });
    const istio = new IstioTcpMetrics(registry);
    const l = tcpLabels('source', pod('client', 'demo', 'client', 'n'), pod('web', 'demo', 'web', 'n'), { name: 'web', namespace: 'demo' }, true);
    istio.opened(l);
    istio.bytes(l, 10, 20);
    istio.closed(l, 'DENY');
    const text = await registry.metrics();
    check(text);
    typesRight(text);
    assert.match(text, /^# TYPE istio_tcp_sent_bytes_total counter$/m);
    assert.match(text, /^sluice_build_info\{version="0.1.0",node_version="[^"]+"\} 1$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    // A second scrape adds only what grew: Counters, not values set at scrape.
    assert.match(await registry.metrics(), /^sluice_proxy_events_total\{event="accepted"\} 3$/m);
  });

  it('the control plane\'s /metrics is clean', async () => {
    const registry = createControlRegistry({
      version: '0.1.0',
      streams: () => [{ node: 'node-1' }],
      xdsByType: () => ({ 'type.googleapis.com/sluice.v1.Workload': { pushes: 3, acks: 2, nacks: 1 } }),
      issuance: () => ({ issued: 4, refused: { NOT_AUTHORIZED: 1 } }),
      translationProblems: () => 1,
      publishes: () => 2,
      configVersion: () => 'v1',
    });
    const text = await registry.metrics();
    check(text);
    typesRight(text);
    assert.match(text, /^sluice_control_xds_responses_total\{type="sluice.v1.Workload",result="nack"\} 1$/m);
  });
});
