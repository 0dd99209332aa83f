// The access log: one line per connection when it ends, with ztunnel's
// field names (src.*, dst.*, direction, bytes_sent, bytes_recv, duration,
// error), so what operators read and grep for in ztunnel's log works here.
// Lines of failed connections (denied, refused, connect failures) are
// rate-limited per kind under a flood; what was held back is counted in the
// next line of that kind (`suppressed`).
import type { Logger } from 'pino';

/** The shape the node proxy and the tunnel's destination side hand over (proxy/node-proxy.ts AccessLogEntry). */
export interface AccessRecord {
  direction: 'outbound' | 'inbound';
  src: { pod: string; workload: string; namespace: string; principal: string; address: string };
  dst: { pod: string; workload: string; namespace: string; principal: string; address: string };
  vip: string;
  service: string;
  endpoint: string;
  security: 'mTLS' | 'plaintext';
  outcome: string;
  error: string;
  durationMs: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}

/** Outcomes that are not rate-limited: ordinary ends of connections. */
const ORDINARY = new Set(['closed', 'reset']);

export interface AccessLogOptions {
  enabled: boolean;
  /** Lines of one failure kind per interval before the rest are only counted. */
  burst?: number;
  intervalMs?: number;
  now?: () => number;
}

/**
 * Writes access log lines at info level on the given logger (component
 * "access"); can be switched on and off at run time.
 */
export class AccessLog {
  enabled: boolean;
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly windows = new Map<string, { start: number; logged: number; held: number }>();
  /** Lines written and held back since start. */
  readonly counts = { written: 0, suppressed: 0 };

  constructor(
    private readonly logger: Logger,
    options: AccessLogOptions,
  ) {
    this.enabled = options.enabled;
    this.burst = options.burst ?? 20;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Logs one connection (unless off, or held back by the per-kind limit). */
  write(r: AccessRecord): void {
    if (!this.enabled) return;
    let suppressed = 0;
    if (!ORDINARY.has(r.outcome)) {
      const kind = `${r.direction} ${r.outcome}`;
      const t = this.now();
      let w = this.windows.get(kind);
      if (!w || t - w.start >= this.intervalMs) {
        suppressed = w?.held ?? 0;
        this.windows.set(kind, (w = { start: t, logged: 0, held: 0 }));
      }
      if (w.logged >= this.burst) {
        w.held++;
        this.counts.suppressed++;
        return;
      }
      w.logged++;
    }
    this.counts.written++;
    this.logger.info(accessFields(r, suppressed), 'connection complete');
  }
}

/** The fields of one access log line, named as ztunnel names them. */
export function accessFields(r: AccessRecord, suppressed = 0): Record<string, unknown> {
  return {
    'src.addr': r.src.address,
    'src.workload': r.src.workload,
    'src.pod': r.src.pod,
    'src.namespace': r.src.namespace,
    'src.identity': r.src.principal,
    'dst.addr': r.dst.address || r.endpoint,
    // The service's host name, as ztunnel logs it (web.demo.svc.cluster.local).
    'dst.service': serviceHost(r.service),
    ...(r.vip ? { 'dst.vip': r.vip } : {}),
    'dst.workload': r.dst.workload,
    'dst.pod': r.dst.pod,
    'dst.namespace': r.dst.namespace,
    'dst.identity': r.dst.principal,
    direction: r.direction,
    security: r.security,
    // From the source's point of view, as ztunnel: sent to the destination, received back.
    bytes_sent: r.bytesFromClient,
    bytes_recv: r.bytesFromEndpoint,
    duration: `${r.durationMs}ms`,
    outcome: r.outcome,
    ...(r.error ? { error: r.error } : {}),
    ...(suppressed ? { suppressed } : {}),
  };
}

/** "namespace/name" -> "name.namespace.svc.cluster.local" (the cluster domain Istio's metrics use too); '' stays ''. */
export function serviceHost(service: string): string {
  const [namespace, name] = service.split('/');
  return name ? `${name}.${namespace}.svc.cluster.local` : service;
}
