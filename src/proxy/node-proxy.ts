// The node proxy: accepts the connections that the capture programs redirect
// to <proxy address>:15001, finds what each one originally dialled, picks an
// endpoint of that service (retrying another on connect failure) and relays
// bytes both ways with back-pressure and half-close.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Workload } from '../model/resources';
import { PolicySet, type Peer } from './authorization';
import { EndpointStats, endpointKey, pickEndpoint } from './endpoint-picker';
import type { ServiceIndex, VipTarget } from './service-index';
import type { TunnelPool } from './tunnel-client';

export interface OriginalDestination {
  address: string;
  port: number;
  netnsCookie: bigint;
}

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
}

export type ConnectionOutcome = 'closed' | 'reset' | 'denied' | 'no endpoint' | 'connect failed';

export interface AccessLogEntry {
  source: string;
  sourceAddress: string;
  vip: string;
  service: string;
  endpoint: string;
  outcome: ConnectionOutcome;
  durationMs: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}

export interface ProxyCounters {
  accepted: number;
  noOriginalDst: number;
  noService: number;
  noEndpoint: number;
  connectAttemptsFailed: number;
  policyAllowed: number;
  policyDenied: number;
  retried: number;
  relayed: number;
  resets: number;
  bytesFromClients: number;
  bytesFromEndpoints: number;
}

export interface ConnectionInfo {
  id: number;
  source: string;
  sourceAddress: string;
  vip: string;
  service: string;
  endpoint: string;
  state: 'connecting' | 'relaying';
  /** "plaintext (same node)", "mTLS to <identity>", or "plaintext" across nodes without tunnels. */
  security: string;
  startedAt: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}

interface LiveConnection {
  info: ConnectionInfo;
  /** Who is calling, as policy sees it: identity from the kernel's record of the socket's netns. */
  peer: Peer;
  client: net.Socket;
  upstream?: net.Socket;
  /** Bytes are moved by the offload; the JS sockets are gone. */
  offloaded: boolean;
  /** How it ended, when it ended otherwise than by both sides closing. */
  outcome?: ConnectionOutcome;
}

export class NodeProxy {
  readonly counters: ProxyCounters = {
    accepted: 0,
    noOriginalDst: 0,
    noService: 0,
    noEndpoint: 0,
    connectAttemptsFailed: 0,
    policyAllowed: 0,
    policyDenied: 0,
    retried: 0,
    relayed: 0,
    resets: 0,
    bytesFromClients: 0,
    bytesFromEndpoints: 0,
  };
  readonly endpoints = new EndpointStats();
  private readonly live = new Map<number, LiveConnection>();
  private readonly server: net.Server;
  private nextId = 1;

  constructor(private readonly deps: ProxyDeps) {
    // pauseOnConnect: no byte is read into JS before the relay is chosen, so
    // a hand-over to the offload never leaves data behind.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => deps.logger.error({ err }, 'proxy listener error'));
  }

