// The client side of Delta ADS, after ztunnel's xds client: one stream,
// one wildcard subscription per type, ACK by nonce, NACK naming the rejected
// resources, reconnect with jittered exponential backoff. Handlers give the
// resources meaning; this file only moves them.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { adsClientConstructor, type Any, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from './protos';

/** A resource a handler refused, and why; the reasons make up the NACK's error_detail. */
export interface Rejected {
  name: string;
  reason: string;
}

/** Gives one resource type (typeUrl) its meaning on the agent. */
export interface TypeHandler {
  typeUrl: string;
  /**
   * Applies one response: resources to add or replace, names to remove.
   * Returns the resources it refused; everything else must be applied.
   */
  apply(upserts: { name: string; version: string; resource: Any }[], removals: string[], systemVersion: string): Rejected[];
  /** name -> version of what is held now, sent on reconnect so the server sends only differences. */
  versions(): Record<string, string>;
}

/**
 * One subscribed type as the status view shows it: resources received, ACKs
 * and NACKs sent (times ISO 8601), and whether its first response has come.
 */
export interface TypeStatus {
  type: string;
  received: number;
  acks: number;
  nacks: number;
  lastAck?: { version: string; nonce: string; at: string };
  lastNack?: { version: string; nonce: string; at: string; reason: string };
  synced: boolean;
}

export type ConnectionState = 'connecting' | 'connected' | 'backoff' | 'stopped';

/**
 * target: the control plane as a gRPC target (host:port); nodeId: the name
 * sent as node.id. Without credentials the channel is plaintext. Reconnect
 * backoff starts at initialBackoffMs (500) and is capped at maxBackoffMs
 * (30000); random replaces Math.random for the jitter.
 */
export interface DeltaClientOptions {
  target: string;
  nodeId: string;
  credentials?: grpc.ChannelCredentials;
  /** Sent with every stream (node credential). */
  metadata?: () => grpc.Metadata;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
}

/** Full-jitter exponential backoff: uniform in [0, min(max, base * 2^attempt)]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.round(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/**
 * A Delta ADS client to the control plane: one stream, one wildcard
 * subscription per handler's type, an ACK or NACK for every response. A lost
 * stream is reopened after a backoff while the handlers keep the last good
 * state. start() opens it; stop() ends it for good.
 */
