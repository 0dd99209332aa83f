// Prometheus metrics of the agent (sluice's own; the Istio-compatible TCP
// metrics are in istio-metrics.ts). Values are read at scrape time from the
// components' own counters, so the proxy's hot path never touches
// prom-client; monotonic counts become real Counters (metric-helpers.ts).
import * as client from 'prom-client';
import { registerBuildInfo, registerProcessMetrics, sourcedCounter, sourcedGauge, type LabelValues } from './metric-helpers';

export interface MetricSources {
  /** The node proxy's event counts since start (ProxyCounters). */
  proxyCounters(): Record<string, number>;
  activeConnections(): number;
  /** Accepted connections waiting for their pod's share of the connection budget. */
  waitingConnections(): number;
  /** Capture program events since the maps were created (all CPUs). */
  bpfCounters(): Record<string, number>;
  /** Each pinned map: entries now and max_entries. */
  maps(): MapFill[];
  enrolledWorkloads(): number;
  snapshotVersion(): string;
  /** Control plane link, when the agent has one. */
  xds(): XdsMetricsView | undefined;
  /** Workload certificates, when the agent obtains them. */
  certificates(): CertificateMetricsView | undefined;
  /** mTLS tunnels, when the agent has them. */
  tunnels(): TunnelMetricsView | undefined;
  /** Authorization decisions since start, by deciding policy ("" when none applied) and action. */
  policyDecisions(): { policy: string; action: 'allow' | 'deny'; count: number }[];
  /** The splice relay, when connections are offloaded to it. */
  relay(): RelayMetricsView | undefined;
  /** Failures on the connection path since start, by kind (FailureLog counts). */
  failures(): Record<string, number>;
  /** Map entries a resync found changed or missing behind the agent and repaired, since start. */
  mapRepairs?(): number;
  /** Keys failing now by map, and full passes run to retry them since start (agent/map-sync.ts). */
  mapSync?(): { failingKeys: Record<string, number>; retries: number };
  /** This build's version (package.json). */
  version: string;
}

export interface MapFill {
  map: string;
  entries: number;
  capacity: number;
}

export interface XdsMetricsView {
  state: string;
  /** Streams established since start. */
  connects: number;
  types: { type: string; received: number; acks: number; nacks: number; lastAckAt?: string }[];
}

export interface CertificateMetricsView {
  certificates: { identity: string; state: string; notAfter?: string }[];
  issued: number;
  failures: number;
}

export interface TunnelMetricsView {
  /** Source side: pooled HTTP/2 sessions to other agents. */
  outboundSessions: number;
  sessionsOpened: number;
  streamsOpened: number;
  refused: number;
  deadPeers: number;
  /** Destination side (TunnelServer). */
  inboundSessions: number;
  inboundSessionsAccepted: number;
  inboundStreams: number;
  inboundCounters: Record<string, number>;
}

export interface RelayMetricsView {
  threads: number;
  /** Pairs being relayed now (each holds two pipes, one per direction). */
  pairs: number;
  bytesFromClients: number;
  bytesFromEndpoints: number;
  pairsDone: number;
}

/** The destination side's refusal counters (TunnelServer.counters) -> the `reason` label. */
const TUNNEL_REFUSALS: Record<string, string> = {
  refusedTarget: 'not_local_pod',
  refusedPolicy: 'policy',
  refusedTls: 'tls',
  refusedSource: 'source_address',
  connectFailed: 'connect_failed',
};

const STATES = ['connecting', 'connected', 'backoff', 'stopped'];

function entries(o: Record<string, number>, label: string): [LabelValues, number][] {
  return Object.entries(o).map(([k, v]) => [{ [label]: k }, v]);
}

/** snake_case of a camelCase counter name (policyDenied -> policy_denied). */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The agent's registry: process and build info, proxy, capture programs and
 * maps, xDS, certificates, tunnels, policy, relay. Every `*_total` is a
 * Counter; everything else a Gauge. `promtool check metrics` is clean on it
 * (test/unit/metrics.test.ts).
 */
