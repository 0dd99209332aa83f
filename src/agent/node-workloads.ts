// This node's workloads as the data path sees them: the enrolled ones by
// netns cookie (how the proxy names a caller), every local one by pod IP
// (how the tunnel server finds a target), and when each was enrolled with
// the connections it already had then. Recomputed from the resource store
// on every reconcile pass; nothing here touches the kernel.
import type { Logger } from 'pino';
import type { Workload } from '../model/resources';

/** When a workload was enrolled (ISO 8601), and the TCP connections it had open then (counted in the background). */
export interface EnrollmentRecord {
  at: string;
  preexistingConnections?: number;
}

export interface NodeWorkloadsDeps {
  node: string;
  /** The netns cookie of a pod of this node, once its netns is known. */
  cookieOf(uid: string): bigint | undefined;
  /** TCP connections open in a pod's netns now. */
  establishedConnections(uid: string): Promise<number | undefined>;
  logger: Logger;
}

/**
 * The node's workloads, refreshed by refresh(). Enrollment never touches
 * live connections: those a pod opened before it was enrolled keep their
 * direct path, so they are counted for the CLI to say so.
 */
export class NodeWorkloads {
  /** Enrolled workloads of this node by netns cookie. */
  byCookie: ReadonlyMap<bigint, Workload> = new Map();
  /** Every workload of this node by pod IP, enrolled or not. */
  byIp: ReadonlyMap<string, Workload> = new Map();
  /** uid -> when it was enrolled; an entry goes when the workload leaves the mesh. */
  readonly enrolledSince = new Map<string, EnrollmentRecord>();

  constructor(private readonly deps: NodeWorkloadsDeps) {}

  /** The identities of this node's meshed workloads, enrolled or not yet: each needs a workload certificate. */
  identities(workloads: Iterable<Workload>): string[] {
    return [...workloads].filter((w) => w.node === this.deps.node && w.captured && w.identity).map((w) => w.identity);
  }

  /** Recomputes both indexes from all workloads the agent knows, and notes who joined or left the mesh. */
  refresh(workloads: Iterable<Workload>): void {
    const byCookie = new Map<bigint, Workload>();
    const byIp = new Map<string, Workload>();
    for (const w of workloads) {
      if (w.node !== this.deps.node) continue;
      for (const ip of w.ips) byIp.set(ip, w);
      if (!w.captured) continue;
      const cookie = this.deps.cookieOf(w.uid);
      if (cookie !== undefined) byCookie.set(cookie, w);
    }
    this.byCookie = byCookie;
    this.byIp = byIp;
    this.noteChanges(byCookie);
  }

  /** Whether a workload is enrolled now. */
  isEnrolled(uid: string): boolean {
    return this.enrolledSince.has(uid);
  }

  private noteChanges(byCookie: Map<bigint, Workload>): void {
    const log = this.deps.logger;
    const current = new Set([...byCookie.values()].map((w) => w.uid));
    for (const uid of [...this.enrolledSince.keys()]) {
      if (current.has(uid)) continue;
      this.enrolledSince.delete(uid);
      log.info({ uid }, 'workload left the mesh');
    }
    for (const w of byCookie.values()) {
      if (this.enrolledSince.has(w.uid)) continue;
      const entry: EnrollmentRecord = { at: new Date().toISOString() };
      this.enrolledSince.set(w.uid, entry);
      void this.deps.establishedConnections(w.uid).then((n) => {
        entry.preexistingConnections = n;
        log.info({ workload: `${w.namespace}/${w.name}`, preexistingConnections: n }, 'workload enrolled; connections opened before stay as they are');
      });
    }
  }
}
