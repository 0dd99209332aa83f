// The subset of Kubernetes object shapes sluice reads. Anything else in a
// manifest is ignored; what is read is checked by translate.ts.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface Container {
  name?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  workingDir?: string;
  ports?: ContainerPort[];
}

export interface PodSpec {
  nodeName?: string;
  serviceAccountName?: string;
  containers?: Container[];
}

export interface PodStatus {
  podIP?: string;
  hostIP?: string;
  phase?: string;
}

export interface ServiceSpec {
  clusterIP?: string;
  clusterIPs?: string[];
  selector?: Record<string, string>;
  ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

export interface Pod extends KubeObject {
  kind: 'Pod';
  spec: PodSpec;
  status?: PodStatus;
}

export interface KubeService extends KubeObject {
  kind: 'Service';
  spec: ServiceSpec;
}

/** Where an object came from, for error messages: "apps.yaml (document 3)". */
export interface SourcedObject {
  object: KubeObject;
  source: string;
  /** Directory of the manifest file: relative paths in a pod's command resolve against it. */
  dir?: string;
}

export function objectName(o: KubeObject): string {
  const ns = o.metadata?.namespace;
  return `${o.kind} ${ns ? `${ns}/` : ''}${o.metadata?.name ?? '(unnamed)'}`;
}

export const MESH_LABEL = 'sluice.dev/mesh';
