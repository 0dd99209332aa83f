// Fills the resource store from the control plane over Delta ADS. Each type
// handler validates every resource on its own: rejected ones are named in
// the NACK, the others apply. The accepted resources are also kept in their
// wire form for the state file.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { DeltaAdsClient, type Rejected, type TypeHandler } from '../xds/delta-client';
import type { Any } from '../xds/protos';
import { authorizationPolicyCodec, peerAuthenticationCodec, serviceCodec, workloadCodec, type ResourceCodec } from '../xds/resource-types';
import { emptyDelta, type ResourceStore, type StoreDelta } from './resource-store';
import { readState, stateLine, writeState } from './state-file';

interface TypeBinding<T> {
  codec: ResourceCodec<T>;
  upsert(r: T, d: StoreDelta): void;
  remove(name: string, d: StoreDelta): void;
}

/**
 * The agent's configuration from the control plane over Delta ADS: each
 * resource decoded and validated on its own (a bad one is NACKed by name,
 * the rest apply), the accepted state persisted for a restart without the
 * control plane.
 */
export class XdsSource {
  readonly client: DeltaAdsClient;
  /** typeUrl -> name -> version of what was accepted. */
  private readonly versions = new Map<string, Map<string, string>>();
  /** `${typeUrl} ${name}` -> state file line of the accepted resource. */
  private readonly lines = new Map<string, string>();
  private readonly bindings = new Map<string, TypeBinding<unknown>>();
  private saving?: Promise<void>;
  private saveAgain = false;

  /** Checked for every resource before it is accepted: a reason refuses it (named in the NACK). */
  admit?: (typeUrl: string, name: string, resource: unknown) => string | undefined;
  /** Told of every resource removed. */
  release?: (typeUrl: string, name: string) => void;

  constructor(
    target: string,
    nodeId: string,
    private readonly store: ResourceStore,
    private readonly onDelta: (delta: StoreDelta) => void,
    private readonly logger: Logger,
    credentials?: grpc.ChannelCredentials,
    metadata?: () => grpc.Metadata,
  ) {
    const bind = <T>(b: TypeBinding<T>) => this.bindings.set(b.codec.typeUrl, b as TypeBinding<unknown>);
    bind({ codec: workloadCodec, upsert: (w, d) => store.upsertWorkload(w, d), remove: (n, d) => store.removeWorkload(n, d) });
    bind({ codec: serviceCodec, upsert: (s, d) => store.upsertService(s, d), remove: (n, d) => store.removeService(n, d) });
    bind({ codec: authorizationPolicyCodec, upsert: (p, d) => store.upsertAuthorizationPolicy(p, d), remove: (n, d) => store.removeAuthorizationPolicy(n, d) });
    bind({ codec: peerAuthenticationCodec, upsert: (p, d) => store.upsertPeerAuthentication(p, d), remove: (n, d) => store.removePeerAuthentication(n, d) });
    this.client = new DeltaAdsClient({ target, nodeId, credentials, metadata }, [...this.bindings.values()].map((b) => this.handler(b)), logger);
  }

  start(): void {
    this.client.start();
  }

  stop(): void {
    this.client.stop();
  }

  /**
   * Loads a saved state into the store (before start(): its versions are
   * announced to the server, which then sends only what changed since).
   */
  restore(dir: string): { version: string; savedAt: string; rejected: Rejected[]; delta: StoreDelta } | undefined {
    const saved = readState(dir);
    if (!saved) return undefined;
    const delta = emptyDelta();
    delta.full = true;
    const rejected: Rejected[] = [];
    for (const e of saved.entries) {
      const binding = this.bindings.get(e.t);
      if (!binding) continue;
      const r = this.accept(binding, e.n, e.v, { type_url: e.t, value: Buffer.from(e.b, 'base64') }, delta);
      if (r) rejected.push(r);
    }
    this.store.version = saved.header.version;
    return { version: saved.header.version, savedAt: saved.header.savedAt, rejected, delta };
  }

  /** Saves the accepted resources; calls during a save coalesce into one more. */
  save(dir: string): Promise<void> {
    if (this.saving) {
      this.saveAgain = true;
      return this.saving;
    }
    this.saving = writeState(dir, this.store.version, this.lines.values())
      .catch((err) => this.logger.error({ err: (err as Error).message }, 'could not persist the state'))
      .finally(() => {
        this.saving = undefined;
        if (this.saveAgain) {
          this.saveAgain = false;
          void this.save(dir);
        }
      });
    return this.saving;
  }

  private accept(binding: TypeBinding<unknown>, name: string, version: string, resource: Any, delta: StoreDelta): Rejected | undefined {
    const { codec } = binding;
    const r = codec.decode(resource);
    if (typeof r === 'string') return { name, reason: r };
    if (codec.nameOf(r) !== name) return { name, reason: `resource is named ${JSON.stringify(codec.nameOf(r))} inside` };
    const refused = this.admit?.(codec.typeUrl, name, r);
    if (refused) return { name, reason: refused };
    binding.upsert(r, delta);
    let versions = this.versions.get(codec.typeUrl);
    if (!versions) this.versions.set(codec.typeUrl, (versions = new Map()));
    versions.set(name, version);
    this.lines.set(`${codec.typeUrl} ${name}`, stateLine({ t: codec.typeUrl, n: name, v: version, b: resource.value.toString('base64') }));
    return undefined;
  }

  private handler(binding: TypeBinding<unknown>): TypeHandler {
    const typeUrl = binding.codec.typeUrl;
    return {
      typeUrl,
      versions: () => Object.fromEntries(this.versions.get(typeUrl) ?? []),
      apply: (upserts, removals, systemVersion) => {
        const delta = emptyDelta();
        const rejected: Rejected[] = [];
        // Removals first: what they free may be what an upsert needs.
        for (const name of removals) {
          binding.remove(name, delta);
          this.release?.(typeUrl, name);
          this.versions.get(typeUrl)?.delete(name);
          this.lines.delete(`${typeUrl} ${name}`);
        }
        for (const u of upserts) {
          const r = this.accept(binding, u.name, u.version, u.resource, delta);
          if (r) rejected.push(r);
        }
        this.store.version = systemVersion;
        this.onDelta(delta);
        return rejected;
      },
    };
  }
}
