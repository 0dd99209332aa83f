// The Grafana dashboard shipped in deploy/grafana: every panel's PromQL
// parses (promtool, through a rules file), and names only metrics the agent
// or the control plane export. (The e2e telemetry test runs them against a
// real Prometheus.)
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as client from 'prom-client';
import { createControlRegistry } from '../../src/observability/control-metrics';
import { IstioTcpMetrics } from '../../src/observability/istio-metrics';
import { createRegistry } from '../../src/observability/metrics';
import { DASHBOARD, dashboardQueries, type Panel } from '../helpers/dashboard';

async function exportedNames(): Promise<Set<string>> {
  const zero = () => 0;
  const agent = createRegistry({
    version: 'x', proxyCounters: () => ({}), activeConnections: zero, waitingConnections: zero, bpfCounters: () => ({}), maps: () => [], enrolledWorkloads: zero,
    snapshotVersion: () => '', xds: () => undefined, certificates: () => undefined, tunnels: () => undefined, policyDecisions: () => [],
    relay: () => undefined, failures: () => ({}),
  });
  new IstioTcpMetrics(agent);
  const control = createControlRegistry({
    version: 'x', streams: () => [], xdsByType: () => ({}), issuance: () => undefined, translationProblems: zero, publishes: zero, configVersion: () => '',
  });
  const names = new Set<string>();
  for (const r of [agent, control] as client.Registry[]) {
    for (const m of await r.getMetricsAsJSON()) {
      names.add(m.name);
      // Histogram and summary series.
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
    }
  }
  return names;
}

describe('Grafana dashboard', () => {
  const queries = dashboardQueries();

  it('has panels with queries, each with a data source', () => {
    const d = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const withQueries = d.panels.filter((p) => p.type !== 'row');
    assert.ok(withQueries.length >= 20);
    for (const p of withQueries) {
      assert.ok(p.datasource, `${p.title} has a data source`);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`);
    }
  });

  it('every query names metrics the agent or the control plane export', async () => {
    const names = await exportedNames();
    const unknown: string[] = [];
    for (const q of queries) {
      for (const m of q.expr.matchAll(/\b((?:istio|sluice|process|nodejs)_[a-z0-9_]+)\b/g)) if (!names.has(m[1])) unknown.push(`${q.panel}: ${m[1]}`);
    }
    assert.deepEqual(unknown, []);
  });

  it('every query parses (promtool check rules)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-dashboard-'));
    try {
      const rules = path.join(dir, 'rules.yaml');
      const lines = ['groups:', '  - name: dashboard', '    rules:'];
      queries.forEach((q, i) => lines.push(`      - record: dashboard:query_${i}`, `        expr: ${JSON.stringify(q.expr)}`));
      fs.writeFileSync(rules, `${lines.join('\n')}\n`);
      const r = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
