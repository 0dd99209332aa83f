// The destination side of the tunnel: accepts HTTP/2 CONNECT over mutual
// TLS 1.3 on :15008, presents the destination workload's certificate (by
// SNI), verifies the caller's certificate against the mesh root, applies
// authorization with the verified principal, and connects the local pod.
// Anything else (no or bad certificate, a target that is not a local pod, a
// denied principal) is refused, logged once and counted.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { Workload } from '../model/resources';
import type { Decision, Peer } from './authorization';
import { checkClaimedSource, parseForwardedFor, tunnelPeerOf } from './connection-decision';
import { FailureLog } from './failure-log';
import { BudgetQueues, type ConnectionLimits } from './budget-queues';
import { peerEntry, type AccessLogEntry, type ConnectionOutcome } from './node-proxy';
import { ByteTally, RESPONSE_FLAGS, tcpLabels, type IstioTcpLabels, type ServiceRef, type TelemetrySink } from './telemetry';
import { QUEUED_HEADER, TUNNEL_SESSION_WINDOW, TUNNEL_STREAM_WINDOW, identityFromSni, uriSanOf, type TlsCredentials } from './tunnel-identity';
import { DEFAULT_LIVENESS, watchLiveness, type LivenessSettings } from './tunnel-liveness';

export interface TunnelServerDeps {
  credentials(identity: string): TlsCredentials | undefined;
  rootPem(): string | undefined;
  /** A workload of this node with that pod IP. */
  localWorkload(ip: string): Workload | undefined;
  /** Every known workload (any node) with that IP: checks the source address a peer claims. */
  workloadsWithIp(ip: string): readonly Workload[];
  /** The connection decision shared with the node proxy and trace (connection-decision.ts). */
  authorize(destination: Workload, source: Peer, port: number): Decision;
  logger: Logger;
  /** Applied to the sockets to local pods and to each session's socket (may throw). */
  keepalive?: (socket: net.Socket) => void;
  /**
   * Budget for connections to local pods made on behalf of tunnel streams
   * (each holds a descriptor): past it a stream is refused with 503 before
   * anything is opened; past a source pod's share it waits for room (as a
   * same-node connection does), then is refused. Absent: unlimited.
   */
  limits?: ConnectionLimits;
  /** Arms or disarms a reset of the pod when the socket closes, crash included (see NodeProxy). */
  resetOnClose?: (socket: net.Socket, on: boolean) => void;
  /** Whether a socket that reported a clean end was in fact reset (see NodeProxy). */
  endedByReset?: (socket: net.Socket) => boolean;
  liveness?: LivenessSettings;
  /** The service a local pod's port serves (for metrics and the access log); absent or undefined: unknown. */
  serviceFor?(destination: Workload, port: number): ServiceRef | undefined;
  /** Istio TCP metrics, reporter="destination"; absent: nothing is reported. */
  telemetry?: TelemetrySink;
  /** One entry per stream when it ends (direction "inbound"), refused ones included. */
  accessLog?: (entry: AccessLogEntry) => void;
}

/** A stream waiting for its source pod's share of the budget. */
interface WaitingStream {
  stream: http2.ServerHttp2Stream;
  connect: () => void;
  /** The stream ended while it waited: counted and logged, once. */
  cancelled: () => void;
}

/** An open stream to a local pod: what to re-check when policies change. */
interface InboundStream {
  stream: http2.ServerHttp2Stream;
  upstream: net.Socket;
  destination: Workload;
  peer: Peer;
  port: number;
  labels?: IstioTcpLabels[];
  tally: ByteTally;
  log: Omit<AccessLogEntry, 'outcome' | 'error' | 'durationMs' | 'bytesFromClient' | 'bytesFromEndpoint'>;
  startedAt: number;
  outcome?: ConnectionOutcome;
  error?: string;
}

