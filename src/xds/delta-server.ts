// The server side of Delta ADS: keeps the current resources per type and
// sends each subscribed stream what changed since what it has. Knows nothing
// of what the resources mean.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { adsServiceDefinition, type Any, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from './protos';

interface Stored {
  version: string;
  resource: Any;
}

interface Subscription {
  /** name -> version this stream has (as far as we sent it). */
  known: Map<string, string>;
  lastAckNonce: string;
  lastNack?: { nonce: string; message: string; at: string };
  /** The first response went out (it is sent even when empty, so the client knows it has the whole set). */
  answered: boolean;
}

type AdsCall = grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

interface Stream {
  id: number;
  node: string;
  peer: string;
  connectedAt: string;
  call: AdsCall;
  subscriptions: Map<string, Subscription>;
  opened?: boolean;
}

/**
 * One open agent stream as the control plane's status shows it: per subscribed
 * type, the resources it holds as sent, the last ACKed nonce and the last NACK.
 */
export interface StreamStatus {
  id: number;
  node: string;
  peer: string;
  connectedAt: string;
  types: { type: string; resources: number; lastAckNonce: string; lastNack?: { nonce: string; message: string; at: string } }[];
}

/** Responses pushed, ACKs and NACKs received, over all streams since start. */
export interface DeltaServerCounters {
  pushes: number;
  acks: number;
  nacks: number;
  /** The same, per resource type URL. */
  byType: Record<string, { pushes: number; acks: number; nacks: number }>;
}

/**
 * A Delta ADS server (envoy.service.discovery.v3.AggregatedDiscoveryService;
 * the state-of-the-world StreamAggregatedResources answers UNIMPLEMENTED).
 * Subscriptions are wildcard: a stream is sent every resource of its types
 * that it does not hold at that version, and the names of those it holds
 * that are gone.
 */
export class DeltaAdsServer {
  private readonly resources = new Map<string, Map<string, Stored>>();
  private readonly streams = new Map<number, Stream>();
  private nextStream = 1;
  private nextNonce = 1;
  private systemVersion = '0';
  readonly counters: DeltaServerCounters = { pushes: 0, acks: 0, nacks: 0, byType: {} };
  private readonly server = new grpc.Server({ 'grpc.max_send_message_length': 256 << 20 });

  /**
   * When set, every stream must authenticate from its metadata: resolves
   * with the node name, or with why not. Nothing the stream sends is read
   * before it has.
   */
  authenticate?: (metadata: grpc.Metadata) => Promise<{ node: string } | { refused: string }>;

