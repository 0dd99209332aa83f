// Pieces shared by the agent's and the control plane's Prometheus registries:
// process metrics, build info, and Counters fed from the components' own
// monotonic counts (read at scrape, so no component imports prom-client).
import * as client from 'prom-client';

/**
 * prom-client's Node.js defaults that are Gauges named *_total (promtool
 * rejects them); each is the sum of its unsuffixed sibling
 * (nodejs_active_handles{type}, ...), which stays.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Registers the Node.js process metrics (prom-client's defaults: the
 * standard `process_*` names Prometheus' client libraries share, plus
 * `nodejs_*`) without the three Gauges prom-client names `*_total`, so
 * `promtool check metrics` stays clean.
 */
export function registerProcessMetrics(registry: client.Registry): void {
  client.collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
}

/**
 * `<prefix>_build_info{version, node_version}` = 1, the usual "info" metric
 * (as `istio_build` or Prometheus' own `prometheus_build_info`).
 */
export function registerBuildInfo(registry: client.Registry, name: string, version: string): void {
  new client.Gauge({
    name,
    help: 'Always 1; the labels say which build of sluice and which Node.js runs.',
    labelNames: ['version', 'node_version'],
    registers: [registry],
  }).set({ version, node_version: process.versions.node }, 1);
}

export type LabelValues = Record<string, string>;

/**
 * A Counter whose values come from a component's own monotonic counts,
 * read at scrape: each scrape adds the growth since the previous one. A
 * count that went down (its component was recreated) is taken as a restart:
 * the new value is added in full, so the Counter never decreases.
 * `read` returns [labels, value since the component started] pairs.
 */
export function sourcedCounter(
  registry: client.Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => Iterable<[LabelValues, number]>,
): client.Counter {
  const last = new Map<string, number>();
  return new client.Counter({
    name,
    help,
    labelNames: [...labelNames],
    registers: [registry],
    collect() {
      for (const [labels, value] of read()) {
        const key = labelNames.map((l) => labels[l] ?? '').join('\u0000');
        const prev = last.get(key);
        last.set(key, value);
        const grown = prev === undefined || value < prev ? value : value - prev;
        this.inc(labels, Math.max(0, grown));
      }
    },
  });
}

/** A Gauge set at scrape from `read` ([labels, value] pairs); series not returned are dropped. */
export function sourcedGauge(
  registry: client.Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => Iterable<[LabelValues, number]>,
): client.Gauge {
  return new client.Gauge({
    name,
    help,
    labelNames: [...labelNames],
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}