export class TunnelServer {
  readonly counters = { sessions: 0, accepted: 0, refusedTarget: 0, refusedPolicy: 0, refusedTls: 0, refusedSource: 0, refusedOverBudget: 0, waitedForBudget: 0, cancelledWhileWaiting: 0, connectFailed: 0, revoked: 0, deadPeers: 0, internalErrors: 0 };
  /** Connections to local pods held now (connecting or open), in all and per source pod address. */
  private held = 0;
  private readonly heldBySource = new Map<string, number>();
  /** Streams waiting for their source's share, per source pod address, oldest first. */
  private readonly waiting: BudgetQueues<WaitingStream>;
  private readonly server: http2.Http2SecureServer;
  private readonly open = new Set<InboundStream>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly failures: FailureLog;

  constructor(private readonly deps: TunnelServerDeps) {
    this.failures = new FailureLog(deps.logger);
    this.waiting = new BudgetQueues(deps.limits);
    this.server = http2.createSecureServer({
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      settings: { initialWindowSize: TUNNEL_STREAM_WINDOW },
      SNICallback: (servername, cb) => {
        const identity = identityFromSni(servername);
        const creds = identity ? deps.credentials(identity) : undefined;
        const root = deps.rootPem();
        if (!identity || !creds || !root) {
          cb(new Error(`no certificate here for ${servername}`));
          return;
        }
        cb(null, tls.createSecureContext({ key: creds.keyPem, cert: creds.chainPem.slice(0, -1).join(''), ca: root, minVersion: 'TLSv1.3' }));
      },
    });
    this.server.on('tlsClientError', (err, socket) => {
      this.counters.refusedTls++;
      deps.logger.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, `tunnel refused at TLS: ${err.message}`);
    });
    this.server.on('session', (session) => {
      this.counters.sessions++;
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      try {
        session.setLocalWindowSize(TUNNEL_SESSION_WINDOW);
        deps.keepalive?.(session.socket as net.Socket);
      } catch {
        // the session is already gone, or keepalive is not available: PINGs still run
      }
      watchLiveness(session, deps.liveness ?? DEFAULT_LIVENESS, () => this.counters.deadPeers++);
    });
    this.server.on('stream', (stream, headers) => {
      try {
        this.onStream(stream, headers);
      } catch (err) {
        this.counters.internalErrors++;
        this.failures.report('tunnel stream', { err: (err as Error).message }, 'tunnel stream failed', 'error');
        if (!stream.destroyed) stream.destroy(err as Error);
      }
    });
    this.server.on('sessionError', () => undefined);
    // Accept errors (EMFILE) must never reach an unhandled 'error'.
    this.server.on('error', (err) => this.failures.report('tunnel listener', { err: err.message }, 'tunnel listener error', 'error'));
  }

  /** Listens on address:port, or on `inherited`, a listening descriptor handed over by the agent this one replaces. */
  listen(address: string, port: number, inherited?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err) => reject(new Error(`tunnel listen ${inherited !== undefined ? `on inherited fd ${inherited}` : `${address}:${port}`}: ${err.message}`)));
      const done = () => {
        const bound = this.server.address() as net.AddressInfo | null;
        if (inherited !== undefined && (bound?.address !== address || bound.port !== port)) {
          this.server.close();
          reject(new Error(`the inherited tunnel listener is bound to ${bound?.address}:${bound?.port}, not ${address}:${port}`));
          return;
        }
        resolve();
      };
      if (inherited !== undefined) this.server.listen({ fd: inherited }, done);
      else this.server.listen(port, address, done);
    });
  }

  /** The listening socket, to hand over to a new agent. */
  get listener(): net.Server {
    return this.server;
  }

  /**
   * Stops accepting new sessions and asks every open one to go away
   * (HTTP/2 GOAWAY): their open streams run to their end, new streams go to
   * whoever listens now.
   */
  stopAccepting(): void {
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
    // close()'s callback would wait for every session to end.
    if (this.server.listening) this.server.close();
  }

  /**
   * Stops accepting new sessions (this process's listener closes) while the
   * open sessions go on serving streams, new ones included: for a stop with
   * no successor, when a GOAWAY would only send the peers to this node's
   * next agent before it is up.
   */
  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  /** Stops accepting and ends every session (their streams are reset). */
  close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Streams waiting for their source pod's share of the budget now. */
  get waitingStreams(): number {
    return this.waiting.waiting;
  }

  /** Sessions (mTLS connections from other agents) open now. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /**
   * Reports the bytes each open stream moved since the last report to the
   * telemetry sink (from socket byte counts; called every few seconds and
   * before a scrape, never per chunk).
   */
  reportBytes(): void {
    const sink = this.deps.telemetry;
    if (!sink) return;
    for (const s of this.open) if (s.labels) s.tally.report(sink, s.labels, s.upstream.bytesRead, s.upstream.bytesWritten);
  }

  /** Streams open to local pods now. */
  get openStreams(): number {
    return this.open.size;
  }

  /**
   * Re-checks every open inbound stream against the policies in force now
   * (`authorize` reads them) and resets those no longer allowed, at both
   * ends. Returns how many were closed.
   */
  revalidate(): number {
    let closed = 0;
    for (const s of [...this.open]) {
      const decision = this.deps.authorize(s.destination, s.peer, s.port);
      if (decision.allowed) continue;
      closed++;
      this.counters.revoked++;
      s.outcome = 'revoked';
      s.error = `policy no longer allows it: ${decision.reason}`;
      this.failures.report('revoked', { peer: s.peer.principal, destination: `${s.destination.namespace}/${s.destination.name}`, policy: decision.policy }, `open tunnel stream closed: ${decision.reason}`, 'info');
      s.upstream.resetAndDestroy();
      if (!s.stream.destroyed) s.stream.destroy(new Error('policy no longer allows this connection'));
    }
    return closed;
  }

  private refuse(stream: http2.ServerHttp2Stream, status: number, reason: string, log: object, ctx?: RefusalContext): void {
    this.failures.report(`refused ${status}`, log as Record<string, unknown>, `tunnel stream refused: ${reason}`);
    if (!stream.destroyed && !stream.closed) {
      try {
        stream.respond({ ':status': status, 'sluice-reason': reason }, { endStream: true });
      } catch {
        // the peer closed the stream meanwhile
      }
    }
    const outcome: ConnectionOutcome = status === 403 ? 'denied' : status === 502 ? 'connect failed' : 'refused';
    if (ctx?.labels && this.deps.telemetry) {
      // ztunnel counts a connection it denied or could not connect as opened and closed, with the flag.
      this.deps.telemetry.opened(ctx.labels);
      this.deps.telemetry.closed(ctx.labels, status === 403 ? RESPONSE_FLAGS.denied : status === 502 ? RESPONSE_FLAGS.connectFailed : RESPONSE_FLAGS.none);
    }
    this.deps.accessLog?.({
      ...(ctx?.entry ?? inboundEntry(undefined, undefined, String((log as { from?: string }).from ?? ''), String((log as { target?: string }).target ?? ''), undefined, (log as { peer?: string }).peer)),
      outcome,
      error: reason,
      durationMs: ctx?.durationMs ?? 0,
      bytesFromClient: 0,
      bytesFromEndpoint: 0,
    });
  }

  /** Ends the bookkeeping of an open stream once: metrics and the access log. */
  private streamEnded(s: InboundStream): void {
    if (!this.open.delete(s)) return;
    const sink = this.deps.telemetry;
    const fromClient = s.upstream.bytesWritten;
    const fromEndpoint = s.upstream.bytesRead;
    const reset = s.stream.rstCode !== undefined && s.stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
    const outcome = s.outcome ?? (reset ? 'reset' : 'closed');
    if (sink && s.labels) {
      s.tally.report(sink, s.labels, fromEndpoint, fromClient);
      for (const l of s.labels) sink.closed(l, outcome === 'revoked' ? RESPONSE_FLAGS.denied : RESPONSE_FLAGS.none);
    }
    this.deps.accessLog?.({
      ...s.log,
      outcome,
      error: outcome === 'closed' ? '' : s.error ?? (reset ? `stream reset (code ${s.stream.rstCode})` : outcome),
      durationMs: Date.now() - s.startedAt,
      bytesFromClient: fromClient,
      bytesFromEndpoint: fromEndpoint,
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const socket = stream.session?.socket as tls.TLSSocket | undefined;
    const principal = uriSanOf(socket?.getPeerCertificate()?.subjectaltname);
    const target = String(headers[':authority'] ?? '');
    const peerAddress = socket?.remoteAddress ?? '';
    const log = { peer: principal ?? '(none)', from: peerAddress, target };
    if (headers[':method'] !== 'CONNECT' || !principal) {
      this.counters.refusedTls++;
      this.refuse(stream, 400, 'only CONNECT from a peer with a workload certificate', log);
      return;
    }
    const parsed = parseConnectTarget(target);
    if (typeof parsed === 'string') {
      this.counters.refusedTarget++;
      this.refuse(stream, 400, parsed, log);
      return;
    }
    const destination = this.deps.localWorkload(parsed.ip);
    if (!destination) {
      this.counters.refusedTarget++;
      this.refuse(stream, 404, `${target} is not a pod on this node`, log);
      return;
    }
    const { port } = parsed;
    const service = this.deps.serviceFor?.(destination, port);
    // The source pod's address travels in the request (HBONE's forwarded
    // header); it counts only when it belongs to the verified identity.
    const claimed = parseForwardedFor(headers.forwarded);
    const refusedSource = claimed
      ? checkClaimedSource(claimed, principal, this.deps.workloadsWithIp(claimed))
      : 'no source address (forwarded: for=) in the request';
    if (refusedSource || !claimed) {
      this.counters.refusedSource++;
      this.refuse(stream, 400, refusedSource ?? 'no source address', log, { entry: inboundEntry(undefined, destination, peerAddress, target, service, principal) });
      return;
    }
    const peer = tunnelPeerOf(principal, claimed);
    // The claimed address belongs to the verified identity (checked above): name its pod.
    const sourceWorkload = this.deps.workloadsWithIp(claimed).find((w) => w.identity === principal);
    // Only the address travels in the request (forwarded: for=), not the pod's port.
    const sourceAddress = claimed;
    const entry = inboundEntry(sourceWorkload, destination, sourceAddress, target, service, principal);
    const labels = this.deps.telemetry ? tcpLabels('destination', sourceWorkload, destination, service, true, principal) : undefined;
    const decision = this.deps.authorize(destination, peer, port);
    if (!decision.allowed) {
      this.counters.refusedPolicy++;
      this.refuse(stream, 403, `denied: ${decision.reason}`, { ...log, source: claimed, destination: `${destination.namespace}/${destination.name}`, policy: decision.policy }, { entry, labels });
      return;
    }
    const connect = () => this.connectUpstream(stream, claimed, parsed.ip, port, target, { entry, labels, log, destination, peer });
    // Admitted after a wait: judged again by the policies in force then.
    const connectAfterWait = () => {
      const now = this.deps.authorize(destination, peer, port);
      if (now.allowed) return connect();
      this.counters.refusedPolicy++;
      this.refuse(stream, 403, `denied: ${now.reason}`, { ...log, source: claimed, destination: `${destination.namespace}/${destination.name}`, policy: now.policy }, { entry, labels });
    };
    const admission = this.admission(claimed);
    if (admission === 'start') connect();
    else if (admission === 'wait') {
      const queuedAt = Date.now();
      this.wait(stream, claimed, connectAfterWait, () => this.refuseOverBudget(stream, { ...log, source: claimed }, { entry, labels }, true), () => {
        // Its source gave up (a client that went away, a source agent's timeout): logged as the node proxy logs one.
        this.counters.cancelledWhileWaiting++;
        this.deps.accessLog?.({ ...entry, outcome: 'reset', error: 'the source ended the stream while it waited for the connection budget', durationMs: Date.now() - queuedAt, bytesFromClient: 0, bytesFromEndpoint: 0 });
      });
    }
    else this.refuseOverBudget(stream, { ...log, source: claimed }, { entry, labels }, false);
  }

  /**
   * Whether a stream from `source` may connect now, must wait for the
   * source's share, or is refused (the whole budget is held, or the source's
   * queue is full): budget-queues.ts, the node proxy's rule for same-node
   * connections, so a pod meets the same budget on every path. Pods on other
   * nodes, each within its own node's budget, must not together exhaust this
   * agent's descriptors.
   */
  private admission(source: string): 'start' | 'wait' | 'refuse' {
    const a = this.waiting.admission(source, this.held, this.heldBySource.get(source) ?? 0);
    return a === 'refuse-total' || a === 'refuse-source' ? 'refuse' : a;
  }

  /**
   * Parks a stream until its source's share has room, unanswered but for an
   * informational `100` with `sluice-queued`, which tells the source's agent
   * to wait past its connect timeout (up to the wait given in the header).
   * Past the wait (`expired`), or when the stream ends meanwhile
   * (`cancelled`), it leaves the queue.
   */
  private wait(stream: http2.ServerHttp2Stream, source: string, connect: () => void, expired: () => void, cancelled: () => void): void {
    const entry = this.waiting.enqueue(source, { stream, connect, cancelled }, expired);
    stream.once('close', () => {
      if (this.waiting.remove(source, entry)) cancelled();
    });
    try {
      stream.additionalHeaders({ ':status': 100, [QUEUED_HEADER]: String(this.waiting.waitMs) });
    } catch {
      // the stream is gone already: 'close' takes it out of the queue
    }
  }

  /** Connects the source's waiting streams, oldest first, while its share has room. */
  private admitWaiting(source: string): void {
    while (this.waiting.length(source) > 0 && this.admission(source) === 'start') {
      const next = this.waiting.next(source)!;
      if (next.stream.destroyed || next.stream.closed) {
        next.cancelled(); // reset by its source; out of the queue already, so its 'close' will not say so
        continue;
      }
      this.counters.waitedForBudget++;
      try {
        next.connect();
      } catch (err) {
        this.counters.internalErrors++;
        this.failures.report('tunnel stream', { err: (err as Error).message }, 'tunnel stream failed', 'error');
        if (!next.stream.destroyed) next.stream.destroy(err as Error);
      }
    }
  }

  private refuseOverBudget(stream: http2.ServerHttp2Stream, log: Record<string, unknown>, context: RefusalContext, waited: boolean): void {
    this.counters.refusedOverBudget++;
    this.refuse(stream, 503, waited ? `over the connection budget of the destination node for the ${this.waiting.waitMs} ms the stream waited` : 'over the connection budget of the destination node', log, { ...context, durationMs: waited ? this.waiting.waitMs : 0 });
  }

  /** Opens the connection to the local pod for an admitted stream, then relays. */
  private connectUpstream(
    stream: http2.ServerHttp2Stream,
    claimed: string,
    ip: string,
    port: number,
    target: string,
    ctx: { entry: RefusalContext['entry']; labels: IstioTcpLabels | undefined; log: Record<string, unknown>; destination: Workload; peer: Peer },
  ): void {
    const { entry, labels, log, destination, peer } = ctx;
    if (stream.destroyed || stream.closed) return;
    const upstream = net.connect({ host: ip, port, allowHalfOpen: true, noDelay: true });
    this.held++;
    this.heldBySource.set(claimed, (this.heldBySource.get(claimed) ?? 0) + 1);
    upstream.once('close', () => {
      this.held--;
      const n = (this.heldBySource.get(claimed) ?? 1) - 1;
      if (n > 0) this.heldBySource.set(claimed, n);
      else this.heldBySource.delete(claimed);
      if (this.waiting.waiting > 0) this.admitWaiting(claimed);
    });
    upstream.once('error', (err) => {
      if (!stream.headersSent) {
        this.counters.connectFailed++;
        this.refuse(stream, 502, `connect ${target}: ${err.message}`, log, { entry, labels });
      } else if (!stream.destroyed) stream.destroy(err);
    });
    upstream.once('connect', () => {
      try {
        this.relayInbound(stream, upstream, entry, labels, destination, peer, port);
      } catch (err) {
        // Out of onStream's try: a failure here ends this stream only.
        this.counters.internalErrors++;
        this.failures.report('tunnel stream', { err: (err as Error).message }, 'tunnel stream failed', 'error');
        upstream.resetAndDestroy();
        if (!stream.destroyed) stream.destroy(err as Error);
      }
    });
  }

  /** Relays an accepted stream and its connection to the local pod, both ways. */
  private relayInbound(
    stream: http2.ServerHttp2Stream,
    upstream: net.Socket,
    entry: RefusalContext['entry'],
    labels: IstioTcpLabels | undefined,
    destination: Workload,
    peer: Peer,
    port: number,
  ): void {
    {
      if (stream.destroyed || stream.closed) {
        upstream.resetAndDestroy();
        return;
      }
      try {
        this.deps.keepalive?.(upstream);
      } catch {
        // best effort: the tunnel's PINGs still watch the other side
      }
      this.counters.accepted++;
      const open: InboundStream = { stream, upstream, destination, peer, port, tally: new ByteTally(), log: entry, startedAt: Date.now(), ...(labels ? { labels: [labels] } : {}) };
      this.open.add(open);
      if (labels) this.deps.telemetry?.opened(labels);
      stream.respond({ ':status': 200 });
      stream.pipe(upstream, { end: false });
      const linger = (on: boolean) => {
        try {
          this.deps.resetOnClose?.(upstream, on);
        } catch {
          // gone already
        }
      };
      // If this agent dies mid-transfer the pod sees a reset, not a clean end.
      linger(true);
      stream.once('end', () => {
        linger(false);
        if (!upstream.destroyed) upstream.end();
      });
      // The pod's end is forwarded by hand: a reset libuv reported as
      // end-of-file travels as RST_STREAM, not END_STREAM.
      upstream.pipe(stream, { end: false });
      upstream.once('end', () => {
        if (this.deps.endedByReset?.(upstream)) stream.destroy(new Error('connection reset by the pod'));
        else stream.end();
      });
      // A reset of the pod's connection travels back as RST_STREAM: destroy,
      // not close(), which would send END_STREAM first (a clean end).
      upstream.on('error', (err) => {
        if (!stream.destroyed) stream.destroy(err);
      });
      const resetUpstream = () => {
        if (!upstream.destroyed) upstream.resetAndDestroy();
      };
      stream.on('aborted', resetUpstream);
      // Ends when both are closed: the pod's socket has its final byte counts then.
      let closed = 0;
      const oneClosed = () => {
        if (++closed === 2) this.streamEnded(open);
      };
      stream.on('close', () => {
        if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) resetUpstream();
        oneClosed();
      });
      upstream.once('close', oneClosed);
    }
  }
}

