// Prometheus metrics of the agent. Values are read at scrape time from the
// components' own counters, so the proxy's hot path never touches prom-client.
import * as client from 'prom-client';

export interface MetricSources {
  proxyCounters(): Record<string, number>;
  activeConnections(): number;
  bpfCounters(): Record<string, number>;
  enrolledWorkloads(): number;
  snapshotVersion(): string;
  /** Control plane link, when the agent has one. */
  xds(): XdsMetricsView | undefined;
}

export interface XdsMetricsView {
  state: string;
  responses: number;
  types: { type: string; acks: number; nacks: number }[];
}

export function createRegistry(sources: MetricSources): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'sluice_agent_' });

  new client.Gauge({
    name: 'sluice_proxy_events_total',
    help: 'Node proxy events since start, by event (accepted, relayed, retried, noOriginalDst, ...).',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, v] of Object.entries(sources.proxyCounters())) this.set({ event }, v);
    },
  });
  new client.Gauge({
    name: 'sluice_proxy_active_connections',
    help: 'Connections the node proxy is relaying now.',
    registers: [registry],
    collect() {
      this.set(sources.activeConnections());
    },
  });
  new client.Gauge({
    name: 'sluice_bpf_events_total',
    help: 'Capture program events (all CPUs), by event.',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, v] of Object.entries(sources.bpfCounters())) this.set({ event }, v);
    },
  });
  new client.Gauge({
    name: 'sluice_enrolled_workloads',
    help: 'Workloads on this node whose connections are captured.',
    registers: [registry],
    collect() {
      this.set(sources.enrolledWorkloads());
    },
  });
  new client.Gauge({
    name: 'sluice_policy_decisions_total',
    help: 'Authorization decisions of the node proxy, by action.',
    labelNames: ['action'],
    registers: [registry],
    collect() {
      const c = sources.proxyCounters();
      this.set({ action: 'allow' }, c.policyAllowed ?? 0);
      this.set({ action: 'deny' }, c.policyDenied ?? 0);
    },
  });
  new client.Gauge({
    name: 'sluice_xds_connected',
    help: '1 while the agent has a live stream to the control plane.',
    registers: [registry],
    collect() {
      this.set(sources.xds()?.state === 'connected' ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'sluice_xds_responses_total',
    help: 'Delta xDS responses (pushes) received from the control plane.',
    registers: [registry],
    collect() {
      this.set(sources.xds()?.responses ?? 0);
    },
  });
  new client.Gauge({
    name: 'sluice_xds_acks_total',
    help: 'Responses ACKed or NACKed, by resource type and result.',
    labelNames: ['type', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of sources.xds()?.types ?? []) {
        this.set({ type: t.type, result: 'ack' }, t.acks);
        this.set({ type: t.type, result: 'nack' }, t.nacks);
      }
    },
  });
  new client.Gauge({
    name: 'sluice_config_info',
    help: 'Version of the configuration being served.',
    labelNames: ['version'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: sources.snapshotVersion() }, 1);
    },
  });
  return registry;
}
