// Which node may obtain which identity. A node agent holds keys only for the
// workloads scheduled on it, so a compromised node cannot impersonate a
// service account that runs elsewhere.
import type { Workload } from '../model/resources';

/** undefined when `node` may obtain a certificate for `identity`, else the reason. */
export type IssuanceAuthorizer = (identity: string, node: string) => string | undefined;

/**
 * Allows an identity on a node only if some workload with that identity is
 * scheduled there. The index is built once: build a new authorizer when the
 * workloads change.
 */
export function nodeScopedAuthorizer(workloads: Iterable<Workload>): IssuanceAuthorizer {
  const nodesByIdentity = new Map<string, Set<string>>();
  for (const w of workloads) {
    // An unscheduled pod (no node yet) grants nothing: '' must never match a caller.
    if (!w.identity || !w.node) continue;
    let nodes = nodesByIdentity.get(w.identity);
    if (!nodes) nodesByIdentity.set(w.identity, (nodes = new Set()));
    nodes.add(w.node);
  }
  return (identity, node) => {
    if (!node) return 'the requesting node has no name';
    if (nodesByIdentity.get(identity)?.has(node)) return undefined;
    return `no workload with identity ${identity} is scheduled on ${node}`;
  };
}
