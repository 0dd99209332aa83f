// The node proxy: accepts the connections that the capture programs redirect
// to <proxy address>:15001, finds what each one originally dialled, picks an
// endpoint of that service (retrying another on connect failure) and relays
// bytes both ways with back-pressure and half-close.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { endpointTargetPort, type OriginalDestination, type Workload } from '../model/resources';
import { PolicySet, type Peer } from './authorization';
import { BudgetQueues, type ConnectionLimits } from './budget-queues';
import { authorizeConnection, peerOf } from './connection-decision';
import { EndpointStats, endpointKey, pickEndpoint } from './endpoint-picker';
import { FailureLog } from './failure-log';
import type { ServiceIndex, VipTarget } from './service-index';
import type { TunnelPool } from './tunnel-client';
import { ByteTally, RESPONSE_FLAGS, asReporter, tcpLabels, workloadName, type IstioTcpLabels, type TelemetrySink } from './telemetry';
import type { ProxiedConnection } from '../model/connection';

export type { OriginalDestination };

/**
 * Carries an established (client, endpoint) pair's bytes elsewhere (the
 * kernel-side splice relay). Optional: without it the proxy relays in JS.
 */
export interface RelayOffload {
  handOver(
    id: number,
    client: net.Socket,
    upstream: net.Socket,
    done: (r: { bytesFromClient: number; bytesFromEndpoint: number; error: string }) => void,
  ): boolean;
  bytes(): Map<number, [number, number]>;
  /** Ends a handed-over pair with a reset at both ends; its done callback still runs. */
  reset(id: number): void;
}

export interface ProxyDeps {
  /** The original destination recorded by the capture programs, if any. */
  originalDst(socket: net.Socket): OriginalDestination | undefined;
  /** The enrolled workload that owns a netns cookie. */
  sourceWorkload(netnsCookie: bigint): Workload | undefined;
  index(): ServiceIndex;
  /** Authorization policies in force now; absent means none. */
  policies?(): PolicySet;
  logger: Logger;
  offload?: RelayOffload;
  /** This node's name: endpoints elsewhere are reached through the tunnel. */
  node?: string;
  /** mTLS tunnels to other nodes' agents; absent: other nodes are reached in plaintext. */
  tunnel?: TunnelPool;
  /** Called once per connection when it ends (the access log); absent: nothing is built. */
  accessLog?: (entry: AccessLogEntry) => void;
  /** Istio-compatible TCP metrics (opened, bytes as they flow, closed); absent: nothing is reported. */
  telemetry?: TelemetrySink;
  /**
   * Applied to both sockets of every proxied connection, so that a peer that
   * went silent (a dead node, a pulled link) fails the connection instead of
   * leaving the other side waiting: the proxy answers the client's own
   * keepalive probes, so without this the client would never know. May throw.
   */
  keepalive?: (socket: net.Socket) => void;
  /**
   * Whether a socket that reported a clean end was in fact reset (libuv
   * reports a reset after a partial read as end-of-file). Absent: trusted.
   */
  endedByReset?: (socket: net.Socket) => boolean;
  /** Connection budget; absent: unlimited. */
  limits?: ConnectionLimits;
  /**
   * Arms (true) or disarms (false) a reset of the peer when the socket is
   * closed, by us or by the process dying: a JS-relayed connection cut by a
   * crash must end with a reset, never a clean end. May throw.
   */
  resetOnClose?: (socket: net.Socket, on: boolean) => void;
}

/** An accepted connection waiting, paused, for its source's share of the budget. */
interface WaitingConnection {
  client: net.Socket;
  workload: Workload | undefined;
  orig: OriginalDestination;
  /** Plaintext from outside the mesh (see LiveConnection.inbound). */
  inbound: boolean;
}

export type ConnectionOutcome = 'closed' | 'reset' | 'denied' | 'no endpoint' | 'connect failed' | 'revoked' | 'failed' | 'refused';

/** One side of a connection in the access log ('' or "unknown" for what is not known). */
export interface AccessLogPeer {
  /** The pod, "namespace/name" ("unknown" when not a known workload). */
  pod: string;
  /** Its workload (controller) name, as in the metrics' *_workload label. */
  workload: string;
  namespace: string;
  /** SPIFFE identity (spiffe://...), '' when none. */
  principal: string;
  /** ip:port. */
  address: string;
}

/**
 * One connection, written once when it ends. `outbound`: by the node proxy of
 * the source pod (same-node connections are logged once, outbound);
 * `inbound`: by the destination side of a tunnel.
 */
export interface AccessLogEntry {
  direction: 'outbound' | 'inbound';
  /** "namespace/name" of the source pod (kept for existing readers; also in src). */
  source: string;
  sourceAddress: string;
  src: AccessLogPeer;
  dst: AccessLogPeer;
  /** The VIP the source dialled ('' on the inbound side, which sees only the pod address). */
  vip: string;
  /** "namespace/name" of the service, '' when not known. */
  service: string;
  /** The endpoint connected, ip:port ('' when none was). */
  endpoint: string;
  /** "mTLS" through a tunnel, else "plaintext". */
  security: 'mTLS' | 'plaintext';
  outcome: ConnectionOutcome;
  /** Why it did not end cleanly ('' when it did). */
  error: string;
  durationMs: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}