  listen(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`proxy listen ${address}:${port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen({ host: address, port, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
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
      const moved = c.offloaded ? offloaded.get(c.info.id) ?? [0, 0] : [c.client.bytesRead, c.upstream?.bytesRead ?? c.client.bytesWritten];
      return { ...c.info, bytesFromClient: moved[0], bytesFromEndpoint: moved[1] };
    });
  }

  get activeConnections(): number {
    return this.live.size;
  }

  /** Stops accepting; live connections are left to finish (or be reset by the caller). */
  async close(resetLive = false): Promise<void> {
    if (resetLive) for (const c of this.live.values()) this.reset(c);
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(client: net.Socket): void {
    this.counters.accepted++;
    client.on('error', () => undefined); // reported through 'close'; relay decides what to do
    const orig = this.deps.originalDst(client);
    if (!orig) {
      // Nothing captured this connection: never act as an open relay.
      this.counters.noOriginalDst++;
      client.resetAndDestroy();
      return;
    }
    const target = this.deps.index().vip(orig.address, orig.port);
    if (!target) {
      this.counters.noService++;
      this.deps.logger.debug({ vip: `${orig.address}:${orig.port}` }, 'no service for captured destination');
      client.resetAndDestroy();
      return;
    }
    const source = this.deps.sourceWorkload(orig.netnsCookie);
    const conn: LiveConnection = {
      client,
      offloaded: false,
      peer: {
        principal: source?.identity ? source.identity.replace(/^spiffe:\/\//, '') : undefined,
        namespace: source?.namespace,
        ip: client.remoteAddress ?? '',
      },
      info: {
        id: this.nextId++,
        source: source ? `${source.namespace}/${source.name}` : 'unknown',
        sourceAddress: `${client.remoteAddress}:${client.remotePort}`,
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
    client.once('close', () => this.finish(conn));
    this.connect(conn, target, new Set(), 1);
  }

  private connect(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number): void {
    const { service, port } = target;
    const now = Date.now();
    const endpoint = pickEndpoint(service.endpoints, port.targetPort, tried, this.endpoints, now);
    if (!endpoint) {
      if (tried.size === 0) this.counters.noEndpoint++;
      this.deps.logger.debug({ service: conn.info.service, tried: [...tried] }, 'no endpoint left to try');
      // Every candidate was tried and failed, or there was none to try.
      conn.outcome = tried.size > 0 ? 'connect failed' : 'no endpoint';
      conn.client.resetAndDestroy();
      return;
    }
    const key = endpointKey(endpoint.address, port.targetPort);
    tried.add(key);
    conn.info.endpoint = key;
    const remote = this.deps.node !== undefined && endpoint.node !== this.deps.node;
    if (remote && this.deps.tunnel) {
      // The destination's agent applies policy, with the verified principal.
      this.connectTunnel(conn, target, tried, attempt, endpoint.workloadUid, key);
      return;
    }
    if (!this.authorized(conn, service, endpoint.workloadUid, port.targetPort)) return;
    conn.info.security = remote ? 'plaintext' : 'plaintext (same node)';
    const upstream = net.connect({ host: endpoint.address, port: port.targetPort, allowHalfOpen: true, noDelay: true });
    upstream.pause(); // read nothing into JS until the relay is chosen
    conn.upstream = upstream;
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), service.loadBalancing.connectTimeoutMs);

    const onFailure = (err: Error) => {
      clearTimeout(timer);
      upstream.destroy();
      this.counters.connectAttemptsFailed++;
      this.endpoints.connectFailed(key, Date.now());
      this.deps.logger.debug({ endpoint: key, err: err.message, attempt }, 'endpoint connect failed');
      if (conn.client.destroyed) return;
      if (attempt < service.loadBalancing.maxConnectAttempts) {
        this.counters.retried++;
        this.connect(conn, target, tried, attempt + 1);
      } else {
        this.deps.logger.warn({ service: conn.info.service, tried: [...tried] }, 'every endpoint tried failed to connect');
        conn.outcome = 'connect failed';
        conn.client.resetAndDestroy();
      }
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
      this.relay(conn, upstream, key);
    });
  }

  private connectTunnel(conn: LiveConnection, target: VipTarget, tried: Set<string>, attempt: number, workloadUid: string, key: string): void {
    const { service } = target;
    const dest = this.deps.index().workload(workloadUid);
    const fail = (err: Error) => {
      this.counters.connectAttemptsFailed++;
      this.endpoints.connectFailed(key, Date.now());
      this.deps.logger.debug({ endpoint: key, err: err.message, attempt }, 'tunnel to endpoint failed');
      if (conn.client.destroyed) return;
      if (attempt < service.loadBalancing.maxConnectAttempts) {
        this.counters.retried++;
        this.connect(conn, target, tried, attempt + 1);
      } else {
        this.deps.logger.warn({ service: conn.info.service, tried: [...tried], err: err.message }, 'every endpoint tried failed to connect');
        conn.outcome = 'connect failed';
        conn.client.resetAndDestroy();
      }
    };
    if (!dest?.identity || !dest.nodeAddress || !conn.peer.principal) {
      fail(new Error(`no identity or node address known for the tunnel to ${key}`));
      return;
    }
    const destinationIdentity = dest.identity;
    this.deps.tunnel!.open(
      { sourceIdentity: `spiffe://${conn.peer.principal}`, destinationIdentity, nodeAddress: dest.nodeAddress, target: key },
      service.loadBalancing.connectTimeoutMs,
    ).then(
      (stream) => {
        this.endpoints.connectSucceeded(key);
        if (conn.client.destroyed) {
          stream.destroy();
          return;
        }
        conn.info.security = `mTLS to ${destinationIdentity}`;
        this.relayStream(conn, stream, key);
      },
      (err: Error) => fail(err),
    );
  }

  /** Relays between the client socket and a tunnel stream (bytes pass through JS). */
  private relayStream(conn: LiveConnection, stream: Duplex, key: string): void {
    const { client } = conn;
    conn.info.state = 'relaying';
    this.counters.relayed++;
    this.endpoints.opened(key);
    client.pipe(stream);
    stream.pipe(client);
    stream.on('error', () => {
      if (!client.destroyed) {
        conn.outcome = 'reset';
        client.resetAndDestroy();
      }
    });
    client.on('error', () => (stream as http2.ClientHttp2Stream).close?.(http2.constants.NGHTTP2_CANCEL));
    stream.once('close', () => {
      this.endpoints.closed(key);
      if (!client.destroyed && !client.writableEnded) client.end();
    });
  }

  /**
   * Applies authorization on the destination's behalf before a byte reaches
   * it. A denied connection is reset and logged once, with the deciding policy.
   */
  private authorized(conn: LiveConnection, service: VipTarget['service'], workloadUid: string, port: number): boolean {
    const policies = this.deps.policies?.();
    if (!policies) return true;
    const dest = this.deps.index().workload(workloadUid);
    const destination = { namespace: dest?.namespace ?? service.namespace, labels: dest?.labels ?? {} };
    const decision = policies.authorize(destination, conn.peer, port);
    if (decision.allowed) {
      this.counters.policyAllowed++;
      return true;
    }
    this.counters.policyDenied++;
    this.deps.logger.info(
      {
        source: conn.info.source,
        principal: conn.peer.principal,
        sourceAddress: conn.info.sourceAddress,
        service: conn.info.service,
        destination: dest ? `${dest.namespace}/${dest.name}` : conn.info.endpoint,
        port,
        // No single policy denied it: name the ALLOW policies none of which matched.
        policy: decision.policy ?? policies.applicableTo(destination).map((p) => `${p.namespace}/${p.name}`).join(','),
      },
      `connection denied: ${decision.reason}`,
    );
    conn.outcome = 'denied';
    conn.client.resetAndDestroy();
    return false;
  }

  private relay(conn: LiveConnection, upstream: net.Socket, key: string): void {
    const { client } = conn;
    conn.info.state = 'relaying';
    this.counters.relayed++;
    this.endpoints.opened(key);
    conn.offloaded = true; // before handOver: it destroys the JS sockets, whose 'close' must not finish the connection
    if (this.deps.offload?.handOver(conn.info.id, client, upstream, (r) => this.offloadDone(conn, key, r))) return;
    conn.offloaded = false;
    // pipe() gives back-pressure and forwards FIN (end) per direction; with
    // allowHalfOpen on both sockets the other direction stays open.
    client.pipe(upstream);
    upstream.pipe(client);
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
    this.live.delete(conn.info.id);
    this.logAccess(conn, r.error ? 'reset' : 'closed', r.bytesFromClient, r.bytesFromEndpoint);
  }

  private logAccess(conn: LiveConnection, outcome: ConnectionOutcome, bytesFromClient: number, bytesFromEndpoint: number): void {
    if (!this.deps.accessLog) return;
    const { source, sourceAddress, vip, service, endpoint, startedAt } = conn.info;
    this.deps.accessLog({ source, sourceAddress, vip, service, endpoint, outcome, durationMs: Date.now() - startedAt, bytesFromClient, bytesFromEndpoint });
  }

  private reset(conn: LiveConnection): void {
    this.counters.resets++;
    conn.outcome ??= 'reset';
    if (!conn.client.destroyed) conn.client.resetAndDestroy();
    if (conn.upstream && !conn.upstream.destroyed) conn.upstream.resetAndDestroy();
  }

  private finish(conn: LiveConnection): void {
    if (conn.offloaded) return; // offloadDone accounts for it
    this.counters.bytesFromClients += conn.client.bytesRead;
    this.live.delete(conn.info.id);
    if (conn.upstream && !conn.upstream.destroyed && conn.info.state === 'connecting') conn.upstream.destroy();
    this.logAccess(conn, conn.outcome ?? 'closed', conn.client.bytesRead, conn.upstream?.bytesRead ?? 0);
  }
}
