// The resources an agent serves from: the same shapes the control plane
// pushes over xDS (sluice.v1.Workload, sluice.v1.Service). Pure data.
import { dns1123LabelProblem, dns1123SubdomainProblem } from './kubernetes-names';

export interface Workload {
  uid: string;
  name: string;
  namespace: string;
  node: string;
  ips: string[];
  serviceAccount: string;
  labels: Record<string, string>;
  /** SPIFFE identity: spiffe://<trust domain>/ns/<namespace>/sa/<service account>. */
  identity: string;
  /** In the mesh: its namespace is labelled sluice.dev/mesh=enabled and the pod did not opt out. */
  captured: boolean;
  ready: boolean;
  /** The node's address, where its agent accepts tunnels on 15008 (Pod status.hostIP); '' if unknown. */
  nodeAddress: string;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: number;
}

export interface Endpoint {
  workloadUid: string;
  address: string;
  node: string;
  /** New connections may go here. A terminating endpoint stays listed, not ready: open connections are kept. */
  ready: boolean;
  /**
   * This endpoint's own target port per service port (key: the service port
   * number as a string). A Service's named targetPort resolves per pod, so
   * pods of two versions may listen on different numbers. When present the
   * endpoint serves only the service ports listed; absent, every port at its
   * ServicePort.targetPort.
   */
  targetPorts?: Record<string, number>;
}

/**
 * The port to connect to on `endpoint` for service port `port`, or
 * undefined when the endpoint does not serve that port (see
 * Endpoint.targetPorts).
 */
export function endpointTargetPort(endpoint: Endpoint, port: ServicePort): number | undefined {
  return endpoint.targetPorts ? endpoint.targetPorts[String(port.port)] : port.targetPort;
}

export interface LoadBalancing {
  /** least-request: power of two random choices by active connections. */
  mode: 'least-request';
  connectTimeoutMs: number;
  /** Endpoints tried in all before the client sees a failure. */
  maxConnectAttempts: number;
}

export interface Service {
  name: string;
  namespace: string;
  clusterIPs: string[];
  ports: ServicePort[];
  endpoints: Endpoint[];
  loadBalancing: LoadBalancing;
}

export interface Snapshot {
  /** Opaque version of this state (the control plane's, or the file's). */
  version: string;
  workloads: Workload[];
  services: Service[];
}

export const defaultLoadBalancing: LoadBalancing = Object.freeze({
  mode: 'least-request',
  connectTimeoutMs: 1000,
  maxConnectAttempts: 3,
});

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** SPIFFE spec: trust domains are lowercase letters, digits, ".", "-" and "_", at most 255 characters. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/** An identity whose parts are not valid Kubernetes names (see spiffeId). */
export class InvalidIdentityError extends Error {}

/**
 * spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
 * Throws InvalidIdentityError unless the namespace is a DNS-1123 label and
 * the service account a DNS-1123 subdomain (IsDNS1123Label /
 * IsDNS1123Subdomain in k8s.io/apimachinery validation.go), and the trust
 * domain is one the SPIFFE spec allows: a part such as "x/../../ns/trusted"
 * must never become another workload's identity. Callers validate first;
 * this is the last line.
 */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const problem =
    typeof trustDomain !== 'string' || !TRUST_DOMAIN.test(trustDomain)
      ? `trust domain ${JSON.stringify(trustDomain)} is not a valid SPIFFE trust domain`
      : typeof namespace !== 'string' || dns1123LabelProblem(namespace)
        ? `namespace ${JSON.stringify(namespace)} is not a DNS-1123 label`
        : typeof serviceAccount !== 'string' || dns1123SubdomainProblem(serviceAccount)
          ? `service account ${JSON.stringify(serviceAccount)} is not a DNS-1123 subdomain`
          : undefined;
  if (problem) throw new InvalidIdentityError(`cannot build a SPIFFE ID: ${problem}`);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** A service's name in the store, the maps' bookkeeping and logs: "namespace/name". */
export function serviceKey(s: { namespace: string; name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/**
 * Where a captured connection was going, as the kernel recorded it at
 * connect(): the VIP (or captured pod address) and port the pod dialled,
 * and the netns cookie of the pod that dialled it. The node proxy decides
 * from it; the kernel's record adds its service id (src/datapath/map-codecs.ts).
 */
export interface OriginalDestination {
  address: string;
  port: number;
  netnsCookie: bigint;
}