export interface ProxyCounters {
  accepted: number;
  /** The client closed (or reset) before the proxy could read its record: nothing left to serve. */
  abortedBeforeAccept: number;
  noOriginalDst: number;
  /** The record's pod does not own the connecting address (a stale record): refused. */
  sourceMismatch: number;
  noService: number;
  noEndpoint: number;
  connectAttemptsFailed: number;
  policyAllowed: number;
  policyDenied: number;
  retried: number;
  relayed: number;
  resets: number;
  /** Open connections closed because a policy change no longer allows them. */
  revoked: number;
  /** Unexpected errors on a connection's path (each ended that connection only). */
  internalErrors: number;
  /** Refused at accept: the proxy held its whole connection budget. */
  refusedOverBudget: number;
  /** Plaintext from outside the mesh refused because its STRICT pod's kernel filter is not in place. */
  plaintextRefused: number;
  /** Refused: the source pod held its share of the budget, and its queue was full or the wait too long. */
  refusedSourceOverBudget: number;
  /** Waited for the source pod's share, then were served. */
  waitedForBudget: number;
  bytesFromClients: number;
  bytesFromEndpoints: number;
}

/** A live connection as the proxy records it (model/connection.ts). */
export type ConnectionInfo = ProxiedConnection;

interface LiveConnection {
  info: ConnectionInfo;
  /** Who is calling, as policy sees it: identity from the kernel's record of the socket's netns. */
  peer: Peer;
  client: net.Socket;
  upstream?: net.Socket;
  /** The tunnel stream, for a connection to another node. */
  upstreamStream?: Duplex;
  /** Bytes are moved by the offload; the JS sockets are gone. */
  offloaded: boolean;
  /** How it ended, when it ended otherwise than by both sides closing. */
  outcome?: ConnectionOutcome;
  /** Set when this proxy authorized it (same node): what to re-check when policies change. */
  authorized?: { workloadUid: string; serviceNamespace: string; port: number };
  /** The source pod, when it is a known workload. */
  sourceWorkload?: Workload;
  /** The endpoint's workload and service, once one was picked. */
  destination?: Workload;
  serviceRef: { name: string; namespace: string };
  /** Why it ended otherwise than cleanly. */
  error?: string;
  /** Istio TCP labels, one set per reporter; set once the connection is reported opened. */
  labels?: IstioTcpLabels[];
  tally: ByteTally;
  /** The endpoint is on this node (this proxy acts for the destination too). */
  sameNode: boolean;
  /**
   * Plaintext from outside the mesh, handed over by the kernel on its way
   * into a pod that policy protects: this proxy acts for the destination only.
   */
  inbound: boolean;
}

/** Denial lines logged per 10 s before the rest are only counted. */
const DENIAL_BURST = 20;

export class NodeProxy {
  readonly counters: ProxyCounters = {
    accepted: 0,
    abortedBeforeAccept: 0,
    noOriginalDst: 0,
    sourceMismatch: 0,
    noService: 0,
    noEndpoint: 0,
    connectAttemptsFailed: 0,
    policyAllowed: 0,
    policyDenied: 0,
    retried: 0,
    relayed: 0,
    resets: 0,
    revoked: 0,
    internalErrors: 0,
    refusedOverBudget: 0,
    plaintextRefused: 0,
    refusedSourceOverBudget: 0,
    waitedForBudget: 0,
    bytesFromClients: 0,
    bytesFromEndpoints: 0,
  };
  readonly failures: FailureLog;
  /** Authorization decisions since start: "policy\u0000allow|deny" -> count (policy '' when none applied). */
  readonly decisions = new Map<string, number>();
  readonly endpoints = new EndpointStats();
  private readonly live = new Map<number, LiveConnection>();
  /** Live connections per source address, for the per-source limit. */
  private readonly perSource = new Map<string, number>();
  /** Connections waiting for their source's share, per source address, oldest first. */
  private readonly waiting: BudgetQueues<WaitingConnection>;
  private readonly server: net.Server;
  private nextId = 1;
  /** Denials: a few lines per interval, then counted (a flood of denied connections must not flood the log). */
  private readonly denials: FailureLog;

  constructor(private readonly deps: ProxyDeps) {
    this.waiting = new BudgetQueues(deps.limits);
    this.failures = new FailureLog(deps.logger);
    this.denials = new FailureLog(deps.logger, 10_000, Date.now, DENIAL_BURST);
    // pauseOnConnect: no byte is read into JS before the relay is chosen, so
    // a hand-over to the offload never leaves data behind.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => deps.logger.error({ err }, 'proxy listener error'));
  }

