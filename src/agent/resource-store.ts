// Everything the agent serves from, whichever source fills it (the control
// plane over xDS, or a local snapshot file). Changes are reported as deltas
// so that a change to one service costs that service, not a full rebuild.
import { policyKey, type AuthorizationPolicy, type PeerAuthentication } from '../model/policy';
import { serviceKey, type Service, type Snapshot, type Workload } from '../model/resources';

export interface StoreDelta {
  /** Keys of services added, changed or removed. */
  services: Set<string>;
  /** Uids of workloads added, changed or removed. */
  workloads: Set<string>;
  /** Authorization or peer authentication policies changed. */
  policies: boolean;
  /** Everything may have changed (start-up, file reload, restored state). */
  full: boolean;
}

/** A delta that changes nothing: no service, no workload, no policy, not a full replacement. */
export function emptyDelta(): StoreDelta {
  return { services: new Set(), workloads: new Set(), policies: false, full: false };
}

/** What is persisted and restored: a snapshot plus the policies. */
export interface StoreContents extends Snapshot {
  authorizationPolicies?: AuthorizationPolicy[];
  peerAuthentications?: PeerAuthentication[];
}

/**
 * The agent's copy of what the control plane (or a snapshot file) serves:
 * workloads, services and policies by name, and the version they came with.
 * Each change records what it changed in the StoreDelta it is given (a full
 * replacement returns one), for the reconciler.
 */
export class ResourceStore {
  readonly workloads = new Map<string, Workload>();
  readonly services = new Map<string, Service>();
  readonly authorizationPolicies = new Map<string, AuthorizationPolicy>();
  readonly peerAuthentications = new Map<string, PeerAuthentication>();
  /** Version of the state as a whole (control plane's system version, or the file's). */
  version = '';

  snapshot(): Snapshot {
    return { version: this.version, workloads: [...this.workloads.values()], services: [...this.services.values()] };
  }

  contents(): StoreContents {
    return {
      ...this.snapshot(),
      authorizationPolicies: [...this.authorizationPolicies.values()],
      peerAuthentications: [...this.peerAuthentications.values()],
    };
  }

  upsertAuthorizationPolicy(p: AuthorizationPolicy, delta: StoreDelta): void {
    this.authorizationPolicies.set(policyKey(p), p);
    delta.policies = true;
  }

  removeAuthorizationPolicy(key: string, delta: StoreDelta): void {
    if (this.authorizationPolicies.delete(key)) delta.policies = true;
  }

  upsertPeerAuthentication(p: PeerAuthentication, delta: StoreDelta): void {
    this.peerAuthentications.set(policyKey(p), p);
    delta.policies = true;
  }

  removePeerAuthentication(key: string, delta: StoreDelta): void {
    if (this.peerAuthentications.delete(key)) delta.policies = true;
  }

  upsertService(s: Service, delta: StoreDelta): void {
    const key = serviceKey(s);
    this.services.set(key, s);
    delta.services.add(key);
  }

  removeService(key: string, delta: StoreDelta): void {
    if (this.services.delete(key)) delta.services.add(key);
  }

  upsertWorkload(w: Workload, delta: StoreDelta): void {
    this.workloads.set(w.uid, w);
    delta.workloads.add(w.uid);
  }

  removeWorkload(uid: string, delta: StoreDelta): void {
    if (this.workloads.delete(uid)) delta.workloads.add(uid);
  }

  /** Replaces everything (static file mode, restored state). */
  replaceAll(snapshot: StoreContents): StoreDelta {
    const delta = emptyDelta();
    delta.full = true;
    delta.policies = true;
    this.workloads.clear();
    this.services.clear();
    this.authorizationPolicies.clear();
    this.peerAuthentications.clear();
    for (const w of snapshot.workloads) this.workloads.set(w.uid, w);
    for (const s of snapshot.services) this.services.set(serviceKey(s), s);
    for (const p of snapshot.authorizationPolicies ?? []) this.authorizationPolicies.set(policyKey(p), p);
    for (const p of snapshot.peerAuthentications ?? []) this.peerAuthentications.set(policyKey(p), p);
    this.version = snapshot.version;
    return delta;
  }
}
