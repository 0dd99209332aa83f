// Plaintext from outside the mesh into a meshed pod that authorization policy
// protects. In Istio ambient every connection into a meshed pod passes the
// node's proxy, so policy holds whatever address was dialled and whoever
// dials it; sluice does the same for the sources its connect hook cannot see
// (pods that are not enrolled, other nodes' hosts, anything outside the
// cluster). For each such pod the agent holds a listener inside the pod's
// netns (port 15006, Istio's inbound plaintext port) and the kernel's inbound
// program hands it every connection attempt that does not come from the
// node's own address. The pod's map entry is written as soon as the
// configuration asks for it, before the listener opens, and removed only when
// the configuration says so: without a listener the program drops, so an
// error here never lets plaintext past policy (fail closed). A STRICT pod
// whose kernel filter could not be attached is captured the same way, and
// the proxy refuses all its plaintext.
import type * as net from 'node:net';
import type { Logger } from 'pino';
import * as netAddr from 'node:net';
import type { InboundEntry } from '../datapath/map-codecs';
import { WHOLE_MAP, type ReconcileResult } from '../datapath/reconciler';
import { effectiveMtlsMode, type PeerAuthentication } from '../model/policy';
import type { Workload } from '../model/resources';
import type { PolicySet } from '../proxy/authorization';
import { destinationOf } from '../proxy/connection-decision';
import { FailureLog } from '../proxy/failure-log';

const INBOUND_MAP = 'sluice_inbound';

/** Istio's inbound plaintext port; reserved inside pods that policy protects. */
export const INBOUND_PLAINTEXT_PORT = 15006;

/** A pod whose plaintext inbound connections the node proxy must judge. */
export interface InboundPod {
  /** The pod's uid and address: one listener per pod, keyed by both. */
  uid: string;
  /** namespace/name, for logs and status. */
  pod: string;
  ip: string;
  /** Path of the pod's network namespace. */
  netns: string;
  /** The pod's interface inside its netns. */
  iface: string;
  /** Set for a STRICT pod whose kernel filter is not in place: the proxy refuses all its plaintext, saying this. */
  refuseAll?: string;
}

/**
 * The pods of this node whose plaintext inbound connections the node proxy
 * must judge: enrolled (`enrolled` lists them) and either selected by at
 * least one authorization policy and not STRICT (STRICT drops plaintext in
 * the kernel before it reaches the pod; with no policy the proxy would allow
 * every connection, so plaintext goes straight in), or STRICT with its
 * kernel filter not in place (`strictNotEnforced`: uid -> why), whose
 * plaintext the proxy then refuses. Each IPv4 address of such a pod is one
 * entry; a pod whose netns is unknown is left out. `iface` defaults to eth0
 * when the CNI step did not say.
 */
export function desiredInboundPods(
  enrolled: Iterable<Workload>,
  policies: PolicySet,
  peerAuthentications: readonly PeerAuthentication[],
  netnsOf: (uid: string) => { netns: string; podInterface?: string } | undefined,
  strictNotEnforced: ReadonlyMap<string, string> = new Map(),
): InboundPod[] {
  const out: InboundPod[] = [];
  for (const w of enrolled) {
    let refuseAll: string | undefined;
    if (effectiveMtlsMode(w, peerAuthentications) === 'STRICT') {
      if (!strictNotEnforced.has(w.uid)) continue;
      refuseAll = `STRICT, and the kernel filter is not in place (${strictNotEnforced.get(w.uid)})`;
    } else if (policies.applicableTo(destinationOf(w, w.namespace)).length === 0) continue;
    const ns = netnsOf(w.uid);
    if (!ns) continue;
    for (const ip of w.ips) {
      if (!netAddr.isIPv4(ip)) continue;
      out.push({ uid: `${w.uid} ${ip}`, pod: `${w.namespace}/${w.name}`, ip, netns: ns.netns, iface: ns.podInterface ?? 'eth0', ...(refuseAll ? { refuseAll } : {}) });
    }
  }
  return out;
}

export interface InboundCaptureDeps {
  captureInbound(netns: string, iface: string, port: number): Promise<{ fd: number; ifindex: number }>;
  applyInbound(entries: Map<string, InboundEntry>): ReconcileResult;
  /** Serves an inbound listening descriptor with the node proxy; takes the descriptor (closes it on failure). */
  serve(fd: number, pod: InboundPod): Promise<net.Server>;
  /** The node's own address: connections from it (the proxy, the tunnel endpoint, probes) pass untouched. */
  allowedAddress: string;
  port?: number;
  logger: Logger;
  /** How long to wait before retrying pods whose listener could not be opened (ms). */
  retryMs?: number;
}

/** One pod's inbound capture as `sluicectl status` shows it. */
export interface InboundCaptureStatus {
  pod: string;
  ip: string;
  listening: boolean;
  /** Why its listener is not open (plaintext into it is dropped meanwhile). */
  error?: string;
  refuseAll?: string;
}

