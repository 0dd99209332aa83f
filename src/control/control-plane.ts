// The control plane's core: translate the current objects, keep the last
// good version of any object that fails, and publish what changed to the
// xDS server. Sources (manifest files, later the Kubernetes API) call publish().
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { serviceKey, type Service, type Workload } from '../model/resources';
import type { Any } from '../xds/protos';
import { DeltaAdsServer } from '../xds/delta-server';
import { serviceCodec, workloadCodec, type ResourceCodec } from '../xds/resource-types';
import type { SourcedObject } from './kubernetes-objects';
import { translate, type TranslationError } from './translate';

export interface Published {
  version: string;
  changed: boolean;
  errors: TranslationError[];
}

interface TypeState<T> {
  codec: ResourceCodec<T>;
  current: Map<string, { version: string; resource: Any; value: T }>;
}

function versionOf(any: Any): string {
  return createHash('sha256').update(any.value).digest('hex').slice(0, 16);
}

export class ControlPlane {
  readonly server: DeltaAdsServer;
  private readonly workloads: TypeState<Workload> = { codec: workloadCodec, current: new Map() };
  private readonly services: TypeState<Service> = { codec: serviceCodec, current: new Map() };
  private generation = 0;
  lastErrors: TranslationError[] = [];
  lastPublishedAt = '';

  constructor(
    private readonly trustDomain: string,
    private readonly logger: Logger,
  ) {
    this.server = new DeltaAdsServer(logger.child({ component: 'xds' }));
  }

  get version(): string {
    return String(this.generation);
  }

  /** Translates the objects and pushes the differences. Objects in error keep their last good resource. */
  publish(objects: SourcedObject[]): Published {
    const t = translate(objects, '', this.trustDomain);
    const failedServices = new Set(t.errors.filter((e) => e.object.startsWith('Service ')).map((e) => e.object.slice('Service '.length)));
    const services = new Map(t.snapshot.services.map((s) => [serviceKey(s), s]));
    for (const key of failedServices) {
      const kept = this.services.current.get(key);
      if (kept && !services.has(key)) services.set(key, kept.value);
    }
    const workloads = new Map(t.snapshot.workloads.map((w) => [w.uid, w]));
    const changedWorkloads = this.diff(this.workloads, workloads);
    const changedServices = this.diff(this.services, services);
    const changed = changedWorkloads || changedServices;
    if (changed) {
      this.generation++;
      if (changedWorkloads) this.server.setResources(workloadCodec.typeUrl, this.wire(this.workloads), this.version);
      if (changedServices) this.server.setResources(serviceCodec.typeUrl, this.wire(this.services), this.version);
    }
    this.lastErrors = t.errors;
    this.lastPublishedAt = new Date().toISOString();
    for (const e of t.errors) this.logger.error({ source: e.source, object: e.object, field: e.field }, `object rejected, its last good version (if any) keeps being served: ${e.reason}`);
    if (changed) this.logger.info({ version: this.version, workloads: workloads.size, services: services.size }, 'configuration published');
    return { version: this.version, changed, errors: t.errors };
  }

  /** The resources being served, as JSON (render, admin). */
  resources(): { version: string; workloads: Workload[]; services: Service[] } {
    return {
      version: this.version,
      workloads: [...this.workloads.current.values()].map((e) => e.value),
      services: [...this.services.current.values()].map((e) => e.value),
    };
  }

  /** Replaces a type's current map; true when anything differs. */
  private diff<T>(state: TypeState<T>, next: Map<string, T>): boolean {
    let changed = next.size !== state.current.size;
    const updated = new Map<string, { version: string; resource: Any; value: T }>();
    for (const [name, value] of next) {
      const resource = state.codec.encode(value);
      const version = versionOf(resource);
      if (state.current.get(name)?.version !== version) changed = true;
      updated.set(name, { version, resource, value });
    }
    state.current = updated;
    return changed;
  }

  private wire<T>(state: TypeState<T>): Map<string, { version: string; resource: Any }> {
    return new Map([...state.current].map(([name, e]) => [name, { version: e.version, resource: e.resource }]));
  }
}
