// SPIFFE IDs of workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service account>.
// Parsing is strict because the ID is what certificates are issued for and
// what authorization policies match: two spellings of one identity must not
// exist, so anything the SPIFFE spec or Kubernetes naming would not produce
// is refused rather than normalised.
import { dns1123LabelProblem, dns1123SubdomainProblem } from '../model/kubernetes-names';
import { spiffeId } from '../model/resources';

/** The parts of a workload SPIFFE ID, spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const SCHEME = 'spiffe://';
/** SPIFFE spec: an ID is at most 2048 bytes, a trust domain at most 255 characters. */
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
// SPIFFE spec: trust domains are lowercase letters, digits, '.', '-' and '_'.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/** undefined when the trust domain is valid, else why not. */
export function validateTrustDomain(trustDomain: string): string | undefined {
  if (trustDomain === '') return 'trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return `trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (!TRUST_DOMAIN.test(trustDomain)) return `trust domain "${trustDomain}" may contain only lowercase letters, digits, ".", "-" and "_"`;
  return undefined;
}

/** The parts of a workload SPIFFE ID, or the reason it is not one. */
export function parseSpiffeId(s: string): SpiffeId | string {
  if (s.length > MAX_ID_LENGTH) return `SPIFFE ID is longer than ${MAX_ID_LENGTH} characters`;
  if (!s.startsWith(SCHEME)) return `"${s}" is not a SPIFFE ID: it must start with "${SCHEME}"`;
  const rest = s.slice(SCHEME.length);
  if (/[?#]/.test(rest)) return `"${s}": a SPIFFE ID has no query or fragment`;
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  // Userinfo and ports are forbidden by the spec; the character check below catches them,
  // but saying so directly is clearer.
  if (trustDomain.includes('@') || trustDomain.includes(':')) return `"${s}": the trust domain may not carry a user or a port`;
  const tdProblem = validateTrustDomain(trustDomain);
  if (tdProblem) return `"${s}": ${tdProblem}`;
  const segments = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return `"${s}": the path must be /ns/<namespace>/sa/<service account>`;
  }
  const [, namespace, , serviceAccount] = segments;
  // Kubernetes: a namespace is a DNS-1123 label, a service account a DNS-1123 subdomain.
  if (dns1123LabelProblem(namespace)) return `"${s}": namespace "${namespace}" is not a valid Kubernetes namespace name`;
  if (dns1123SubdomainProblem(serviceAccount)) {
    return `"${s}": service account "${serviceAccount}" is not a valid Kubernetes service account name`;
  }
  return { trustDomain, namespace, serviceAccount };
}

/** The ID of `id`'s parts; throws InvalidIdentityError (model/resources.ts) when a part is not valid. */
export function formatSpiffeId(id: SpiffeId): string {
  return spiffeId(id.trustDomain, id.namespace, id.serviceAccount);
}

/** The form authorization policies use in `principals`: the ID without its scheme. */
export function principalOf(id: string): string {
  return id.startsWith(SCHEME) ? id.slice(SCHEME.length) : id;
}

/** The identity the control plane serves gRPC (xDS, certificates) with. */
export function controlPlaneIdentity(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/sluice-system/sa/sluice-control`;
}
