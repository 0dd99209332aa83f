// Security policy resources, in Istio's shape and with Istio's meaning, limited
// to what an L4 node proxy can enforce (identities, namespaces, addresses,
// ports). Pure data: what the control plane pushes and the proxy evaluates.
// Translation and validation: control/translate-policy.ts; evaluation:
// proxy/authorization.ts.

/**
 * Policies in this namespace with no selector apply to every workload of the
 * mesh; with a selector, to the matching workloads of every namespace.
 */
import { parseCidr } from './ip-match';

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

/** A policy's name in the store and in logs: "namespace/name". */
export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

function checkPorts(ports: number[] | undefined, field: string): string | undefined {
  const bad = ports?.find((p) => !Number.isInteger(p) || p < 1 || p > 65535);
  return bad === undefined ? undefined : `${field}: port must be 1-65535 (got ${bad})`;
}

function checkBlocks(blocks: string[] | undefined, field: string): string | undefined {
  const bad = blocks?.find((b) => !parseCidr(b));
  return bad === undefined ? undefined : `${field}: not an IPv4/IPv6 address or CIDR (got ${JSON.stringify(bad)})`;
}

/**
 * Checks a policy received as a resource (the control plane validated the
 * manifest already; this guards the agent against a bad or foreign sender).
 */
export function validateAuthorizationPolicy(p: AuthorizationPolicy): string | undefined {
  if (!p.name || !p.namespace) return 'name and namespace are required';
  if (p.action !== 'ALLOW' && p.action !== 'DENY') return `action: must be ALLOW or DENY (got ${JSON.stringify(p.action)})`;
  for (const [i, rule] of p.rules.entries()) {
    for (const [j, f] of rule.from.entries()) {
      const problem =
        checkBlocks(f.source.ipBlocks, `rules[${i}].from[${j}].source.ipBlocks`) ?? checkBlocks(f.source.notIpBlocks, `rules[${i}].from[${j}].source.notIpBlocks`);
      if (problem) return problem;
    }
    for (const [j, t] of rule.to.entries()) {
      const problem = checkPorts(t.operation.ports, `rules[${i}].to[${j}].operation.ports`) ?? checkPorts(t.operation.notPorts, `rules[${i}].to[${j}].operation.notPorts`);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Why a PeerAuthentication received as a resource is not acceptable, or undefined. */
export function validatePeerAuthentication(p: PeerAuthentication): string | undefined {
  if (!p.name || !p.namespace) return 'name and namespace are required';
  if (!['STRICT', 'PERMISSIVE', 'DISABLE'].includes(p.mode)) return `mode: must be STRICT, PERMISSIVE or DISABLE (got ${JSON.stringify(p.mode)})`;
  return undefined;
}

/**
 * The mTLS mode in force for a workload, most specific first: a policy with
 * a matching selector in its namespace, then its namespace's policy without
 * selector, then the mesh-wide one in the root namespace. Default PERMISSIVE.
 */
export function effectiveMtlsMode(workload: { namespace: string; labels: Record<string, string> }, policies: Iterable<PeerAuthentication>): MtlsMode {
  let namespaceWide: MtlsMode | undefined;
  let meshWide: MtlsMode | undefined;
  for (const p of policies) {
    if (p.namespace === workload.namespace) {
      if (p.selector) {
        if (Object.entries(p.selector).every(([k, v]) => workload.labels[k] === v)) return p.mode;
      } else namespaceWide = p.mode;
    } else if (p.namespace === ROOT_NAMESPACE && !p.selector) meshWide = p.mode;
  }
  return namespaceWide ?? meshWide ?? 'PERMISSIVE';
}
