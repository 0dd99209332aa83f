// Which pods need the mesh, as far as the node can tell without the agent.
//
// The agent keeps a record on the node (`meshed-namespaces.json` in its state
// directory) of what the control plane told it: namespaces with a pod in the
// mesh, namespaces known to be outside it, and this node's pods that opted out.
// The plugin reads it only to decide what to do when the agent cannot be
// reached. Pure, apart from the JSON text the caller reads.

export const MESH_RECORD_VERSION = 1;

export interface MeshRecord {
  version: number;
  node: string;
  /** When the agent last wrote it (ISO 8601). */
  updatedAt: string;
  /** Namespaces with at least one workload in the mesh: their namespace is labelled sluice.dev/mesh=enabled. */
  meshedNamespaces: string[];
  /** Namespaces with a workload outside the mesh that did not opt out itself: the namespace is not labelled. */
  unmeshedNamespaces: string[];
  /** This node's pods (uids) outside the mesh, opted-out pods of meshed namespaces included. */
  unmeshedPods: string[];
}

/** The fields of a workload the record is computed from (a subset of model Workload). */
export interface WorkloadFacts {
  uid: string;
  namespace: string;
  node: string;
  captured: boolean;
  labels: Record<string, string>;
}

/**
 * The record for `node` from the control plane's workloads. A namespace counts
 * as outside the mesh only when one of its pods is not captured without
 * carrying `sluice.dev/mesh: disabled` itself; a namespace whose only pods
 * opted out is in neither list (the plugin cannot rule it out).
 */
export function meshRecordFrom(workloads: Iterable<WorkloadFacts>, node: string, now = new Date()): MeshRecord {
  const meshed = new Set<string>();
  const unmeshed = new Set<string>();
  const pods: string[] = [];
  for (const w of workloads) {
    if (w.captured) meshed.add(w.namespace);
    else if (w.labels['sluice.dev/mesh'] !== 'disabled') unmeshed.add(w.namespace);
    if (!w.captured && w.node === node) pods.push(w.uid);
  }
  for (const ns of meshed) unmeshed.delete(ns);
  return {
    version: MESH_RECORD_VERSION,
    node,
    updatedAt: now.toISOString(),
    meshedNamespaces: [...meshed].sort(),
    unmeshedNamespaces: [...unmeshed].sort(),
    unmeshedPods: pods.sort(),
  };
}

/** Equal apart from `updatedAt`: the agent rewrites the file only when this is false. */
export function sameMeshRecord(a: MeshRecord | undefined, b: MeshRecord): boolean {
  return a !== undefined && JSON.stringify({ ...a, updatedAt: '' }) === JSON.stringify({ ...b, updatedAt: '' });
}

/** Parses the record; undefined when it is not one (an older or newer format, or garbage). */
export function parseMeshRecord(text: string): MeshRecord | undefined {
  try {
    const o = JSON.parse(text) as Partial<MeshRecord>;
    const lists = [o.meshedNamespaces, o.unmeshedNamespaces, o.unmeshedPods];
    if (o.version !== MESH_RECORD_VERSION || lists.some((l) => !Array.isArray(l) || l.some((x) => typeof x !== 'string'))) return undefined;
    return o as MeshRecord;
  } catch {
    return undefined;
  }
}

/**
 * What ADD does for a pod:
 * - `skip`: the mesh never touches it (not a Kubernetes pod, host network, an
 *   excluded namespace): no agent call, no record, never blocked;
 * - `optional`: known to be outside the mesh: reported to the agent when it
 *   answers (so it can be enrolled later without a restart), never blocked;
 * - `required`: meshed, or the plugin cannot rule it out: ADD fails with
 *   "try again later" (code 11) unless the agent confirms the pod.
 */
export type MeshNeed = { kind: 'skip' | 'optional' | 'required'; reason: string };

/**
 * Decides what ADD does from what the node knows without the agent: the
 * plugin configuration's excluded namespaces and the agent's record. Fails
 * closed: a namespace absent from the record, or no readable record at all,
 * is `required`.
 */
export function meshNeed(
  pod: { namespace: string; uid: string } | undefined,
  netns: string,
  excludeNamespaces: readonly string[],
  record: MeshRecord | undefined,
): MeshNeed {
  if (!pod) return { kind: 'skip', reason: 'not a Kubernetes pod (no K8S_POD_NAMESPACE in CNI_ARGS)' };
  if (!netns) return { kind: 'skip', reason: 'no network namespace (host network)' };
  if (excludeNamespaces.includes(pod.namespace)) return { kind: 'skip', reason: `namespace ${pod.namespace} is excluded by the plugin configuration` };
  if (!record) return { kind: 'required', reason: 'the agent\'s record of meshed namespaces is missing or unreadable, so the pod cannot be ruled out' };
  if (pod.uid && record.unmeshedPods.includes(pod.uid)) return { kind: 'optional', reason: 'the pod is outside the mesh' };
  if (record.meshedNamespaces.includes(pod.namespace)) return { kind: 'required', reason: `namespace ${pod.namespace} is meshed` };
  if (record.unmeshedNamespaces.includes(pod.namespace)) return { kind: 'optional', reason: `namespace ${pod.namespace} is not meshed` };
  return { kind: 'required', reason: `namespace ${pod.namespace} is not in the agent's record, so the pod cannot be ruled out` };
}
