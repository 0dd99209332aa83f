// The control plane's core: translate the current objects, keep the last
// good version of any object that fails, and publish what changed to the
// xDS server. Sources (manifest files, later the Kubernetes API) call publish().
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { policyKey, type AuthorizationPolicy, type PeerAuthentication } from '../model/policy';
import { serviceKey, type Service, type Workload } from '../model/resources';
import type { Any } from '../xds/protos';
import { DeltaAdsServer } from '../xds/delta-server';
import { authorizationPolicyCodec, peerAuthenticationCodec, serviceCodec, workloadCodec, type ResourceCodec } from '../xds/resource-types';
import type { SourcedObject } from './kubernetes-objects';
import { renderObjects, type Rendering, type RenderOptions } from './render';
import type { TranslationError } from './translate';

/**
 * What one publish did: the version now served, whether anything changed,
 * the objects refused (errors) and what valid objects ask for that is not
 * served (warnings).
 */
export interface Published {
  version: string;
  changed: boolean;
  errors: TranslationError[];
  warnings: TranslationError[];
}

interface TypeState<T> {
  codec: ResourceCodec<T>;
  /** Kind as named in translation errors ("Service shop/api"). */
  kind: string;
  current: Map<string, Entry<T>>;
}

interface Entry<T> {
  version: string;
  resource: Any;
  value: T;
  /** JSON of value: an unchanged value is recognised without encoding and hashing it again. */
  json: string;
}

function formatKey(e: TranslationError): string {
  return `${e.source}\0${e.object}\0${e.field}\0${e.reason}`;
}

function versionOf(any: Any): string {
  return createHash('sha256').update(any.value).digest('hex').slice(0, 16);
}

/**
 * Translates the objects its sources publish and serves the result over Delta
 * ADS (`server`). An object that fails translation keeps its last good
 * resource; resource versions are hashes of the encoded resource.
 */
export class ControlPlane {
  readonly server: DeltaAdsServer;
  private readonly workloads: TypeState<Workload> = { codec: workloadCodec, kind: 'Pod', current: new Map() };
  private readonly services: TypeState<Service> = { codec: serviceCodec, kind: 'Service', current: new Map() };
  private readonly authorizationPolicies: TypeState<AuthorizationPolicy> = { codec: authorizationPolicyCodec, kind: 'AuthorizationPolicy', current: new Map() };
  private readonly peerAuthentications: TypeState<PeerAuthentication> = { codec: peerAuthenticationCodec, kind: 'PeerAuthentication', current: new Map() };
  private generation = 0;
  /** Translations published since start (each manifest change that altered something). */
  get publishes(): number {
    return this.generation;
  }
  lastErrors: TranslationError[] = [];
  /** What the objects ask for and is not served (sluice-control's status lists it). */
  lastWarnings: TranslationError[] = [];
  lastPublishedAt = '';

  /** `options`: trust domain and cluster ranges objects are translated with (sluice-control's flags). */
  constructor(
    private readonly options: RenderOptions,
    private readonly logger: Logger,
  ) {
    this.server = new DeltaAdsServer(logger.child({ component: 'xds' }));
  }

  /** Unique across restarts (a restarted control plane never repeats a version an agent holds). */
  private readonly boot = Date.now().toString(36);

  /** The served configuration's version, "<boot time base 36>-<publish count>". */
  get version(): string {
    return `${this.boot}-${this.generation}`;
  }