interface RefusalContext {
  entry: Omit<AccessLogEntry, 'outcome' | 'error' | 'durationMs' | 'bytesFromClient' | 'bytesFromEndpoint'>;
  labels?: IstioTcpLabels;
  /** How long the stream waited before it was refused, ms (0: refused at once). */
  durationMs?: number;
}

/** The access log fields of an inbound stream (the source is named by its verified identity). */
function inboundEntry(
  source: Workload | undefined,
  destination: Workload | undefined,
  sourceAddress: string,
  target: string,
  service: ServiceRef | undefined,
  principal: string | undefined,
): RefusalContext['entry'] {
  const src = peerEntry(source, sourceAddress, principal ?? '');
  return {
    direction: 'inbound',
    source: src.pod,
    sourceAddress,
    src,
    dst: peerEntry(destination, target),
    vip: '',
    service: service ? `${service.namespace}/${service.name}` : '',
    endpoint: target,
    security: 'mTLS',
  };
}

/**
 * The target of a CONNECT request (`:authority`, RFC 9113 section 8.5): an
 * IPv4 address and a port 1-65535, or an IPv6 address in brackets and a port.
 * Returns the parts, or why the target is refused (at most 300 characters
 * of the request are quoted back).
 */
export function parseConnectTarget(authority: string): { ip: string; port: number } | string {
  const quoted = JSON.stringify(authority.length > 300 ? `${authority.slice(0, 300)}...` : authority);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(authority);
  const ip = m ? (m[1] ?? m[2]) : undefined;
  if (!m || !ip || net.isIP(ip) === 0) return `CONNECT target ${quoted} is not IP:PORT`;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `CONNECT target ${quoted}: port must be 1-65535`;
  return { ip, port };
}
