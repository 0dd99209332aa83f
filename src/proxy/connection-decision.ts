// The authorization decision for one connection, in one place. The node
// proxy (same-node endpoints), the tunnel server (the destination side of a
// cross-node connection), the re-check of open connections after a policy
// change, and `sluicectl trace` all call these functions, so what trace
// explains is what the data path does.
import type { Workload } from '../model/resources';
import type { Decision, Destination, Peer, PolicySet } from './authorization';

/**
 * The caller as policy sees it: the source workload's identity (SPIFFE ID
 * without the scheme), its namespace, and the address it connected from.
 * `ip` is the true source address: the pod's own on the same node, the one
 * carried in the tunnel (and checked against the verified identity) across
 * nodes.
 */
export function peerOf(source: Workload | undefined, ip: string): Peer {
  return {
    principal: source?.identity ? source.identity.replace(/^spiffe:\/\//, '') : undefined,
    namespace: source?.namespace,
    ip,
  };
}

/** The peer of a tunnel stream: the verified certificate's SPIFFE ID and the carried source address. */
export function tunnelPeerOf(spiffeId: string, sourceIp: string): Peer {
  return { principal: spiffeId.replace(/^spiffe:\/\//, ''), namespace: /\/ns\/([^/]+)\//.exec(spiffeId)?.[1], ip: sourceIp };
}

/**
 * What the policies select the destination by: its namespace and labels.
 * An endpoint whose workload is unknown is judged as a member of its
 * service's namespace with no labels (only namespace-wide policies apply).
 */
export function destinationOf(workload: Workload | undefined, serviceNamespace: string): Destination {
  return { namespace: workload?.namespace ?? serviceNamespace, labels: workload?.labels ?? {} };
}

/**
 * Allowed or denied, with the deciding policy: Istio's L4 semantics
 * (see authorization.ts). `port` is the destination workload's port (the
 * service's target port), as in Istio's `to.operation.ports`.
 */
export function authorizeConnection(policies: PolicySet, destination: Workload | undefined, serviceNamespace: string, peer: Peer, port: number): Decision {
  return policies.authorize(destinationOf(destination, serviceNamespace), peer, port);
}

/**
 * Checks the source address a tunnel peer claims (HBONE carries it in the
 * CONNECT request's `forwarded: for=` header, RFC 7239): it must be the
 * address of a known workload whose identity is the peer's verified
 * identity. Anything else would let a peer pick the address that `ipBlocks`
 * rules see. (The tunnel's own source address is not compared with the
 * workload's node address: a node may reach another from an address that
 * is not its hostIP.) Returns the reason it is refused, or undefined.
 */
export function checkClaimedSource(claimedIp: string, peerIdentity: string, workloadsWithIp: readonly Workload[]): string | undefined {
  if (workloadsWithIp.length === 0) return `source address ${claimedIp} is not a known workload`;
  if (!workloadsWithIp.some((w) => w.identity === peerIdentity)) return `source address ${claimedIp} does not belong to ${peerIdentity}`;
  return undefined;
}

/** `forwarded: for=10.244.1.2` (RFC 7239 section 5.2; IPv6 in quotes and brackets). */
export function forwardedFor(ip: string): string {
  return ip.includes(':') ? `for="[${ip}]"` : `for=${ip}`;
}

/** The address of the first `for=` of a `forwarded` header, or undefined when there is none or it is malformed. */
export function parseForwardedFor(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value || value.length > 256) return undefined;
  const m = /(?:^|[;,\s])for=(?:"\[([0-9a-fA-F:.]+)\]"|([0-9.]+))(?:$|[;,\s])/i.exec(value);
  return m ? (m[1] ?? m[2]) : undefined;
}