  constructor(private readonly logger: Logger) {
    this.server.addService(adsServiceDefinition(), {
      DeltaAggregatedResources: (call: AdsCall) => this.onStream(call),
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) =>
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'sluice serves only the delta protocol (DeltaAggregatedResources)' }),
    });
  }

  /** Serves another gRPC service on the same port (the CA's). */
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    this.server.addService(definition, implementation);
  }

  /** Binds host:port (port 0 picks one); resolves with the bound port. */
  listen(address: string, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(new Error(`xDS listen ${address}: ${err.message}`)) : resolve(port)));
    });
  }

  /** Ends every stream and resolves once the server has shut down. */
  async close(): Promise<void> {
    for (const s of this.streams.values()) s.call.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  /**
   * Replaces the resources of one type with the given set (name -> version,
   * resource) and pushes the difference to every subscribed stream.
   */
  setResources(typeUrl: string, next: Map<string, Stored>, systemVersion: string): void {
    this.resources.set(typeUrl, next);
    this.systemVersion = systemVersion;
    for (const stream of this.streams.values()) {
      const sub = stream.subscriptions.get(typeUrl);
      if (sub) this.push(stream, typeUrl, sub);
    }
  }

  /**
   * Changes some resources of one type (upserts replace, removals delete) and
   * pushes just those: O(change), not O(all resources), for large sets.
   */
  updateResources(typeUrl: string, upserts: Map<string, Stored>, removals: string[], systemVersion: string): void {
    let current = this.resources.get(typeUrl);
    if (!current) this.resources.set(typeUrl, (current = new Map()));
    for (const [name, stored] of upserts) current.set(name, stored);
    for (const name of removals) current.delete(name);
    this.systemVersion = systemVersion;
    for (const stream of this.streams.values()) {
      const sub = stream.subscriptions.get(typeUrl);
      if (!sub) continue;
      // A subscription still waiting for its first answer gets the whole set (and the removal of what it holds and is gone).
      if (!sub.answered) {
        this.push(stream, typeUrl, sub);
        continue;
      }
      const resources: DeltaDiscoveryResponse['resources'] = [];
      for (const [name, stored] of upserts) {
        if (sub.known.get(name) === stored.version) continue;
        resources.push({ name, version: stored.version, resource: stored.resource });
        sub.known.set(name, stored.version);
      }
      const removed = removals.filter((name) => sub.known.delete(name));
      if (resources.length === 0 && removed.length === 0) continue;
      this.count(typeUrl, 'pushes');
      stream.call.write({ system_version_info: systemVersion, type_url: typeUrl, resources, removed_resources: removed, nonce: String(this.nextNonce++) });
    }
  }

  /** The open streams, in the order they connected. */
  status(): StreamStatus[] {
    return [...this.streams.values()].map((s) => ({
      id: s.id,
      node: s.node,
      peer: s.peer,
      connectedAt: s.connectedAt,
      types: [...s.subscriptions].map(([type, sub]) => ({ type, resources: sub.known.size, lastAckNonce: sub.lastAckNonce, lastNack: sub.lastNack })),
    }));
  }

  private count(typeUrl: string, what: 'pushes' | 'acks' | 'nacks'): void {
    this.counters[what]++;
    const t = (this.counters.byType[typeUrl] ??= { pushes: 0, acks: 0, nacks: 0 });
    t[what]++;
  }

  /** The system version of the last set or update ('0' before any). */
  get version(): string {
    return this.systemVersion;
  }

  private onStream(call: AdsCall): void {
    if (!this.authenticate) return this.serveStream(call, '');
    call.pause();
    call.on('error', () => undefined); // a client gone while it is checked
    this.authenticate(call.metadata).then(
      (auth) => {
        if ('refused' in auth) {
          this.logger.warn({ peer: call.getPeer() }, `ADS stream refused: ${auth.refused}`);
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: auth.refused });
          return;
        }
        this.serveStream(call, auth.node);
        call.resume();
      },
      (err: Error) => {
        this.logger.error({ peer: call.getPeer(), err: err.message }, 'ADS stream refused: authentication failed');
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: `authentication failed: ${err.message}` });
      },
    );
  }

  private serveStream(call: AdsCall, authenticatedNode: string): void {
    const stream: Stream = { id: this.nextStream++, node: authenticatedNode, peer: call.getPeer(), connectedAt: new Date().toISOString(), call, subscriptions: new Map() };
    this.streams.set(stream.id, stream);
    const log = this.logger.child({ stream: stream.id, peer: stream.peer });
    call.on('data', (req: DeltaDiscoveryRequest) => {
      try {
        this.onRequest(stream, req, log);
      } catch (err) {
        log.error({ err }, 'bad request on ADS stream');
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      }
    });
    const gone = () => {
      if (this.streams.delete(stream.id)) log.info({ node: stream.node }, 'ADS stream closed');
    };
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('cancelled', gone);
  }

  private onRequest(stream: Stream, req: DeltaDiscoveryRequest, log: Logger): void {
    if (req.node?.id && !stream.opened) {
      stream.opened = true;
      if (stream.node && req.node.id !== stream.node) throw new Error(`node id ${req.node.id} does not match the authenticated node ${stream.node}`);
      stream.node = req.node.id;
      log.info({ node: stream.node }, 'ADS stream opened');
    }
    const typeUrl = req.type_url;
    if (!typeUrl) throw new Error('DeltaDiscoveryRequest without type_url');
    let sub = stream.subscriptions.get(typeUrl);
    if (req.response_nonce) {
      if (!sub) return;
      if (req.error_detail && req.error_detail.message) {
        this.count(typeUrl, 'nacks');
        sub.lastNack = { nonce: req.response_nonce, message: req.error_detail.message, at: new Date().toISOString() };
        log.warn({ node: stream.node, type: typeUrl, nonce: req.response_nonce }, `NACK: ${req.error_detail.message}`);
      } else {
        this.count(typeUrl, 'acks');
        sub.lastAckNonce = req.response_nonce;
      }
      return;
    }
    if (sub) return; // already subscribed (wildcard): nothing new to send
    // First request for this type: wildcard subscription. The client tells us
    // what it already has (after a reconnect), so only differences are sent.
    sub = { known: new Map(Object.entries(req.initial_resource_versions ?? {})), lastAckNonce: '', answered: false };
    stream.subscriptions.set(typeUrl, sub);
    // A type never set has no answer yet: an empty one would tell a client
    // that reconnects to a control plane still starting (its Kubernetes
    // source not yet listed) to remove everything it serves. setResources
    // answers once the type is known.
    if (this.resources.has(typeUrl)) this.push(stream, typeUrl, sub);
  }

  private push(stream: Stream, typeUrl: string, sub: Subscription): void {
    const always = !sub.answered;
    sub.answered = true;
    const current = this.resources.get(typeUrl) ?? new Map<string, Stored>();
    const resources: DeltaDiscoveryResponse['resources'] = [];
    for (const [name, stored] of current) {
      if (sub.known.get(name) === stored.version) continue;
      resources.push({ name, version: stored.version, resource: stored.resource });
      sub.known.set(name, stored.version);
    }
    const removed: string[] = [];
    for (const name of [...sub.known.keys()]) {
      if (!current.has(name)) {
        removed.push(name);
        sub.known.delete(name);
      }
    }
    if (!always && resources.length === 0 && removed.length === 0) return;
    this.count(typeUrl, 'pushes');
    stream.call.write({
      system_version_info: this.systemVersion,
      type_url: typeUrl,
      resources,
      removed_resources: removed,
      nonce: String(this.nextNonce++),
    });
  }
}
