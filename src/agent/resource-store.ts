// Everything the agent serves from, whichever source fills it (the control
// plane over xDS, or a local snapshot file). Changes are reported as deltas
// so that a change to one service costs that service, not a full rebuild.
import { serviceKey, type Service, type Snapshot, type Workload } from '../model/resources';

export interface StoreDelta {
  /** Keys of services added, changed or removed. */
  services: Set<string>;
  /** Uids of workloads added, changed or removed. */
  workloads: Set<string>;
  /** Everything may have changed (start-up, file reload, restored state). */
  full: boolean;
}

export function emptyDelta(): StoreDelta {
  return { services: new Set(), workloads: new Set(), full: false };
}

export class ResourceStore {
  readonly workloads = new Map<string, Workload>();
  readonly services = new Map<string, Service>();
  /** Version of the state as a whole (control plane's system version, or the file's). */
  version = '';

  snapshot(): Snapshot {
    return { version: this.version, workloads: [...this.workloads.values()], services: [...this.services.values()] };
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
  replaceAll(snapshot: Snapshot): StoreDelta {
    const delta = emptyDelta();
    delta.full = true;
    this.workloads.clear();
    this.services.clear();
    for (const w of snapshot.workloads) this.workloads.set(w.uid, w);
    for (const s of snapshot.services) this.services.set(serviceKey(s), s);
    this.version = snapshot.version;
    return delta;
  }
}
