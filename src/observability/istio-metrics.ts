// Istio-compatible TCP metrics (istio_tcp_connections_opened_total,
// istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total,
// istio_tcp_received_bytes_total), with Istio's standard labels, so the
// dashboards and Kiali graphs built on ztunnel's metrics read sluice's
// unchanged. The node proxy reports through a sink interface
// (proxy/telemetry.ts); this is its prom-client implementation.
import * as client from 'prom-client';

/** Istio's standard labels of the TCP metrics, in the order Istio documents them. */
export const ISTIO_TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

type Labels = Readonly<Record<string, string>>;

/** Labels kept when a label set is folded into the overflow series. */
const KEPT_IN_OVERFLOW = new Set(['reporter', 'request_protocol', 'response_flags', 'connection_security_policy']);

export interface IstioMetricsOptions {
  /**
   * Distinct label sets held at most (across the four families). Past it, new
   * label sets are counted in one series per reporter/security/flags whose
   * other labels say "overflow", and sluice_telemetry_overflow_total grows.
   */
  maxLabelSets?: number;
  /** A label set with no open connection and no activity for this long is removed. */
  idleExpiryMs?: number;
  now?: () => number;
}

interface Tracked {
  open: number;
  lastActive: number;
  /** The labels the series were created with (for removal). */
  labels: Labels;
  /** Response flags the closed counter has series for. */
  closedFlags: Set<string>;
}

/**
 * The four istio_tcp_* Counters and their bookkeeping. Implements the node
 * proxy's TelemetrySink: opened / bytes / closed. Cardinality is bounded by
 * the label sets actually seen (reporter x source workload x destination
 * workload x service x security x flags), capped by maxLabelSets, and
 * label sets idle for idleExpiryMs are dropped.
 */
export class IstioTcpMetrics {
  private readonly opened_: client.Counter;
  private readonly closed_: client.Counter;
  private readonly sent: client.Counter;
  private readonly received: client.Counter;
  private readonly overflow: client.Counter;
  private readonly tracked = new Map<string, Tracked>();
  private readonly maxLabelSets: number;
  private readonly idleExpiryMs: number;
  private readonly now: () => number;

  constructor(registry: client.Registry, options: IstioMetricsOptions = {}) {
    this.maxLabelSets = options.maxLabelSets ?? 10_000;
    this.idleExpiryMs = options.idleExpiryMs ?? 30 * 60_000;
    this.now = options.now ?? Date.now;
    const counter = (name: string, help: string) => new client.Counter({ name, help, labelNames: [...ISTIO_TCP_LABELS], registers: [registry] });
    this.opened_ = counter('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric; reporter source or destination).');
    this.closed_ = counter('istio_tcp_connections_closed_total', 'TCP connections closed, with response_flags (Istio standard metric).');
    this.sent = counter('istio_tcp_sent_bytes_total', 'Bytes sent during response: from the destination back to the source (Istio standard metric), counted as they flow.');
    this.received = counter('istio_tcp_received_bytes_total', 'Bytes received during request: from the source to the destination (Istio standard metric), counted as they flow.');
    this.overflow = new client.Counter({
      name: 'sluice_telemetry_overflow_total',
      help: 'Connection events counted in the istio_tcp_* overflow series because the label set cap was reached.',
      registers: [registry],
    });
    const tracked = this.tracked;
    new client.Gauge({
      name: 'sluice_telemetry_label_sets',
      help: 'Distinct istio_tcp_* label sets held now (bounded by the cap; idle ones expire).',
      registers: [registry],
      collect() {
        this.set(tracked.size);
      },
    });
  }

  /** A connection opened (istio_tcp_connections_opened_total). */
  opened(labels: Labels): void {
    const t = this.track(labels);
    t.open++;
    this.opened_.inc(t.labels);
    if (t.open === 1 && !t.closedFlags.has('-')) {
      // The other series of this label set start at 0 now, so the first
      // scrape after they grow shows the growth (increase() sees it whole).
      this.sent.inc(t.labels, 0);
      this.received.inc(t.labels, 0);
      this.closed_.inc(t.labels, 0);
      t.closedFlags.add('-');
    }
  }

  /** Bytes since the last report: `sent` back to the source, `received` from it. */
  bytes(labels: Labels, sent: number, received: number): void {
    const t = this.track(labels);
    if (sent > 0) this.sent.inc(t.labels, sent);
    if (received > 0) this.received.inc(t.labels, received);
  }

  /** A connection closed with ztunnel's response flag ("-", "DENY", "CONNECT"). */
  closed(labels: Labels, responseFlags: string): void {
    const t = this.track(labels);
    t.open = Math.max(0, t.open - 1);
    t.closedFlags.add(responseFlags);
    this.closed_.inc({ ...t.labels, response_flags: responseFlags });
  }

  /** Label sets held now. */
  get labelSets(): number {
    return this.tracked.size;
  }

  /** Removes the series of label sets with no open connection and no activity for idleExpiryMs. Returns how many. */
  expireIdle(): number {
    const cutoff = this.now() - this.idleExpiryMs;
    let removed = 0;
    for (const [key, t] of this.tracked) {
      if (t.open > 0 || t.lastActive > cutoff) continue;
      this.tracked.delete(key);
      for (const c of [this.opened_, this.sent, this.received]) c.remove(t.labels);
      for (const f of t.closedFlags) this.closed_.remove({ ...t.labels, response_flags: f });
      removed++;
    }
    return removed;
  }

  private track(labels: Labels): Tracked {
    // response_flags is "-" in the opened and bytes series; closed sets its own.
    let key = keyOf(labels);
    let t = this.tracked.get(key);
    if (!t && this.tracked.size >= this.maxLabelSets) {
      this.overflow.inc();
      const folded = Object.fromEntries(ISTIO_TCP_LABELS.map((l) => [l, KEPT_IN_OVERFLOW.has(l) ? labels[l] ?? '' : 'overflow']));
      folded.response_flags = '-';
      key = keyOf(folded);
      t = this.tracked.get(key);
      // The overflow series themselves may exceed the cap by a handful (one per reporter/security).
      if (!t) this.tracked.set(key, (t = { open: 0, lastActive: 0, labels: folded, closedFlags: new Set() }));
    }
    if (!t) {
      const own = Object.fromEntries(ISTIO_TCP_LABELS.map((l) => [l, labels[l] ?? '']));
      own.response_flags = '-';
      this.tracked.set(key, (t = { open: 0, lastActive: 0, labels: own, closedFlags: new Set() }));
    }
    t.lastActive = this.now();
    return t;
  }
}

function keyOf(labels: Labels): string {
  let k = '';
  for (const l of ISTIO_TCP_LABELS) if (l !== 'response_flags') k += `${labels[l] ?? ''}\u0000`;
  return k;
}
