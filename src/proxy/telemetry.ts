// What the node proxy and the tunnel's destination side report about each
// connection, for Istio-compatible TCP metrics (istio_tcp_*) and the access
// log. The proxy only calls a TelemetrySink; the agent implements it with
// prom-client Counters (observability/istio-metrics.ts). Label names and
// values follow Istio's standard metrics, as ztunnel reports them.
import type { Workload } from '../model/resources';

/**
 * Istio's standard TCP metric labels (istio.io "Istio Standard Metrics";
 * names and "unknown" for a value not known, as in ztunnel).
 */
export type IstioTcpLabels = {
  /** "source": reported by the source pod's node proxy; "destination": by the destination's. */
  reporter: 'source' | 'destination';
  source_workload: string;
  source_workload_namespace: string;
  /** spiffe://<trust domain>/ns/<namespace>/sa/<service account>. */
  source_principal: string;
  source_app: string;
  source_version: string;
  source_cluster: string;
  destination_workload: string;
  destination_workload_namespace: string;
  destination_principal: string;
  destination_app: string;
  destination_version: string;
  /** <name>.<namespace>.svc.cluster.local. */
  destination_service: string;
  destination_service_name: string;
  destination_service_namespace: string;
  destination_cluster: string;
  request_protocol: 'tcp';
  /** "-" none, "DENY" authorization denied, "CONNECT" no endpoint could be connected (ztunnel's flags). */
  response_flags: string;
  /** "mutual_tls" through a tunnel, "unknown" in plaintext (as ztunnel's source reporter says). */
  connection_security_policy: 'mutual_tls' | 'unknown';
};

/** ztunnel's response flags. */
export const RESPONSE_FLAGS = { none: '-', denied: 'DENY', connectFailed: 'CONNECT' } as const;

/**
 * Receives connection events. Calls are cheap (a map lookup and an add);
 * bytes are reported as deltas, periodically and at close, never per chunk.
 */
export interface TelemetrySink {
  /** A connection was accepted for a destination (istio_tcp_connections_opened_total). */
  opened(labels: IstioTcpLabels): void;
  /**
   * Bytes moved since the previous report: `received` from the source to the
   * destination (istio_tcp_received_bytes_total, "received during request"),
   * `sent` back to the source (istio_tcp_sent_bytes_total, "sent during response").
   */
  bytes(labels: IstioTcpLabels, sent: number, received: number): void;
  /** The connection ended, with ztunnel's response flag (istio_tcp_connections_closed_total). */
  closed(labels: IstioTcpLabels, responseFlags: string): void;
}

/** Istio's default cluster name when none is configured (values.global.multiCluster.clusterName). */
export const DEFAULT_CLUSTER = 'Kubernetes';
/** The Kubernetes cluster DNS domain used in destination_service. */
export const CLUSTER_DOMAIN = 'cluster.local';

const UNKNOWN = 'unknown';

/**
 * The workload (controller) name of a pod, as Istio labels it: a Deployment
 * pod "web-7d9c5f6b8-x2x4q" (label pod-template-hash=7d9c5f6b8) is "web"; a
 * StatefulSet pod "db-0" is "db"; a DaemonSet pod "agent-x2x4q" is "agent";
 * anything else keeps its pod name. Keying metrics by workload rather than
 * pod keeps their cardinality independent of pod churn.
 */
export function workloadName(w: { name: string; labels: Record<string, string> }): string {
  const hash = w.labels['pod-template-hash'];
  if (hash) {
    const m = new RegExp(`^(.+)-${hash.replace(/[^a-z0-9]/g, '')}-[a-z0-9]{5}$`).exec(w.name);
    if (m) return m[1];
  }
  if (w.labels['statefulset.kubernetes.io/pod-name'] === w.name) {
    const m = /^(.+)-\d+$/.exec(w.name);
    if (m) return m[1];
  }
  if (w.labels['controller-revision-hash'] && w.labels['pod-template-generation']) {
    const m = /^(.+)-[a-z0-9]{5}$/.exec(w.name);
    if (m) return m[1];
  }
  return w.name;
}

/** Istio's app and version labels of a pod: app / app.kubernetes.io/name, version / app.kubernetes.io/version. */
function appOf(w: Workload | undefined): { app: string; version: string } {
  if (!w) return { app: UNKNOWN, version: UNKNOWN };
  return {
    app: w.labels.app ?? w.labels['app.kubernetes.io/name'] ?? UNKNOWN,
    version: w.labels.version ?? w.labels['app.kubernetes.io/version'] ?? UNKNOWN,
  };
}

/** The destination service of a connection, when known. */
export interface ServiceRef {
  name: string;
  namespace: string;
}

/**
 * Istio's TCP labels for one connection. `sourcePrincipal` overrides the
 * source workload's identity (the destination side knows the verified
 * certificate's, which is what counts there).
 */
export function tcpLabels(
  reporter: IstioTcpLabels['reporter'],
  source: Workload | undefined,
  destination: Workload | undefined,
  service: ServiceRef | undefined,
  mtls: boolean,
  sourcePrincipal?: string,
): IstioTcpLabels {
  const s = appOf(source);
  const d = appOf(destination);
  return {
    reporter,
    source_workload: source ? workloadName(source) : UNKNOWN,
    source_workload_namespace: source?.namespace ?? UNKNOWN,
    source_principal: sourcePrincipal || source?.identity || UNKNOWN,
    source_app: s.app,
    source_version: s.version,
    source_cluster: DEFAULT_CLUSTER,
    destination_workload: destination ? workloadName(destination) : UNKNOWN,
    destination_workload_namespace: destination?.namespace ?? UNKNOWN,
    destination_principal: destination?.identity || UNKNOWN,
    destination_app: d.app,
    destination_version: d.version,
    destination_service: service ? `${service.name}.${service.namespace}.svc.${CLUSTER_DOMAIN}` : UNKNOWN,
    destination_service_name: service?.name ?? UNKNOWN,
    destination_service_namespace: service?.namespace ?? UNKNOWN,
    destination_cluster: DEFAULT_CLUSTER,
    request_protocol: 'tcp',
    response_flags: RESPONSE_FLAGS.none,
    connection_security_policy: mtls ? 'mutual_tls' : 'unknown',
  };
}

/** The same labels as another reporter sees them (a same-node connection is reported by both). */
export function asReporter(labels: IstioTcpLabels, reporter: IstioTcpLabels['reporter']): IstioTcpLabels {
  return { ...labels, reporter };
}

/** Turns a running byte count into deltas since the last report. */
export class ByteTally {
  private sent = 0;
  private received = 0;

  /** Reports the growth of the running totals (`sent` back to the source, `received` from it) to the sink. */
  report(sink: TelemetrySink, labels: readonly IstioTcpLabels[], sentTotal: number, receivedTotal: number): void {
    const ds = sentTotal - this.sent;
    const dr = receivedTotal - this.received;
    if (ds <= 0 && dr <= 0) return;
    this.sent = Math.max(this.sent, sentTotal);
    this.received = Math.max(this.received, receivedTotal);
    for (const l of labels) sink.bytes(l, Math.max(0, ds), Math.max(0, dr));
  }
}