export function createRegistry(sources: MetricSources): client.Registry {
  const registry = new client.Registry();
  registerProcessMetrics(registry);
  registerBuildInfo(registry, 'sluice_build_info', sources.version);

  // ---- node proxy ----
  sourcedCounter(
    registry,
    'sluice_proxy_events_total',
    'Node proxy events since start, by event (accepted, relayed, retried, no_original_dst, policy_denied, refused_over_budget, ...).',
    ['event'],
    () => Object.entries(sources.proxyCounters()).filter(([k]) => !k.startsWith('bytes')).map(([k, v]) => [{ event: snakeCase(k) }, v]),
  );
  sourcedCounter(
    registry,
    'sluice_proxy_bytes_total',
    'Bytes the node proxy relayed for connections that ended, by direction (from_client, from_endpoint); live ones are in istio_tcp_*_bytes_total.',
    ['direction'],
    () => {
      const c = sources.proxyCounters();
      return [
        [{ direction: 'from_client' }, c.bytesFromClients ?? 0],
        [{ direction: 'from_endpoint' }, c.bytesFromEndpoints ?? 0],
      ];
    },
  );
  sourcedCounter(registry, 'sluice_proxy_failures_total', 'Failures on the connection path since start, by kind (logged at most a few times per interval; all counted here).', ['kind'], () =>
    Object.entries(sources.failures()).map(([k, v]) => [{ kind: k.replace(/\s+/g, '_') }, v]),
  );
  sourcedGauge(registry, 'sluice_proxy_active_connections', 'Connections the node proxy is relaying now.', [], () => [[{}, sources.activeConnections()]]);
  sourcedGauge(registry, 'sluice_proxy_waiting_connections', "Accepted connections waiting, paused, for their pod's share of the connection budget.", [], () => [[{}, sources.waitingConnections()]]);
  sourcedCounter(registry, 'sluice_policy_decisions_total', 'Authorization decisions (node proxy and tunnel destination side), by deciding policy ("" when none applied) and action.', ['policy', 'action'], () =>
    sources.policyDecisions().map((d) => [{ policy: d.policy, action: d.action }, d.count]),
  );

  // ---- capture programs and maps ----
  sourcedCounter(registry, 'sluice_bpf_events_total', 'Capture program events (all CPUs), by event.', ['event'], () => entries(sources.bpfCounters(), 'event'));
  sourcedGauge(registry, 'sluice_bpf_map_entries', 'Entries in each pinned BPF map now.', ['map'], () => sources.maps().map((m) => [{ map: m.map }, m.entries]));
  sourcedGauge(registry, 'sluice_bpf_map_capacity', 'max_entries of each pinned BPF map (divide sluice_bpf_map_entries by it for the fill ratio).', ['map'], () =>
    sources.maps().map((m) => [{ map: m.map }, m.capacity]),
  );
  sourcedGauge(registry, 'sluice_enrolled_workloads', 'Workloads on this node whose connections are captured.', [], () => [[{}, sources.enrolledWorkloads()]]);
  sourcedGauge(registry, 'sluice_config_info', 'Always 1; the label is the version of the configuration being served.', ['version'], () => [[{ version: sources.snapshotVersion() }, 1]]);

  // ---- xDS ----
  sourcedGauge(registry, 'sluice_xds_connected', '1 while the agent has a live stream to the control plane.', [], () => [[{}, sources.xds()?.state === 'connected' ? 1 : 0]]);
  sourcedGauge(registry, 'sluice_xds_connection_state', '1 for the state the control plane stream is in (connecting, connected, backoff, stopped), 0 for the others.', ['state'], () => {
    const x = sources.xds();
    return x ? STATES.map((s) => [{ state: s }, x.state === s ? 1 : 0]) : [];
  });
  sourcedCounter(registry, 'sluice_xds_connects_total', 'Streams to the control plane established since start.', [], () => {
    const x = sources.xds();
    return x ? [[{}, x.connects]] : [];
  });
  sourcedCounter(registry, 'sluice_xds_pushes_total', 'Delta xDS responses (pushes) received, by resource type.', ['type'], () => (sources.xds()?.types ?? []).map((t) => [{ type: t.type }, t.received]));
  sourcedCounter(registry, 'sluice_xds_responses_total', 'Delta xDS responses answered, by resource type and result (ack, nack).', ['type', 'result'], () =>
    (sources.xds()?.types ?? []).flatMap((t) => [
      [{ type: t.type, result: 'ack' }, t.acks] as [LabelValues, number],
      [{ type: t.type, result: 'nack' }, t.nacks] as [LabelValues, number],
    ]),
  );
  sourcedGauge(
    registry,
    'sluice_xds_last_ack_timestamp_seconds',
    'Unix time of the last ACKed update, by resource type (its age: time() - this).',
    ['type'],
    () => (sources.xds()?.types ?? []).filter((t) => t.lastAckAt).map((t) => [{ type: t.type }, Date.parse(t.lastAckAt!) / 1000]),
  );

  // ---- certificates ----
  sourcedGauge(registry, 'sluice_certificate_expiry_timestamp_seconds', 'Unix time the workload certificate held for each identity expires.', ['identity'], () =>
    (sources.certificates()?.certificates ?? []).filter((c) => c.notAfter).map((c) => [{ identity: c.identity }, Date.parse(c.notAfter!) / 1000]),
  );
  sourcedGauge(registry, 'sluice_certificate_valid', '1 when the certificate held for the identity is usable now (state valid or renewing), else 0.', ['identity'], () =>
    (sources.certificates()?.certificates ?? []).map((c) => [{ identity: c.identity }, c.state === 'valid' || c.state === 'renewing' ? 1 : 0]),
  );
  sourcedCounter(registry, 'sluice_certificate_issuances_total', 'Certificates obtained from the control plane (first issue and renewals).', [], () => {
    const c = sources.certificates();
    return c ? [[{}, c.issued]] : [];
  });
  sourcedCounter(registry, 'sluice_certificate_failures_total', 'Certificate requests that failed.', [], () => {
    const c = sources.certificates();
    return c ? [[{}, c.failures]] : [];
  });

  sourcedCounter(registry, 'sluice_map_repairs_total', 'BPF map entries a periodic resync found changed, missing or stray (changed behind the agent) and repaired.', [], () =>
    sources.mapRepairs ? [[{}, sources.mapRepairs()]] : [],
  );
  sourcedGauge(registry, 'sluice_map_failing_keys', 'BPF map keys the agent could not put right on its last pass, by map; retried with backoff (sluicectl status lists them).', ['map'], () =>
    Object.entries(sources.mapSync?.().failingKeys ?? {}).map(([map, n]) => [{ map }, n]),
  );
  sourcedCounter(registry, 'sluice_map_retries_total', 'Full map passes run to retry failing keys (backoff from 1 s to 30 s).', [], () => {
    const m = sources.mapSync?.();
    return m ? [[{}, m.retries]] : [];
  });

  // ---- tunnels ----
  sourcedGauge(registry, 'sluice_tunnel_sessions', 'HTTP/2 mTLS sessions open now, by direction (outbound: pooled by this agent; inbound: accepted from others).', ['direction'], () => {
    const t = sources.tunnels();
    return t ? [[{ direction: 'outbound' }, t.outboundSessions], [{ direction: 'inbound' }, t.inboundSessions]] : [];
  });
  sourcedCounter(registry, 'sluice_tunnel_handshakes_total', 'mTLS sessions established, by direction.', ['direction'], () => {
    const t = sources.tunnels();
    return t ? [[{ direction: 'outbound' }, t.sessionsOpened], [{ direction: 'inbound' }, t.inboundSessionsAccepted]] : [];
  });
  sourcedCounter(registry, 'sluice_tunnel_streams_total', 'Tunnel streams opened (one per proxied cross-node connection), by direction.', ['direction'], () => {
    const t = sources.tunnels();
    return t ? [[{ direction: 'outbound' }, t.streamsOpened], [{ direction: 'inbound' }, t.inboundCounters.accepted ?? 0]] : [];
  });
  sourcedGauge(registry, 'sluice_tunnel_open_streams', 'Inbound tunnel streams connected to local pods now.', [], () => {
    const t = sources.tunnels();
    return t ? [[{}, t.inboundStreams]] : [];
  });
  sourcedCounter(
    registry,
    'sluice_tunnel_refusals_total',
    'Tunnel streams refused, by side and reason (destination: not_local_pod, policy, tls, source_address, connect_failed; source: refused by the peer).',
    ['side', 'reason'],
    () => {
      const t = sources.tunnels();
      if (!t) return [];
      const out: [LabelValues, number][] = Object.entries(TUNNEL_REFUSALS).map(([k, reason]) => [{ side: 'destination', reason }, t.inboundCounters[k] ?? 0]);
      out.push([{ side: 'source', reason: 'refused_by_peer' }, t.refused]);
      return out;
    },
  );
  sourcedCounter(registry, 'sluice_tunnel_dead_peers_total', 'Tunnel sessions closed because the peer stopped answering PINGs, by direction.', ['direction'], () => {
    const t = sources.tunnels();
    return t ? [[{ direction: 'outbound' }, t.deadPeers], [{ direction: 'inbound' }, t.inboundCounters.deadPeers ?? 0]] : [];
  });

  // ---- splice relay ----
  sourcedGauge(registry, 'sluice_relay_threads', 'Splice relay threads.', [], () => {
    const r = sources.relay();
    return r ? [[{}, r.threads]] : [];
  });
  sourcedGauge(registry, 'sluice_relay_pairs', 'Connection pairs the splice relay carries now.', [], () => {
    const r = sources.relay();
    return r ? [[{}, r.pairs]] : [];
  });
  sourcedGauge(registry, 'sluice_relay_pipes', 'Kernel pipes the relayed pairs hold now (one per direction per pair).', [], () => {
    const r = sources.relay();
    return r ? [[{}, r.pairs * 2]] : [];
  });
  sourcedCounter(registry, 'sluice_relay_pairs_total', 'Pairs the splice relay finished carrying.', [], () => {
    const r = sources.relay();
    return r ? [[{}, r.pairsDone]] : [];
  });
  sourcedCounter(registry, 'sluice_relay_bytes_total', 'Bytes the splice relay moved (live pairs included), by direction.', ['direction'], () => {
    const r = sources.relay();
    return r
      ? [
          [{ direction: 'from_client' }, r.bytesFromClients],
          [{ direction: 'from_endpoint' }, r.bytesFromEndpoints],
        ]
      : [];
  });
  return registry;
}