  /**
   * Listens on address:port, or on `inherited`: a listening descriptor
   * handed over by the agent this one replaces, whose queued connections
   * are then served here. An inherited socket bound elsewhere than
   * address:port is not used (rejects with the addresses).
   */
  listen(address: string, port: number, inherited?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`proxy listen ${inherited !== undefined ? `on inherited fd ${inherited}` : `${address}:${port}`}: ${err.message}`));
      this.server.once('error', onError);
      const done = () => {
        this.server.off('error', onError);
        const bound = this.address();
        if (inherited !== undefined && (bound?.address !== address || bound.port !== port)) {
          this.server.close();
          reject(new Error(`the inherited proxy listener is bound to ${bound?.address}:${bound?.port}, not ${address}:${port}`));
          return;
        }
        resolve();
      };
      if (inherited !== undefined) this.server.listen({ fd: inherited, backlog: 4096 }, done);
      else this.server.listen({ host: address, port, backlog: 4096 }, done);
    });
  }

  /** The listening socket, to hand over to a new agent. */
  get listener(): net.Server {
    return this.server;
  }

  /**
   * Serves an inbound listener: a listening descriptor inside an enrolled
   * pod's netns (see BpfDatapath.captureInbound), to which the kernel hands
   * plaintext connection attempts into that pod from outside the mesh. Each
   * accepted socket's local address is what the client dialled (the pod's
   * address and port). The connection is judged by the pod's policies with
   * no identity (only `ipBlocks` and ports can allow it, as in Istio), then
   * relayed to the pod from the node's address. With `refuseAll` (a STRICT
   * pod whose kernel filter is not in place) every connection is refused,
   * counted (plaintextRefused) and logged with that reason. Resolves with the
   * server, which owns the descriptor from the call on (closing the server
   * closes it; a failed listen closes it too). Rejects when the descriptor is
   * not a listening TCP socket.
   */
  serveInbound(fd: number, refuseAll?: string): Promise<net.Server> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => {
      this.counters.accepted++;
      socket.on('error', () => undefined);
      try {
        if (refuseAll !== undefined) this.refusePlaintext(socket, refuseAll);
        else this.acceptInbound(socket, server);
      } catch (err) {
        this.internalError('accept', err, socket);
      }
    });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`inbound listen on fd ${fd}: ${err.message}`));
      server.once('error', onError);
      server.listen({ fd, backlog: 4096 }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.deps.logger.error({ err }, 'inbound listener error'));
        resolve(server);
      });
    });
  }

  private refusePlaintext(client: net.Socket, why: string): void {
    this.counters.plaintextRefused++;
    this.denials.report('plaintext refused', { sourceAddress: `${client.remoteAddress}:${client.remotePort}`, destination: `${client.localAddress}:${client.localPort}` }, `connection refused: plaintext from outside the mesh into a pod that is ${why}`, 'info');
    client.resetAndDestroy();
  }

  private acceptInbound(client: net.Socket, server: net.Server): void {
    const address = client.remoteAddress;
    const local = client.localAddress;
    const port = client.localPort;
    if (!address || !local || !port) {
      this.counters.abortedBeforeAccept++;
      client.destroy();
      return;
    }
    const own = server.address();
    const orig: OriginalDestination = { address: local.replace(/^::ffff:/, ''), port, netnsCookie: 0n };
    const destination = this.deps.index().workloadTarget(orig.address, orig.port);
    if (!destination || destination.service.endpoints[0].node !== this.deps.node || (typeof own === 'object' && own?.port === port)) {
      // Not a meshed pod of this node, or the listener's own port dialled: never an open relay.
      this.counters.noService++;
      this.failures.report('inbound without a destination', { destination: `${orig.address}:${port}`, peer: address }, 'inbound connection to no meshed pod of this node reset', 'debug');
      client.resetAndDestroy();
      return;
    }
    const admission = this.admission(address);
    if (admission === 'start') this.start(client, address, undefined, orig, true);
    else if (admission === 'wait') this.wait(client, address, undefined, orig, true);
    else this.refuseOverBudget(client, undefined, orig, admission.refuse);
  }

  /**
   * Stops accepting (this process's reference to the listener is closed at
   * once); live and waiting connections go on.
   */
  stopAccepting(): void {
    // close()'s callback would wait for every accepted connection to end.
    if (this.server.listening) this.server.close();
  }

  address(): net.AddressInfo | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  connections(): ConnectionInfo[] {
    const offloaded = this.deps.offload?.bytes() ?? new Map<number, [number, number]>();
    return [...this.live.values()].map((c) => {
      const moved = c.offloaded ? offloaded.get(c.info.id) ?? [0, 0] : this.moved(c);
      return { ...c.info, bytesFromClient: moved[0], bytesFromEndpoint: moved[1] };
    });
  }

  /** Bytes a JS-relayed connection moved so far: [from the client, from the endpoint]. */
  private moved(c: LiveConnection): [number, number] {
    return [c.client.bytesRead, c.upstream ? c.upstream.bytesRead : c.client.bytesWritten];
  }

  /**
   * Reports the bytes every live relaying connection moved since the last
   * report to the telemetry sink (offloaded pairs from the relay's counts,
   * JS-relayed ones from their sockets). The agent calls it every few
   * seconds and before a scrape, so long connections show up as they flow.
   */
  reportBytes(): void {
    const sink = this.deps.telemetry;
    if (!sink) return;
    let offloaded: Map<number, [number, number]> | undefined;
    for (const c of this.live.values()) {
      if (!c.labels || c.info.state !== 'relaying') continue;
      let moved: [number, number];
      if (c.offloaded) {
        offloaded ??= this.deps.offload?.bytes() ?? new Map();
        const m = offloaded.get(c.info.id);
        if (!m) continue;
        moved = m;
      } else moved = this.moved(c);
      c.tally.report(sink, c.labels, moved[1], moved[0]);
    }
  }

  /** Counts an authorization decision (by this proxy or, through the agent, the tunnel's destination side). */
  countDecision(policy: string | undefined, allowed: boolean): void {
    if (allowed) this.counters.policyAllowed++;
    else this.counters.policyDenied++;
    const key = `${policy ?? ''}\u0000${allowed ? 'allow' : 'deny'}`;
    this.decisions.set(key, (this.decisions.get(key) ?? 0) + 1);
  }

  get activeConnections(): number {
    return this.live.size;
  }

  /** Accepted connections waiting for their source's share of the budget. */
  get waitingConnections(): number {
    return this.waiting.waiting;
  }

  /** Stops accepting; live connections are left to finish (or be reset by the caller). Waiting ones are reset. */
  async close(resetLive = false): Promise<void> {
    for (const w of this.waiting.takeAll()) w.client.resetAndDestroy();
    if (resetLive) for (const c of this.live.values()) this.reset(c);
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * Every failure on a connection's path ends that connection only (a reset
   * to its client), is counted and logged at most once per kind per
   * interval; nothing a pod does can throw out of here.
   */
  private accept(client: net.Socket): void {
    this.counters.accepted++;
    client.on('error', () => undefined); // reported through 'close'; relay decides what to do
    try {
      this.acceptCaptured(client);
    } catch (err) {
      this.internalError('accept', err, client);
    }
  }

  private acceptCaptured(client: net.Socket): void {
    let orig: OriginalDestination | undefined;
    // No peer address: closed or reset while it waited in the accept queue.
    let gone = !client.remoteAddress;
    try {
      if (!gone) orig = this.deps.originalDst(client);
    } catch (err) {
      // The lookup reads the socket's peer: ENOTCONN means the same.
      if ((err as { code?: string }).code !== 'ENOTCONN') throw err;
      gone = true;
    }
    if (gone || !client.remoteAddress) {
      // An abortive close before accept: no peer left, nothing to deliver.
      this.counters.abortedBeforeAccept++;
      client.destroy();
      return;
    }
    if (!orig) {
      // Nothing captured this connection: never act as an open relay.
      this.counters.noOriginalDst++;
      this.failures.report('no original destination', { peer: `${client.remoteAddress}:${client.remotePort}` }, 'connection without a capture record reset', 'debug');
      client.resetAndDestroy();
      return;
    }
    const source = this.deps.sourceWorkload(orig.netnsCookie);
    if (source && !source.ips.includes(client.remoteAddress)) {
      // A record left by an earlier connection of another pod that had this
      // address: it must not lend that pod's identity to this one.
      this.counters.sourceMismatch++;
      this.failures.report('source mismatch', { peer: client.remoteAddress, recordedPod: `${source.namespace}/${source.name}` }, 'connection whose capture record belongs to another pod reset');
      client.resetAndDestroy();
      return;
    }
    const admission = this.admission(client.remoteAddress);
    if (admission === 'start') this.start(client, client.remoteAddress, source, orig);
    else if (admission === 'wait') this.wait(client, client.remoteAddress, source, orig);
    else this.refuseOverBudget(client, source, orig, admission.refuse);
  }

  /** Serves an admitted connection from `address` (the client's): service lookup, then the endpoint or tunnel. */
  private start(client: net.Socket, address: string, source: Workload | undefined, orig: OriginalDestination, inbound = false): void {
    const target = inbound ? this.deps.index().workloadTarget(orig.address, orig.port) : this.deps.index().target(orig.address, orig.port);
    if (!target) {
      this.counters.noService++;
      this.deps.logger.debug({ vip: `${orig.address}:${orig.port}` }, 'no service for captured destination');
      client.resetAndDestroy();
      return;
    }
    this.applyKeepalive(client);
    const conn: LiveConnection = {
      client,
      offloaded: false,
      peer: peerOf(source, address),
      sourceWorkload: source,
      serviceRef: { name: target.service.name, namespace: target.service.namespace },
      tally: new ByteTally(),
      sameNode: true,
      inbound,
      info: {
        id: this.nextId++,
        source: source ? `${source.namespace}/${source.name}` : inbound ? 'outside the mesh' : 'unknown',
        sourceAddress: `${address}:${client.remotePort}`,
        vip: `${orig.address}:${orig.port}`,
        service: `${target.service.namespace}/${target.service.name}`,
        endpoint: '',
        state: 'connecting',
        security: '',
        startedAt: Date.now(),
        bytesFromClient: 0,
        bytesFromEndpoint: 0,
      },
    };
    this.live.set(conn.info.id, conn);
    this.perSource.set(address, (this.perSource.get(address) ?? 0) + 1);
    client.once('close', () => this.finish(conn));
    this.connect(conn, target, new Set(), 1);
  }

  /**
   * Whether a new connection from `source` may start now, must wait for the
   * source's share, or is refused (the whole budget is held, or the source's
   * queue is full): budget-queues.ts, shared with the tunnel server.
   */
  private admission(source: string): 'start' | 'wait' | { refuse: 'total' | 'source' } {
    const a = this.waiting.admission(source, this.live.size, this.perSource.get(source) ?? 0);
    return a === 'refuse-total' ? { refuse: 'total' } : a === 'refuse-source' ? { refuse: 'source' } : a;
  }

  /** Parks a connection, paused, until its source's share has room or the wait expires. */
  private wait(client: net.Socket, source: string, workload: Workload | undefined, orig: OriginalDestination, inbound = false): void {
    this.waiting.enqueue(source, { client, workload, orig, inbound }, () => this.refuseOverBudget(client, workload, orig, 'source', this.waiting.waitMs));
  }

  /** Starts the source's waiting connections, oldest first, while its share has room. */
  private admitWaiting(source: string): void {
    while (this.waiting.length(source) > 0 && this.admission(source) === 'start') {
      const next = this.waiting.next(source)!;
      this.counters.waitedForBudget++;
      try {
        // A client that closed while it waited still has its bytes to deliver.
        this.start(next.client, source, next.workload, next.orig, next.inbound);
      } catch (err) {
        this.internalError('accept', err, next.client);
      }
    }
  }

  /** Resets a connection the budget has no room for: counted, logged once per interval, access-logged. */
  private refuseOverBudget(client: net.Socket, workload: Workload | undefined, orig: OriginalDestination, why: 'total' | 'source', waitedMs = 0): void {
    const limits = this.deps.limits!;
    const source = client.remoteAddress ?? '';
    let error: string;
    if (why === 'total') {
      this.counters.refusedOverBudget++;
      error = 'the proxy holds its whole connection budget';
      this.failures.report('over budget', { live: this.live.size, limit: limits.maxConnections }, `connection refused: ${error}`);
    } else {
      this.counters.refusedSourceOverBudget++;
      error = waitedMs > 0 ? `this source held its share of the connection budget for the ${waitedMs} ms the connection waited` : 'this source holds its share of the connection budget, and its queue is full';
      this.failures.report('source over budget', { source, limit: limits.maxPerSource, waiting: this.waiting.length(source) }, `connection refused: ${error}`);
    }
    const sourceAddress = `${client.remoteAddress}:${client.remotePort}`;
    client.resetAndDestroy();
    if (this.deps.accessLog) {
      const target = this.deps.index().vip(orig.address, orig.port);
      this.deps.accessLog({
        direction: 'outbound',
        source: workload ? `${workload.namespace}/${workload.name}` : 'unknown',
        sourceAddress,
        src: peerEntry(workload, sourceAddress),
        dst: peerEntry(undefined, ''),
        vip: `${orig.address}:${orig.port}`,
        service: target ? `${target.service.namespace}/${target.service.name}` : '',
        endpoint: '',
        security: 'plaintext',
        outcome: 'refused',
        error,
        durationMs: waitedMs,
        bytesFromClient: 0,
        bytesFromEndpoint: 0,
      });
    }
  }

  /** Forgets a connection that ended. */
  private release(conn: LiveConnection): void {
    if (!this.live.delete(conn.info.id)) return;
    const source = conn.peer.ip;
    const n = (this.perSource.get(source) ?? 1) - 1;
    if (n > 0) this.perSource.set(source, n);
    else this.perSource.delete(source);
    if (this.waiting.waiting > 0) this.admitWaiting(source);
  }

  /** Ends one connection after an unexpected error; counted and logged once per interval. */
  private internalError(kind: string, err: unknown, client: net.Socket, conn?: LiveConnection): void {
    this.counters.internalErrors++;
    this.failures.report(kind, { err: (err as Error)?.message ?? String(err), ...(conn ? { service: conn.info.service, source: conn.info.source } : {}) }, `connection failed: ${kind}`, 'error');
    if (conn) conn.outcome = 'failed';
    if (!client.destroyed) client.resetAndDestroy();
  }

  private setResetOnClose(socket: net.Socket, on: boolean): void {
    try {
      this.deps.resetOnClose?.(socket, on);
    } catch {
      // the socket is gone already
    }
  }

  private applyKeepalive(socket: net.Socket): void {
    if (!this.deps.keepalive) return;
    try {
      this.deps.keepalive(socket);
    } catch (err) {
      this.failures.report('keepalive', { err: (err as Error).message }, 'could not set keepalive on a proxied socket', 'debug');
    }
  }

  private connect(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number): void {
    try {
      this.connectEndpoint(conn, target, tried, attempt);
    } catch (err) {
      this.internalError('endpoint connect', err, conn.client, conn);
    }
  }

  private connectEndpoint(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number): void {
    const { service, port } = target;
    // A retry starts clean: nothing of the failed attempt is counted, logged or re-checked.
    conn.upstream = undefined;
    conn.authorized = undefined;
    const now = Date.now();
    const endpoint = pickEndpoint(service.endpoints, port, tried, this.endpoints, now);
    if (!endpoint) {
      if (tried.size === 0) this.counters.noEndpoint++;
      this.deps.logger.debug({ service: conn.info.service, tried: [...tried] }, 'no endpoint left to try');
      // Every candidate was tried and failed, or there was none to try.
      conn.outcome = tried.size > 0 ? 'connect failed' : 'no endpoint';
      conn.error ??= tried.size > 0 ? `every endpoint tried failed (${[...tried].join(', ')})` : `${conn.info.service} has no ready endpoint`;
      conn.client.resetAndDestroy();
      return;
    }
    // Counted only when there was another endpoint to try.
    if (attempt > 1) this.counters.retried++;
    // This endpoint's own number for the port (a named targetPort resolves per pod).
    const targetPort = endpointTargetPort(endpoint, port) ?? port.targetPort;
    const key = endpointKey(endpoint.address, targetPort);
    tried.add(key);
    conn.info.endpoint = key;
    conn.destination = this.deps.index().workload(endpoint.workloadUid);
    const remote = this.deps.node !== undefined && endpoint.node !== this.deps.node;
    conn.sameNode = !remote;
    if (remote && this.deps.tunnel) {
      // The destination's agent applies policy, with the verified principal.
      this.connectTunnel(conn, target, tried, attempt, endpoint.workloadUid, key);
      return;
    }
    if (!this.authorized(conn, service, endpoint.workloadUid, targetPort)) return;
    conn.authorized = { workloadUid: endpoint.workloadUid, serviceNamespace: service.namespace, port: targetPort };
    conn.info.security = conn.inbound ? 'plaintext from outside the mesh' : remote ? 'plaintext' : 'plaintext (same node)';
    const upstream = net.connect({ host: endpoint.address, port: targetPort, allowHalfOpen: true, noDelay: true });
    upstream.pause(); // read nothing into JS until the relay is chosen
    conn.upstream = upstream;
    const timer = afterPendingIo(service.loadBalancing.connectTimeoutMs, () => {
      if (upstream.connecting) upstream.destroy(new Error('connect timeout'));
    });

    const onFailure = (err: Error) => {
      clearTimeout(timer);
      upstream.destroy();
      this.attemptFailed(conn, target, tried, attempt, key, `connect ${key}: ${err.message}`);
    };
    upstream.once('error', onFailure);
    upstream.once('connect', () => {
      clearTimeout(timer);
      upstream.off('error', onFailure);
      this.endpoints.connectSucceeded(key);
      if (conn.client.destroyed) {
        upstream.destroy();
        return;
      }
      this.applyKeepalive(upstream);
      try {
        this.relay(conn, upstream, key);
      } catch (err) {
        upstream.destroy();
        this.internalError('relay hand-over', err, conn.client, conn);
      }
    });
  }

  /**
   * One attempt to reach an endpoint failed (a direct connect, or a tunnel
   * stream): counted, the endpoint ejected for a while, and the next
   * endpoint tried while attempts are left; then the client is reset.
   */
  private attemptFailed(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number, key: string, error: string): void {
    this.counters.connectAttemptsFailed++;
    this.endpoints.connectFailed(key, Date.now());
    this.deps.logger.debug({ endpoint: key, err: error, attempt }, 'endpoint attempt failed');
    conn.error = error;
    if (conn.client.destroyed) return;
    if (attempt < target.service.loadBalancing.maxConnectAttempts) {
      this.connect(conn, target, tried, attempt + 1);
      return;
    }
    this.failures.report('connect failed', { service: conn.info.service, tried: [...tried], err: error }, 'every endpoint tried failed to connect');
    conn.outcome = 'connect failed';
    conn.client.resetAndDestroy();
  }

  private connectTunnel(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number, workloadUid: string, key: string): void {
    const { service } = target;
    const dest = this.deps.index().workload(workloadUid);
    const fail = (err: Error) => this.attemptFailed(conn, target, tried, attempt, key, err.message);
    if (!dest?.identity || !dest.nodeAddress || !conn.peer.principal) {
      fail(new Error(`no identity or node address known for the tunnel to ${key}`));
      return;
    }
    const destinationIdentity = dest.identity;
    this.deps.tunnel!.open(
      // The source address travels with the stream, so the destination's
      // policy sees the pod, not this node (ipBlocks rules).
      { sourceIdentity: `spiffe://${conn.peer.principal}`, sourceAddress: conn.peer.ip, destinationIdentity, nodeAddress: dest.nodeAddress, target: key },
      service.loadBalancing.connectTimeoutMs,
    ).then(
      (stream) => {
        this.endpoints.connectSucceeded(key);
        if (conn.client.destroyed) {
          // With an error: RST_STREAM alone. Without, END_STREAM would go
          // first and the pod would see a clean close.
          stream.destroy(new Error('the client went away before the tunnel stream opened'));
          return;
        }
        conn.info.security = `mTLS to ${destinationIdentity}`;
        try {
          this.relayStream(conn, stream, key);
        } catch (err) {
          stream.destroy();
          this.internalError('relay hand-over', err, conn.client, conn);
        }
      },
      (err: Error) => {
        try {
          fail(err);
        } catch (e) {
          this.internalError('tunnel open', e, conn.client, conn);
        }
      },
    );
  }

  /**
   * Relays between the client socket and a tunnel stream (bytes pass through
   * JS). A FIN travels as END_STREAM and back; a reset travels as
   * RST_STREAM and back (never as a clean end: the stream is destroyed, not
   * closed, because close() would send END_STREAM first).
   */
  private relayStream(conn: LiveConnection, stream: Duplex, key: string): void {
    const { client } = conn;
    conn.info.state = 'relaying';
    this.counters.relayed++;
    this.endpoints.opened(key);
    this.reportOpened(conn, true);
    conn.upstreamStream = stream;
    // The client's end is forwarded by hand: a reset that libuv reported as
    // end-of-file must travel as a reset (RST_STREAM), not as END_STREAM.
    client.pipe(stream, { end: false });
    stream.pipe(client, { end: false });
    this.setResetOnClose(client, true);
    stream.once('end', () => {
      // Our FIN to the client: from here a close is a normal one.
      this.setResetOnClose(client, false);
      if (!client.destroyed) client.end();
    });
    client.once('end', () => {
      if (this.deps.endedByReset?.(client)) stream.destroy(new Error('client connection reset'));
      else stream.end();
    });
    const resetClient = () => {
      if (client.destroyed) return;
      conn.outcome ??= 'reset';
      this.counters.resets++;
      client.resetAndDestroy();
    };
    stream.on('error', resetClient);
    stream.on('aborted', resetClient);
    client.on('error', () => {
      if (!stream.destroyed) stream.destroy(new Error('client connection reset'));
    });
    stream.once('close', () => {
      this.endpoints.closed(key);
      const rst = (stream as http2.ClientHttp2Stream).rstCode;
      if (rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR) resetClient();
      else if (!client.destroyed && !client.writableEnded) client.end();
    });
  }

  /**
   * Re-checks every open connection this proxy authorized against the
   * policies in force now and resets those they no longer allow (ztunnel
   * does the same on a policy update). Connections that are still allowed
   * are not touched. Returns how many were closed.
   */
  revalidate(): number {
    const policies = this.deps.policies?.();
    if (!policies) return 0;
    let closed = 0;
    for (const conn of this.live.values()) {
      if (!conn.authorized || conn.outcome) continue;
      const { workloadUid, serviceNamespace, port } = conn.authorized;
      const decision = authorizeConnection(policies, this.deps.index().workload(workloadUid), serviceNamespace, conn.peer, port);
      if (decision.allowed) continue;
      closed++;
      this.counters.revoked++;
      this.failures.report(
        'revoked',
        { source: conn.info.source, service: conn.info.service, endpoint: conn.info.endpoint, policy: decision.policy },
        `open connection closed: ${decision.reason}`,
        'info',
      );
      conn.outcome = 'revoked';
      conn.error = `policy no longer allows it: ${decision.reason}`;
      if (conn.offloaded) this.deps.offload?.reset(conn.info.id);
      else this.reset(conn);
    }
    return closed;
  }

  /**
   * Applies authorization on the destination's behalf before a byte reaches
   * it. A denied connection is reset and logged once, with the deciding policy.
   */
  private authorized(conn: LiveConnection, service: VipTarget['service'], workloadUid: string, port: number): boolean {
    const policies = this.deps.policies?.();
    if (!policies) return true;
    const dest = this.deps.index().workload(workloadUid);
    const decision = authorizeConnection(policies, dest, service.namespace, conn.peer, port);
    this.countDecision(decision.policy, decision.allowed);
    if (decision.allowed) return true;
    this.denials.report(
      'denied',
      {
        source: conn.info.source,
        principal: conn.peer.principal,
        sourceAddress: conn.info.sourceAddress,
        service: conn.info.service,
        destination: dest ? `${dest.namespace}/${dest.name}` : conn.info.endpoint,
        port,
        // No single policy denied it: name the ALLOW policies none of which matched.
        policy: decision.policy ?? policies.applicableTo({ namespace: dest?.namespace ?? service.namespace, labels: dest?.labels ?? {} }).map((p) => `${p.namespace}/${p.name}`).join(','),
      },
      `connection denied: ${decision.reason}`,
      'info',
    );
    conn.outcome = 'denied';
    conn.error = `denied: ${decision.reason}`;
    conn.client.resetAndDestroy();
    return false;
  }

  private relay(conn: LiveConnection, upstream: net.Socket, key: string): void {
    const { client } = conn;
    conn.info.state = 'relaying';
    this.counters.relayed++;
    this.endpoints.opened(key);
    this.reportOpened(conn, false);
    conn.offloaded = true; // before handOver: it destroys the JS sockets, whose 'close' must not finish the connection
    if (this.deps.offload?.handOver(conn.info.id, client, upstream, (r) => this.offloadDone(conn, key, r))) return;
    conn.offloaded = false;
    // pipe() gives back-pressure; FIN is forwarded per direction by hand
    // (allowHalfOpen keeps the other direction open), after checking that
    // the end was not a reset that libuv reported as end-of-file.
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    const forwardEnd = (from: net.Socket, to: net.Socket) =>
      from.once('end', () => {
        if (this.deps.endedByReset?.(from)) this.reset(conn);
        else if (!to.destroyed) {
          // Our FIN to `to`: from here its close is a normal one.
          this.setResetOnClose(to, false);
          to.end();
        }
      });
    // A crash mid-transfer resets both ends instead of a clean FIN.
    this.setResetOnClose(client, true);
    this.setResetOnClose(upstream, true);
    forwardEnd(client, upstream);
    forwardEnd(upstream, client);
    // A reset on one side becomes a reset on the other, as with a direct connection.
    upstream.on('error', () => {
      if (!client.destroyed) this.reset(conn);
    });
    client.on('error', () => {
      if (!upstream.destroyed) this.reset(conn);
    });
    upstream.once('close', () => {
      this.endpoints.closed(key);
      this.counters.bytesFromEndpoints += upstream.bytesRead;
      if (!client.destroyed && !client.writableEnded) client.end();
    });
  }

  private offloadDone(conn: LiveConnection, key: string, r: { bytesFromClient: number; bytesFromEndpoint: number; error: string }): void {
    this.endpoints.closed(key);
    this.counters.bytesFromClients += r.bytesFromClient;
    this.counters.bytesFromEndpoints += r.bytesFromEndpoint;
    if (r.error) this.counters.resets++;
    if (r.error) conn.error ??= `reset (${r.error})`;
    this.release(conn);
    this.ended(conn, conn.outcome ?? (r.error ? 'reset' : 'closed'), r.bytesFromClient, r.bytesFromEndpoint);
  }

  /** Reports the connection opened to the telemetry sink, once; a same-node one for both reporters. */
  private reportOpened(conn: LiveConnection, mtls: boolean): void {
    const sink = this.deps.telemetry;
    if (!sink || conn.labels) return;
    const labels = tcpLabels('source', conn.sourceWorkload, conn.destination, conn.serviceRef, mtls);
    // This proxy is the destination's node proxy too when the endpoint is on
    // this node, and only that for plaintext from outside the mesh.
    if (conn.inbound) conn.labels = [asReporter(labels, 'destination')];
    else conn.labels = conn.sameNode && conn.destination ? [labels, asReporter(labels, 'destination')] : [labels];
    for (const l of conn.labels) sink.opened(l);
  }

  /** A connection ended: its last bytes, closed with ztunnel's response flag, and the access log. */
  private ended(conn: LiveConnection, outcome: ConnectionOutcome, bytesFromClient: number, bytesFromEndpoint: number): void {
    const sink = this.deps.telemetry;
    if (sink) {
      this.reportOpened(conn, conn.info.security.startsWith('mTLS'));
      conn.tally.report(sink, conn.labels!, bytesFromEndpoint, bytesFromClient);
      const flags = outcome === 'denied' || outcome === 'revoked' ? RESPONSE_FLAGS.denied : outcome === 'connect failed' || outcome === 'no endpoint' ? RESPONSE_FLAGS.connectFailed : RESPONSE_FLAGS.none;
      for (const l of conn.labels!) sink.closed(l, flags);
    }
    this.logAccess(conn, outcome, bytesFromClient, bytesFromEndpoint);
  }

  private logAccess(conn: LiveConnection, outcome: ConnectionOutcome, bytesFromClient: number, bytesFromEndpoint: number): void {
    if (!this.deps.accessLog) return;
    const { source, sourceAddress, vip, service, endpoint, startedAt, security } = conn.info;
    this.deps.accessLog({
      direction: conn.inbound ? 'inbound' : 'outbound',
      source,
      sourceAddress,
      src: peerEntry(conn.sourceWorkload, sourceAddress),
      dst: peerEntry(conn.destination, endpoint),
      vip,
      service,
      endpoint,
      security: security.startsWith('mTLS') ? 'mTLS' : 'plaintext',
      outcome,
      error: outcome === 'closed' ? '' : conn.error ?? outcome,
      durationMs: Date.now() - startedAt,
      bytesFromClient,
      bytesFromEndpoint,
    });
  }

  private reset(conn: LiveConnection): void {
    this.counters.resets++;
    conn.outcome ??= 'reset';
    if (!conn.client.destroyed) conn.client.resetAndDestroy();
    if (conn.upstream && !conn.upstream.destroyed) conn.upstream.resetAndDestroy();
    if (conn.upstreamStream && !conn.upstreamStream.destroyed) conn.upstreamStream.destroy(new Error('connection reset by the proxy'));
  }

  private finish(conn: LiveConnection): void {
    if (conn.offloaded) return; // offloadDone accounts for it
    this.counters.bytesFromClients += conn.client.bytesRead;
    // Bytes from a tunnel stream (no upstream socket) are what was written to the client.
    if (!conn.upstream) this.counters.bytesFromEndpoints += conn.client.bytesWritten;
    this.release(conn);
    if (conn.upstream && !conn.upstream.destroyed && conn.info.state === 'connecting') conn.upstream.destroy();
    const [fromClient, fromEndpoint] = this.moved(conn);
    this.ended(conn, conn.outcome ?? 'closed', fromClient, fromEndpoint);
  }
}

/** One side of a connection for the access log. */
export function peerEntry(w: Workload | undefined, address: string, principal?: string): AccessLogPeer {
  return {
    pod: w ? `${w.namespace}/${w.name}` : 'unknown',
    workload: w ? workloadName(w) : 'unknown',
    namespace: w?.namespace ?? 'unknown',
    principal: principal ?? w?.identity ?? '',
    address,
  };
}

/**
 * Runs `fire` after `ms`, but only once the I/O that was already pending
 * when the time came has been handled (setImmediate runs after the event
 * loop's poll phase): on a loaded agent a connect that completed in time
 * must not be failed because its callback had not run yet. Returns the
 * timer, for clearTimeout.
 */
export function afterPendingIo(ms: number, fire: () => void): NodeJS.Timeout {
  return setTimeout(() => setImmediate(fire), ms);
}
