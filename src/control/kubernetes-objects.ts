// The subset of Kubernetes object shapes sluice reads. Anything else in a
// manifest is ignored; what is read is checked by object-validation.ts
// before translate.ts and translate-policy.ts see it: until then these types
// are what an object claims to be, not what it is.

/** The metadata fields sluice reads (Kubernetes ObjectMeta). */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  /** Counts changes of the spec (the API server's); a status reports the one it describes. */
  generation?: number;
  /** Set when deletion began: a pod with it is terminating. */
  deletionTimestamp?: string;
}

/** A container's port (core/v1 ContainerPort); protocol TCP when absent. */
export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

/** The container fields sluice reads (core/v1 Container). */
export interface Container {
  name?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  workingDir?: string;
  ports?: ContainerPort[];
}

/** The pod spec fields sluice reads (core/v1 PodSpec). */
export interface PodSpec {
  nodeName?: string;
  serviceAccountName?: string;
  /** Deprecated alias of serviceAccountName, still honoured by Kubernetes when that is empty. */
  serviceAccount?: string;
  /** The pod shares its node's network namespace (and address): it can never be enrolled. */
  hostNetwork?: boolean;
  containers?: Container[];
}

/** The pod status fields sluice reads (core/v1 PodStatus). */
export interface PodStatus {
  podIP?: string;
  hostIP?: string;
  phase?: string;
  /** The kubelet's conditions; sluice reads type "Ready" (status "True", "False" or "Unknown"). */
  conditions?: { type: string; status: string }[];
}

/** The Service spec fields sluice reads (core/v1 ServiceSpec); a targetPort may be a number or a container port name. */
export interface ServiceSpec {
  /** ClusterIP (default), NodePort, LoadBalancer or ExternalName. */
  type?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  selector?: Record<string, string>;
  ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
}

/** Any Kubernetes object as read from a manifest or the API: apiVersion, kind, metadata; spec and status unchecked. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

/** A core/v1 Pod. */
export interface Pod extends KubeObject {
  kind: 'Pod';
  spec: PodSpec;
  status?: PodStatus;
}

/** A core/v1 Service. */
export interface KubeService extends KubeObject {
  kind: 'Service';
  spec: ServiceSpec;
}

/** discovery.k8s.io/v1 EndpointSlice: the endpoints of one Service (label kubernetes.io/service-name), as the API says. */
export interface EndpointSlice extends KubeObject {
  kind: 'EndpointSlice';
  addressType: string;
  endpoints?: {
    addresses: string[];
    /** nil ready means unknown, to be taken as ready; nil serving is ready; nil terminating is false. */
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    nodeName?: string;
    targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
  }[];
  /** Target ports of this slice's endpoints, by service port name ('' or absent: the unnamed port). */
  ports?: { name?: string; port?: number | null; protocol?: string }[];
}

export const ENDPOINT_SLICE_API_VERSION = 'discovery.k8s.io/v1';
/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Where an object came from, for error messages: "apps.yaml (document 3)". */
export interface SourcedObject {
  object: KubeObject;
  source: string;
  /** Directory of the manifest file: relative paths in a pod's command resolve against it. */
  dir?: string;
}

/**
 * "Service shop/web", for messages. Safe on any object (an invalid one is
 * being reported): a name or namespace that is not a string shows as
 * "(unnamed)" / is left out, a long one is cut short.
 */
export function objectName(o: KubeObject): string {
  const part = (v: unknown) => (typeof v === 'string' && v !== '' ? (v.length > 80 ? `${v.slice(0, 80)}...` : v) : undefined);
  const meta = o.metadata !== null && typeof o.metadata === 'object' ? o.metadata : undefined;
  const ns = part(meta?.namespace);
  return `${String(o.kind)} ${ns ? `${ns}/` : ''}${part(meta?.name) ?? '(unnamed)'}`;
}

export const MESH_LABEL = 'sluice.dev/mesh';
