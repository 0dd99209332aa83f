// Two nodes: demo/client on node-1 sends a known number of bytes to demo/web
// on node-2 through the mTLS tunnel. A real Prometheus (Debian's), running
// inside node-1's network namespace on 127.0.0.1 with its data in a temp
// dir, scrapes both agents and the control plane every second, and PromQL
// answers "bytes from demo/client to demo/web over mTLS in the last minute"
// with that number, as the source and as the destination reports it. Both
// ends write an access log line; every panel query of the shipped dashboard
// runs; promtool finds nothing wrong with the three /metrics.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture, eventually } from '../helpers/sim-fixture';
import { dashboardQueries } from '../helpers/dashboard';

const VIP = '10.96.7.1';
const BYTES = 250_000;
const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: demo, labels: { app: web, version: v1 } }
spec:
  nodeName: node-2
  serviceAccountName: web
  containers: [{ name: web, command: ["node", "{{FIXTURES}}/echo-server.js", "after-eof", "7000"] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec:
  clusterIP: ${VIP}
  selector: { app: web }
  ports: [{ port: 80, targetPort: 7000 }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: demo, labels: { app: client } }
spec:
  nodeName: node-1
  serviceAccountName: client
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

/**
 * Run in the client pod: connects, waits (so Prometheus scrapes the new
 * series at 0), sends `n` bytes, half-closes and prints the answer.
 */
const sender = (n: number, waitMs: number) => `
const s = require('node:net').connect(80, '${VIP}', () => setTimeout(() => s.end(Buffer.alloc(${n}, 97)), ${waitMs}));
let d = '';
s.on('data', (c) => (d += c));
s.on('end', () => { process.stdout.write(d); process.exit(0); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => process.exit(3), 30000);
`;

const PROM_PORT = 19090;
const sim = new SimFixture('e2e-telemetry');

interface Status {
  control: { address: string };
  nodes: { name: string; netns: string; proxyAddress: string }[];
  agents: { node: string; log: string }[];
}

describe('telemetry: Istio TCP metrics in a real Prometheus, access logs at both ends', { timeout: 300000 }, () => {
  let status: Status;
  let netns = '';
  let prometheus: ChildProcess | undefined;
  let dataDir = '';
  let answer = '';
  let agent2 = '';
  let control = '';

  /** Runs a command inside node-1's network namespace. */
  const inNode1 = (argv: string[], input?: string) => spawnSync('nsenter', [`--net=/run/netns/${netns}`, '--', ...argv], { encoding: 'utf8', timeout: 15000, input });
  const metricsOf = (target: string) => {
    const r = inNode1(['curl', '-sf', '--max-time', '5', `http://${target}/metrics`]);
    assert.equal(r.status, 0, `scrape ${target}: ${r.stderr}`);
    return r.stdout;
  };
  /** A PromQL query through Prometheus' HTTP API: the vector's samples. */
  const query = (expr: string, time?: number) => {
    const args = ['curl', '-s', '--max-time', '5', `http://127.0.0.1:${PROM_PORT}/api/v1/query`, '--data-urlencode', `query=${expr}`];
    if (time !== undefined) args.push('--data-urlencode', `time=${time}`);
    const r = inNode1(args);
    const body = JSON.parse(r.stdout || '{}') as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    return body;
  };
  const scalar = (expr: string, time?: number) => {
    const r = query(expr, time);
    assert.equal(r.status, 'success', `${expr}: ${r.error}`);
    return r.data!.result.map((s) => Number(s.value[1]));
  };

  before(async () => {
    sim.up(TOPOLOGY, 2);
    status = JSON.parse(sim.must(['status', '-o', 'json'])) as Status;
    netns = status.nodes.find((n) => n.name === 'node-1')!.netns;
    agent2 = `${status.nodes.find((n) => n.name === 'node-2')!.proxyAddress}:15020`;
    control = `${status.control.address.split(':')[0]}:15014`;
    // Cross-node needs both agents' certificates: wait for a first answer.
    const ok = await eventually(() => sim.exec('demo/client', ['node', '-e', sender(10, 0)], 20000).code === 0, 60, 500);
    assert.ok(ok, 'demo/client never reached demo/web');

    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-prometheus-'));
    const config = path.join(dataDir, 'prometheus.yml');
    fs.writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        `  - job_name: sluice-agent`,
        `    static_configs: [{ targets: ["127.0.0.1:15020", "${agent2}"] }]`,
        `  - job_name: sluice-control`,
        `    static_configs: [{ targets: ["${control}"] }]`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'nsenter',
      [`--net=/run/netns/${netns}`, '--', 'prometheus', `--config.file=${config}`, `--storage.tsdb.path=${path.join(dataDir, 'data')}`, `--web.listen-address=127.0.0.1:${PROM_PORT}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', fs.openSync(path.join(dataDir, 'prometheus.log'), 'w')] },
    );
    const up = await eventually(() => {
      const r = query('up == 1');
      return r.status === 'success' && r.data!.result.length === 3;
    }, 60, 500);
    assert.ok(up, `Prometheus never saw all three targets up: ${JSON.stringify(query('up'))}\n${fs.readFileSync(path.join(dataDir, 'prometheus.log'), 'utf8').slice(-2000)}`);

    // The measured connection: the series exist at 0 for a few scrapes before the bytes flow.
    const r = sim.exec('demo/client', ['node', '-e', sender(BYTES, 4000)], 40000);
    assert.equal(r.code, 0, r.stderr);
    answer = r.stdout;
    assert.match(answer, new RegExp(`^got ${BYTES} bytes sha256 [0-9a-f]{64}\\n$`));
    // Let both agents be scraped after the close.
    await new Promise((res) => setTimeout(res, 3000));
  });

  after(() => {
    if (prometheus?.pid) {
      prometheus.kill('SIGTERM');
      spawnSync('sleep', ['1']);
    }
    if (prometheus && prometheus.exitCode === null) prometheus.kill('SIGKILL');
    sim.down();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const pair = 'source_workload="client", source_workload_namespace="demo", destination_workload="web", destination_workload_namespace="demo", connection_security_policy="mutual_tls"';

  it('PromQL: bytes from demo/client to demo/web over mTLS in the last minute, as each side reports them', () => {
    for (const reporter of ['destination', 'source']) {
      const series = `istio_tcp_received_bytes_total{reporter="${reporter}", ${pair}}`;
      // Evaluated at the last scrape, increase() does not extrapolate: the exact count.
      const [last] = scalar(`max(timestamp(${series}))`);
      assert.ok(last, `no ${reporter} series: ${JSON.stringify(query(`istio_tcp_received_bytes_total`).data?.result.map((s) => s.metric))}`);
      const [bytes] = scalar(`sum(increase(${series}[1m]))`, last);
      // The warm-up connection (10 bytes) is in the same series, within the minute.
      assert.equal(Math.round(bytes), BYTES + 10, `${reporter}: increase over the last minute`);
      const [sent] = scalar(`sum(istio_tcp_sent_bytes_total{reporter="${reporter}", ${pair}})`);
      assert.ok(sent >= answer.length, `${reporter}: the answer went back (${sent} bytes)`);
      const [closed] = scalar(`sum(istio_tcp_connections_closed_total{reporter="${reporter}", ${pair}, response_flags="-"})`);
      assert.ok(closed >= 2, `${reporter}: both connections closed`);
    }
    const [service] = query(`istio_tcp_connections_opened_total{reporter="destination", ${pair}}`).data!.result;
    assert.equal(service.metric.destination_service, 'web.demo.svc.cluster.local');
    assert.equal(service.metric.source_principal, 'spiffe://cluster.local/ns/demo/sa/client');
    assert.equal(service.metric.destination_principal, 'spiffe://cluster.local/ns/demo/sa/web');
    assert.equal(service.metric.request_protocol, 'tcp');
    assert.equal(service.metric.job, 'sluice-agent');
  });

  it('the control plane is scraped too: two agents connected, no translation problems', () => {
    assert.deepEqual(scalar('sluice_control_connected_agents'), [2]);
    assert.deepEqual(scalar('sluice_control_translation_problems'), [0]);
    assert.ok(scalar('sum(sluice_control_certificate_issuances_total{result="issued"})')[0] >= 2);
  });

  it('every panel query of the shipped dashboard runs', () => {
    const failed = dashboardQueries()
      .map((q) => ({ ...q, r: query(q.expr) }))
      .filter((q) => q.r.status !== 'success')
      .map((q) => `${q.panel}: ${q.r.error}`);
    assert.deepEqual(failed, []);
  });

  it('promtool check metrics is clean on both agents and the control plane', () => {
    for (const target of ['127.0.0.1:15020', agent2, control]) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: metricsOf(target), encoding: 'utf8', timeout: 10000 });
      assert.equal(r.status, 0, `${target}: ${r.stdout}${r.stderr}`);
    }
  });

  it('both ends log the connection: outbound on node-1, inbound on node-2, mTLS, with identities and bytes', () => {
    const lines = (node: string) =>
      fs
        .readFileSync(status.agents.find((a) => a.node === node)!.log, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"connection complete"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const out = lines('node-1').find((l) => l.bytes_sent === BYTES);
    const inb = lines('node-2').find((l) => l.bytes_sent === BYTES);
    assert.ok(out, 'node-1 logged the connection');
    assert.ok(inb, 'node-2 logged the connection');
    for (const [l, direction] of [[out, 'outbound'], [inb, 'inbound']] as const) {
      assert.deepEqual(
        [l.level, l.component, l.direction, l.security, l['src.workload'], l['src.namespace'], l['src.identity'], l['dst.workload'], l['dst.namespace'], l['dst.identity'], l['dst.service'], l.bytes_recv, l.outcome],
        ['info', 'access', direction, 'mTLS', 'client', 'demo', 'spiffe://cluster.local/ns/demo/sa/client', 'web', 'demo', 'spiffe://cluster.local/ns/demo/sa/web', 'web.demo.svc.cluster.local', answer.length, 'closed'],
      );
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT/);
      assert.match(String(l.duration), /^\d+ms$/);
    }
    assert.equal(out['dst.vip'], `${VIP}:80`);
  });

  it('sluicectl changes log levels and switches the access log at run time', () => {
    const levels = JSON.parse(sim.must(['ctl', 'node-1', '--', '-o', 'json', 'log', '--level', 'proxy=debug'])) as { levels: Record<string, string>; accessLog: boolean };
    assert.equal(levels.levels.proxy, 'debug');
    const off = JSON.parse(sim.must(['ctl', 'node-1', '--', '-o', 'json', 'access-log', 'off'])) as { accessLog: boolean };
    assert.equal(off.accessLog, false);
    const log = status.agents.find((a) => a.node === 'node-1')!.log;
    const before = fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"connection complete"')).length;
    assert.equal(sim.exec('demo/client', ['node', '-e', sender(10, 0)], 20000).code, 0);
    spawnSync('sleep', ['1']);
    assert.equal(fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"connection complete"')).length, before, 'no access log line while off');
    sim.must(['ctl', 'node-1', '--', 'access-log', 'on']);
    sim.must(['ctl', 'node-1', '--', 'log', '--level', 'info']);
  });
});