  /**
   * Translates the objects and pushes the differences. Objects in error keep
   * their last good resource. Never throws: should translation itself fail
   * (a bug, not an input), everything being served stays as it is.
   */
  publish(objects: SourcedObject[]): Published {
    let r: Rendering;
    try {
      r = renderObjects(objects, '', this.options);
    } catch (err) {
      this.logger.error({ err: (err as Error).stack }, 'translation failed, the current configuration keeps being served');
      return { version: this.version, changed: false, errors: this.lastErrors, warnings: this.lastWarnings };
    }
    const errors = r.errors;
    const updates = [
      this.next(this.workloads, r.workloads.map((w) => [w.uid, w]), errors),
      this.next(this.services, r.services.map((s) => [serviceKey(s), s]), errors),
      this.next(this.authorizationPolicies, r.authorizationPolicies.map((a) => [policyKey(a), a]), errors),
      this.next(this.peerAuthentications, r.peerAuthentications.map((a) => [policyKey(a), a]), errors),
    ];
    // The first publish always goes out, so even an empty mesh has a version agents can report.
    const first = this.generation === 0;
    const changed = first || updates.some((u) => u.changed);
    if (changed) {
      this.generation++;
      for (const u of updates) if (u.changed || first) u.push();
    }
    const newWarnings = r.warnings.filter((w) => !this.lastWarnings.some((l) => formatKey(l) === formatKey(w)));
    this.lastErrors = errors;
    this.lastWarnings = r.warnings;
    this.lastPublishedAt = new Date().toISOString();
    // Warnings repeat on every publish while the object is unchanged: logged once, listed in the status.
    for (const w of newWarnings) this.logger.warn({ source: w.source, object: w.object, field: w.field }, `not served: ${w.reason}`);
    for (const e of errors) this.logger.error({ source: e.source, object: e.object, field: e.field }, `object rejected, its last good version (if any) keeps being served: ${e.reason}`);
    if (changed) {
      this.logger.info(
        { version: this.version, workloads: this.workloads.current.size, services: this.services.current.size, authorizationPolicies: this.authorizationPolicies.current.size },
        'configuration published',
      );
    }
    return { version: this.version, changed, errors, warnings: r.warnings };
  }

  /**
   * Computes a type's next resources. An object that failed translation keeps
   * the resource it had (so a bad edit does not remove what worked).
   */
  private next<T>(state: TypeState<T>, entries: [string, T][], errors: TranslationError[]): { changed: boolean; push: () => void } {
    const next = new Map(entries);
    const prefix = `${state.kind} `;
    for (const e of errors) {
      if (!e.object.startsWith(prefix)) continue;
      const key = e.object.slice(prefix.length);
      const kept = state.current.get(key);
      if (kept && !next.has(key)) next.set(key, kept.value);
    }
    const changed = this.diff(state, next);
    return { changed, push: () => this.server.setResources(state.codec.typeUrl, this.wire(state), this.version) };
  }

  /** The resources being served, as JSON (render, admin). */
  resources(): { version: string; workloads: Workload[]; services: Service[]; authorizationPolicies: AuthorizationPolicy[]; peerAuthentications: PeerAuthentication[] } {
    const values = <T>(state: TypeState<T>) => [...state.current.values()].map((e) => e.value);
    return {
      version: this.version,
      workloads: values(this.workloads),
      services: values(this.services),
      authorizationPolicies: values(this.authorizationPolicies),
      peerAuthentications: values(this.peerAuthentications),
    };
  }

  /**
   * Replaces a type's current map; true when anything differs. Only values
   * whose JSON changed are encoded and hashed again: with 100k workloads, a
   * single change would otherwise re-encode every one of them.
   */
  private diff<T>(state: TypeState<T>, next: Map<string, T>): boolean {
    let changed = next.size !== state.current.size;
    const updated = new Map<string, Entry<T>>();
    for (const [name, value] of next) {
      const json = JSON.stringify(value);
      const before = state.current.get(name);
      if (before?.json === json) {
        updated.set(name, { ...before, value });
        continue;
      }
      const resource = state.codec.encode(value);
      const version = versionOf(resource);
      if (before?.version !== version) changed = true;
      updated.set(name, { version, resource, value, json });
    }
    state.current = updated;
    return changed;
  }

  private wire<T>(state: TypeState<T>): Map<string, { version: string; resource: Any }> {
    return new Map([...state.current].map(([name, e]) => [name, { version: e.version, resource: e.resource }]));
  }
}
