// Fills the resource store from the control plane over Delta ADS. Each type
// handler validates every resource on its own: rejected ones are named in
// the NACK, the others apply.
import type { Logger } from 'pino';
import { DeltaAdsClient, type Rejected, type TypeHandler } from '../xds/delta-client';
import { authorizationPolicyCodec, peerAuthenticationCodec, serviceCodec, workloadCodec, type ResourceCodec } from '../xds/resource-types';
import { emptyDelta, type ResourceStore, type StoreDelta } from './resource-store';

export class XdsSource {
  readonly client: DeltaAdsClient;
  /** typeUrl -> name -> version of what was accepted. */
  private readonly versions = new Map<string, Map<string, string>>();
  private pending = emptyDelta();

  constructor(
    target: string,
    nodeId: string,
    private readonly store: ResourceStore,
    private readonly onDelta: (delta: StoreDelta) => void,
    logger: Logger,
    initialVersions: Record<string, Record<string, string>> = {},
  ) {
    for (const [type, v] of Object.entries(initialVersions)) this.versions.set(type, new Map(Object.entries(v)));
    const handlers = [
      this.handler(workloadCodec, (w, d) => store.upsertWorkload(w, d), (name, d) => store.removeWorkload(name, d)),
      this.handler(serviceCodec, (s, d) => store.upsertService(s, d), (name, d) => store.removeService(name, d)),
      this.handler(authorizationPolicyCodec, (p, d) => store.upsertAuthorizationPolicy(p, d), (name, d) => store.removeAuthorizationPolicy(name, d)),
      this.handler(peerAuthenticationCodec, (p, d) => store.upsertPeerAuthentication(p, d), (name, d) => store.removePeerAuthentication(name, d)),
    ];
    this.client = new DeltaAdsClient({ target, nodeId }, handlers, logger);
  }

  start(): void {
    this.client.start();
  }

  stop(): void {
    this.client.stop();
  }

  versionsByType(): Record<string, Record<string, string>> {
    return Object.fromEntries([...this.versions].map(([t, m]) => [t, Object.fromEntries(m)]));
  }

  private handler<T>(
    codec: ResourceCodec<T>,
    upsert: (r: T, d: StoreDelta) => void,
    remove: (name: string, d: StoreDelta) => void,
  ): TypeHandler {
    const versions = this.versions.get(codec.typeUrl) ?? new Map<string, string>();
    this.versions.set(codec.typeUrl, versions);
    return {
      typeUrl: codec.typeUrl,
      versions: () => Object.fromEntries(versions),
      apply: (upserts, removals, systemVersion) => {
        const rejected: Rejected[] = [];
        const delta = this.pending;
        for (const u of upserts) {
          const r = codec.decode(u.resource);
          if (typeof r === 'string') {
            rejected.push({ name: u.name, reason: r });
            continue;
          }
          if (codec.nameOf(r) !== u.name) {
            rejected.push({ name: u.name, reason: `resource is named ${JSON.stringify(codec.nameOf(r))} inside` });
            continue;
          }
          upsert(r, delta);
          versions.set(u.name, u.version);
        }
        for (const name of removals) {
          remove(name, delta);
          versions.delete(name);
        }
        this.store.version = systemVersion;
        this.pending = emptyDelta();
        this.onDelta(delta);
        return rejected;
      },
    };
  }
}
