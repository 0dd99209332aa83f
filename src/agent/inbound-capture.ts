// Plaintext from outside the mesh into a meshed pod that authorization policy
// protects. In Istio ambient every connection into a meshed pod passes the
// node's proxy, so policy holds whatever address was dialled and whoever
// dials it; sluice does the same for the sources its connect hook cannot see
// (pods that are not enrolled, other nodes' hosts, anything outside the
// cluster). For each such pod the agent holds a listener inside the pod's
// netns (port 15006, Istio's inbound plaintext port) and the kernel's inbound
// program hands it every connection attempt that does not come from the
// node's own address. The pod's map entry is written before the listener is
// opened and removed only when the configuration says so: without a
// listener the program drops, so an error here never lets plaintext past
// policy (fail closed).
import type * as net from 'node:net';
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import * as netAddr from 'node:net';
import type { InboundEntry } from '../datapath/map-codecs';
import type { ReconcileResult } from '../datapath/reconciler';
import { effectiveMtlsMode, type PeerAuthentication } from '../model/policy';
import type { Workload } from '../model/resources';
import type { PolicySet } from '../proxy/authorization';
import { destinationOf } from '../proxy/connection-decision';
import { FailureLog } from '../proxy/failure-log';

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
}

/**
 * The pods of this node whose plaintext inbound connections the node proxy
 * must judge: enrolled (`enrolled` lists them), not STRICT (STRICT drops
 * plaintext in the kernel before it reaches the pod), and selected by at
 * least one authorization policy (with none, the proxy would allow every
 * connection, so plaintext goes straight in). Each IPv4 address of such a
 * pod is one entry; a pod whose netns is unknown is left out (it is not
 * enrolled either). `iface` defaults to eth0 when the CNI step did not say.
 */
export function desiredInboundPods(
  enrolled: Iterable<Workload>,
  policies: PolicySet,
  peerAuthentications: readonly PeerAuthentication[],
  netnsOf: (uid: string) => { netns: string; podInterface?: string } | undefined,
): InboundPod[] {
  const out: InboundPod[] = [];
  for (const w of enrolled) {
    if (effectiveMtlsMode(w, peerAuthentications) === 'STRICT') continue;
    if (policies.applicableTo(destinationOf(w, w.namespace)).length === 0) continue;
    const ns = netnsOf(w.uid);
    if (!ns) continue;
    for (const ip of w.ips) {
      if (!netAddr.isIPv4(ip)) continue;
      out.push({ uid: `${w.uid} ${ip}`, pod: `${w.namespace}/${w.name}`, ip, netns: ns.netns, iface: ns.podInterface ?? 'eth0' });
    }
  }
  return out;
}

export interface InboundCaptureDeps {
  captureInbound(netns: string, iface: string, port: number): Promise<{ fd: number; ifindex: number }>;
  applyInbound(entries: Map<string, InboundEntry>): ReconcileResult;
  /** Serves an inbound listening descriptor with the node proxy. */
  serve(fd: number): Promise<net.Server>;
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
}

interface Held {
  pod: InboundPod;
  server?: net.Server;
  error?: string;
}

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
   * Makes the capture hold exactly these pods: map entries at once, then
   * listeners opened (or closed) in the background, one pass at a time; a
   * call during a pass is folded into the next one. Returns the running pass.
   */
  reconcile(pods: InboundPod[]): Promise<void> {
    this.desired = pods;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        void this.reconcile(this.desired);
      }
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    const want = new Map(this.desired.map((p) => [p.uid, p]));
    // Entries first: from now on plaintext into these pods meets policy or is dropped.
    const entries = new Map<string, InboundEntry>();
    for (const p of want.values()) entries.set(p.ip, { allowedAddress: this.deps.allowedAddress, listenPort: this.port });
    try {
      this.mapErrors = this.deps.applyInbound(entries).errors;
    } catch (err) {
      this.mapErrors = [`inbound map: ${(err as Error).message}`];
    }
    for (const e of this.mapErrors) this.failures.report('inbound map', { err: e }, 'inbound capture map write failed', 'error');
    for (const [uid, h] of [...this.held]) {
      const p = want.get(uid);
      if (p && p.netns === h.pod.netns && p.ip === h.pod.ip && p.iface === h.pod.iface) continue;
      this.held.delete(uid);
      h.server?.close();
    }
    let failed = false;
    for (const p of want.values()) {
      if (this.closed) return;
      const h = this.held.get(p.uid);
      if (h?.server) continue;
      const held: Held = { pod: p };
      this.held.set(p.uid, held);
      try {
        const { fd } = await this.deps.captureInbound(p.netns, p.iface, this.port);
        try {
          held.server = await this.deps.serve(fd);
        } catch (err) {
          fs.closeSync(fd);
          throw err;
        }
        // Gone or closed while we opened it.
        if (this.closed || this.held.get(p.uid) !== held) held.server.close();
        else this.deps.logger.info({ pod: p.pod, ip: p.ip, port: this.port }, 'inbound plaintext goes through the node proxy');
      } catch (err) {
        failed = true;
        held.error = (err as Error).message;
        this.failures.report('inbound listener', { pod: p.pod, err: held.error }, 'cannot open the inbound listener in a pod: plaintext into it is dropped until it opens', 'error');
      }
    }
    if (failed && !this.closed && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.reconcile(this.desired);
      }, this.deps.retryMs ?? 5000);
      this.retry.unref();
    }
  }

  status(): InboundCaptureStatus[] {
    return [...this.held.values()].map((h) => ({ pod: h.pod.pod, ip: h.pod.ip, listening: h.server?.listening ?? false, ...(h.error ? { error: h.error } : {}) }));
  }

  /**
   * Closes every listener; the map entries stay, so plaintext into these
   * pods is dropped until the next agent opens its own listeners.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.running?.catch(() => undefined);
    for (const h of this.held.values()) h.server?.close();
    this.held.clear();
  }
}
