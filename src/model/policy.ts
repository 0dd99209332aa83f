// Security policy resources, in Istio's shape and with Istio's meaning, limited
// to what an L4 node proxy can enforce (identities, namespaces, addresses,
// ports). Pure data: what the control plane pushes and the proxy evaluates.
// Translation and validation: control/translate-policy.ts; evaluation:
// proxy/authorization.ts.

/**
 * Policies in this namespace with no selector apply to every workload of the
 * mesh; with a selector, to the matching workloads of every namespace.
 */
export const ROOT_NAMESPACE = 'sluice-system';

export type AuthorizationAction = 'ALLOW' | 'DENY';

/**
 * Who connects. Each present field must match (AND); absent or empty lists do
 * not constrain (as in Istio, where an empty repeated field is unset).
 * Values of principals and namespaces are exact, "*", "prefix*" or "*suffix".
 */
export interface Source {
  /** SPIFFE identities without the scheme: "<trust-domain>/ns/<namespace>/sa/<service-account>". */
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  /** IPv4/IPv6 addresses or CIDRs. */
  ipBlocks?: string[];
  notIpBlocks?: string[];
}

/** What is connected to: the destination port. */
export interface Operation {
  ports?: number[];
  notPorts?: number[];
}

/**
 * Matches a connection when one of `from` matches (OR) and one of `to`
 * matches (OR). An empty list matches anything, so `{ from: [], to: [] }`
 * matches every connection.
 */
export interface Rule {
  from: { source: Source }[];
  to: { operation: Operation }[];
}

/**
 * A policy matches a connection when one of its rules does; with no rules it
 * matches nothing. So ALLOW with no rules allows nothing (it still makes the
 * workload deny by default), and DENY with no rules denies nothing.
 */
export interface AuthorizationPolicy {
  name: string;
  namespace: string;
  /** Labels the destination workload must have; absent = every workload of the namespace (or of the mesh, in ROOT_NAMESPACE). */
  selector?: Record<string, string>;
  action: AuthorizationAction;
  rules: Rule[];
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** Whether a workload accepts plaintext. Modelled and validated only; not enforced yet. */
export interface PeerAuthentication {
  name: string;
  namespace: string;
  selector?: Record<string, string>;
  mode: MtlsMode;
}

export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}
