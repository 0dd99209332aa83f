// The queries of the Grafana dashboard shipped in deploy/grafana, for the
// tests that parse and run them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from './sim-fixture';

export const DASHBOARD = path.join(projectRoot, 'deploy', 'grafana', 'sluice-dashboard.json');

export interface Panel {
  type: string;
  title: string;
  datasource?: unknown;
  targets?: { expr: string }[];
}

/** Every query of the dashboard, with Grafana's variables replaced by values Prometheus accepts. */
export function dashboardQueries(file = DASHBOARD): { panel: string; expr: string }[] {
  const d = JSON.parse(fs.readFileSync(file, 'utf8')) as { panels: Panel[] };
  return d.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr.replace(/\$__rate_interval/g, '1m').replace(/\$namespace/g, '.*') })),
  );
}