interface Held {
  pod: InboundPod;
  server?: net.Server;
  error?: string;
}

/**
 * The listeners inside protected pods and the inbound map (see the top of
 * this file): reconcile() with the pods that need them, status() for
 * sluicectl, close() on a stop or a handover.
 */
export class InboundCapture {
  private readonly held = new Map<string, Held>();
  private readonly failures: FailureLog;
  private desired: InboundPod[] = [];
  private running?: Promise<void>;
  private again = false;
  private retry?: NodeJS.Timeout;
  private closed = false;
  /** Errors of the last map write, if any. */
  mapErrors: string[] = [];

  constructor(private readonly deps: InboundCaptureDeps) {
    this.failures = new FailureLog(deps.logger);
  }

  private get port(): number {
    return this.deps.port ?? INBOUND_PLAINTEXT_PORT;
  }

  /**
   * Makes the capture hold exactly these pods. The map is written now, on
   * every call (so this also repairs entries changed behind the agent);
   * listeners are opened and closed in the background, one pass at a time,
   * a call during a pass folded into the next one (see settled()). Returns
   * what the map write changed. Does nothing once closed.
   */
  reconcile(pods: InboundPod[]): ReconcileResult {
    if (this.closed) return { map: INBOUND_MAP, updated: 0, deleted: 0, unchanged: 0, errors: [], failures: [] };
    this.desired = pods;
    const result = this.writeMap(pods);
    if (this.running) this.again = true;
    else this.running = this.passes();
    return result;
  }

  /** Resolves when no listener work is pending. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private writeMap(pods: InboundPod[]): ReconcileResult {
    const entries = new Map<string, InboundEntry>();
    for (const p of pods) entries.set(p.ip, { allowedAddress: this.deps.allowedAddress, listenPort: this.port });
    let result: ReconcileResult;
    try {
      result = this.deps.applyInbound(entries);
    } catch (err) {
      const error = (err as Error).message;
      result = { map: INBOUND_MAP, updated: 0, deleted: 0, unchanged: 0, errors: [`inbound map: ${error}`], failures: [{ map: INBOUND_MAP, key: WHOLE_MAP, op: 'update', error }] };
    }
    this.mapErrors = result.errors;
    for (const e of result.errors) this.failures.report('inbound map', { err: e }, 'inbound capture map write failed', 'error');
    return result;
  }

  private async passes(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.closed);
    } finally {
      this.running = undefined;
    }
  }

  private async pass(): Promise<void> {
    const want = new Map(this.desired.map((p) => [p.uid, p]));
    for (const [uid, h] of [...this.held]) {
      const p = want.get(uid);
      if (p && p.netns === h.pod.netns && p.ip === h.pod.ip && p.iface === h.pod.iface && p.refuseAll === h.pod.refuseAll) continue;
      this.held.delete(uid);
      h.server?.close();
    }
    let failed = false;
    for (const p of want.values()) {
      if (this.closed || this.again) return; // the next pass starts from the latest pods
      if (this.held.get(p.uid)?.server) continue;
      const held: Held = { pod: p };
      this.held.set(p.uid, held);
      try {
        const { fd } = await this.deps.captureInbound(p.netns, p.iface, this.port);
        held.server = await this.deps.serve(fd, p);
        // Gone or closed while we opened it.
        if (this.closed || this.held.get(p.uid) !== held) held.server.close();
        else this.deps.logger.info({ pod: p.pod, ip: p.ip, port: this.port, ...(p.refuseAll ? { refuseAll: p.refuseAll } : {}) }, 'inbound plaintext goes through the node proxy');
      } catch (err) {
        failed = true;
        held.error = (err as Error).message;
        this.failures.report('inbound listener', { pod: p.pod, err: held.error }, 'cannot open the inbound listener in a pod: plaintext into it is dropped until it opens', 'error');
      }
    }
    if (failed && !this.closed && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.closed) this.reconcile(this.desired);
      }, this.deps.retryMs ?? 1000);
      this.retry.unref();
    }
  }

  status(): InboundCaptureStatus[] {
    return [...this.held.values()].map((h) => ({
      pod: h.pod.pod,
      ip: h.pod.ip,
      listening: h.server?.listening ?? false,
      ...(h.error ? { error: h.error } : {}),
      ...(h.pod.refuseAll ? { refuseAll: h.pod.refuseAll } : {}),
    }));
  }

  /**
   * Closes every listener and writes the map no more (a successor agent
   * owns it after a handover); the entries stay, so plaintext into these
   * pods is dropped until the next agent opens its own listeners.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    for (const h of this.held.values()) h.server?.close();
    await this.settled().catch(() => undefined);
    for (const h of this.held.values()) h.server?.close();
    this.held.clear();
  }
}