export class DeltaAdsClient {
  private client: grpc.Client & { DeltaAggregatedResources(md?: grpc.Metadata): grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> };
  private readonly handlers = new Map<string, TypeHandler>();
  private readonly typeStatus = new Map<string, TypeStatus>();
  private call?: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  state: ConnectionState = 'connecting';
  lastError = '';
  connectedSince = '';
  readonly counters = { responses: 0, acks: 0, nacks: 0, connects: 0 };
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly opts: DeltaClientOptions,
    handlers: TypeHandler[],
    private readonly logger: Logger,
  ) {
    this.client = this.newClient();
    for (const h of handlers) {
      this.handlers.set(h.typeUrl, h);
      this.typeStatus.set(h.typeUrl, { type: h.typeUrl, received: 0, acks: 0, nacks: 0, synced: false });
    }
  }

  /** Opens the stream, subscribing every handler's type. */
  start(): void {
    this.stopped = false;
    this.open();
  }

  /**
   * A fresh channel. Its own reconnect backoff is capped at ours: grpc-js's
   * default grows to 120 s, which after a long outage kept a retry failing
   * with a stale UNAVAILABLE well past our 30 s cap.
   */
  private newClient(): typeof this.client {
    const Ctor = adsClientConstructor();
    return new Ctor(this.opts.target, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 256 << 20,
      'grpc.keepalive_time_ms': 30000,
      // The TLS server name: a name, never the IP the target may be (RFC 6066
      // forbids IP server names and Node warns); the control plane's identity
      // is checked from its certificate, not from this name.
      'grpc.ssl_target_name_override': 'sluice-control',
      'grpc.initial_reconnect_backoff_ms': this.opts.initialBackoffMs ?? 500,
      'grpc.max_reconnect_backoff_ms': this.opts.maxBackoffMs ?? 30000,
    }) as unknown as typeof this.client;
  }

  /** Ends the stream, any reconnect waiting and the channel; state becomes 'stopped'. */
  stop(): void {
    this.stopped = true;
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.client.close();
  }

  /** Called after every state change or applied response. */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** True once every type has had its first response (since start, not per stream). */
  get synced(): boolean {
    return [...this.typeStatus.values()].every((t) => t.synced);
  }

  /**
   * The connection for the status view: target, node id, state, connected
   * since (ISO 8601, '' before the first response), the last stream error, and
   * each type's status.
   */
  status(): { target: string; node: string; state: ConnectionState; connectedSince: string; lastError: string; types: TypeStatus[] } {
    return {
      target: this.opts.target,
      node: this.opts.nodeId,
      state: this.state,
      connectedSince: this.connectedSince,
      lastError: this.lastError,
      types: [...this.typeStatus.values()],
    };
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  private open(): void {
    if (this.stopped) return;
    this.state = 'connecting';
    // A channel still in its own backoff would fail this attempt at once
    // with the error of an earlier one: start from a fresh channel.
    if (this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.TRANSIENT_FAILURE) {
      this.client.close();
      this.client = this.newClient();
    }
    const call = this.client.DeltaAggregatedResources(this.opts.metadata?.() ?? new grpc.Metadata());
    this.call = call;
    let first = true;
    for (const h of this.handlers.values()) {
      call.write({
        node: first ? { id: this.opts.nodeId, user_agent_name: 'sluice-agent' } : null,
        type_url: h.typeUrl,
        resource_names_subscribe: ['*'],
        initial_resource_versions: h.versions(),
      });
      first = false;
    }
    call.on('data', (res: DeltaDiscoveryResponse) => {
      if (this.state !== 'connected') {
        this.state = 'connected';
        this.connectedSince = new Date().toISOString();
        this.lastError = '';
        this.counters.connects++;
        this.logger.info({ target: this.opts.target }, 'connected to the control plane');
      }
      this.attempt = 0; // a stream that delivers resets the backoff
      this.onResponse(call, res);
    });
    call.on('error', (err: grpc.ServiceError) => this.streamEnded(call, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => this.streamEnded(call, 'stream ended by the server'));
  }

  private onResponse(call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>, res: DeltaDiscoveryResponse): void {
    this.counters.responses++;
    const handler = this.handlers.get(res.type_url);
    const status = this.typeStatus.get(res.type_url);
    if (!handler || !status) {
      call.write({ type_url: res.type_url, response_nonce: res.nonce, error_detail: { code: grpc.status.UNIMPLEMENTED, message: `type ${res.type_url} is not subscribed` } });
      return;
    }
    const upserts: { name: string; version: string; resource: Any }[] = [];
    const rejected: Rejected[] = [];
    for (const r of res.resources) {
      if (!r.resource) rejected.push({ name: r.name, reason: 'resource body missing' });
      else upserts.push({ name: r.name, version: r.version, resource: r.resource });
    }
    try {
      rejected.push(...handler.apply(upserts, res.removed_resources, res.system_version_info));
    } catch (err) {
      rejected.push({ name: '*', reason: `handler failed: ${(err as Error).message}` });
    }
    status.received += res.resources.length;
    status.synced = true;
    const at = new Date().toISOString();
    if (rejected.length === 0) {
      this.counters.acks++;
      status.acks++;
      status.lastAck = { version: res.system_version_info, nonce: res.nonce, at };
      call.write({ type_url: res.type_url, response_nonce: res.nonce });
    } else {
      this.counters.nacks++;
      status.nacks++;
      const reason = rejected.map((r) => `${r.name}: ${r.reason}`).join('; ');
      status.lastNack = { version: res.system_version_info, nonce: res.nonce, at, reason };
      this.logger.warn({ type: res.type_url, version: res.system_version_info, rejected }, 'resources rejected (NACK); the others were applied');
      call.write({ type_url: res.type_url, response_nonce: res.nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message: reason } });
    }
    this.notify();
  }

  private streamEnded(call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>, why: string): void {
    if (call !== this.call || this.stopped) return;
    this.call = undefined;
    call.removeAllListeners();
    call.on('error', () => undefined);
    call.cancel();
    this.lastError = why;
    const delay = backoffDelay(this.attempt++, this.opts.initialBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30000, this.opts.random ?? Math.random);
    this.state = 'backoff';
    this.logger.warn({ target: this.opts.target, reason: why, retryInMs: delay }, 'control plane stream lost; serving the last good state');
    this.notify();
    this.timer = setTimeout(() => this.open(), delay);
  }
}
