// The one translation from Kubernetes-shaped objects (Namespaces, Pods,
// Services) to the resources agents serve from (Workloads, Services). Used by
// the simulated cluster now and by the control plane's sources. Every object
// is validated on its own first (object-validation.ts): translation only
// sees objects Kubernetes would have accepted.
import * as net from 'node:net';
import { defaultClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import { DEFAULT_TRUST_DOMAIN, defaultLoadBalancing, spiffeId, type Endpoint, type Service, type ServicePort, type Snapshot, type Workload } from '../model/resources';
import { MESH_LABEL, objectName, type KubeService, type Pod, type SourcedObject } from './kubernetes-objects';
import { CORE_KINDS, describeValue, validateObject } from './object-validation';

export interface TranslationError {
  source: string;
  object: string;
  field: string;
  reason: string;
}

export function formatTranslationError(e: TranslationError): string {
  return `${e.source}: ${e.object}: ${e.field}: ${e.reason}`;
}

export interface Translation {
  snapshot: Snapshot;
  errors: TranslationError[];
}

/** The ranges of sluice-control's default flags (--service-cidr 10.96.0.0/12, --pod-cidr 10.244.0.0/16). */
const DEFAULT_RANGES = defaultClusterRanges();

function namespaceOf(o: { metadata: { namespace?: string } }): string {
  return o.metadata.namespace || 'default';
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** "serving.knative.dev/v1" Service is someone else's kind; core kinds are "v1" (anything else there is refused). */
function isOtherGroup(apiVersion: unknown): boolean {
  return typeof apiVersion === 'string' && apiVersion.includes('/');
}

export function podUid(pod: Pod): string {
  return pod.metadata.uid || `${namespaceOf(pod)}/${pod.metadata.name}`;
}

/**
 * Translates what it can of the v1 Namespaces, Pods and Services among
 * `objects` (other kinds and API versions are ignored); every object that
 * cannot be used is an error naming file, object (kind namespace/name),
 * field and value, in the order of `objects`, and the rest is translated.
 * Cluster IPs must lie in `ranges` (see clusterIPProblem). Never throws on
 * what the objects hold.
 */
export function translate(objects: SourcedObject[], version: string, trustDomain = DEFAULT_TRUST_DOMAIN, ranges: ClusterRanges = DEFAULT_RANGES): Translation {
  const errors: (TranslationError & { index: number })[] = [];
  const position = new Map<SourcedObject, number>(objects.map((s, i) => [s, i]));
  const fail = (s: SourcedObject, field: string, reason: string) =>
    errors.push({ source: s.source, object: objectName(s.object), field, reason, index: position.get(s) ?? 0 });

  const meshNamespaces = new Set<string>();
  const pods: { pod: Pod; source: SourcedObject }[] = [];
  const services: { svc: KubeService; source: SourcedObject }[] = [];
  for (const s of objects) {
    const o = s.object;
    if (!CORE_KINDS.has(o.kind) || isOtherGroup(o.apiVersion)) continue;
    const problems = validateObject(s, ranges);
    if (problems.length) {
      for (const p of problems) fail(s, p.field, p.reason);
      continue;
    }
    if (o.kind === 'Namespace') {
      if (o.metadata.labels?.[MESH_LABEL] === 'enabled') meshNamespaces.add(o.metadata.name);
    } else if (o.kind === 'Pod') pods.push({ pod: o as Pod, source: s });
    else services.push({ svc: o as KubeService, source: s });
  }

  const workloads: Workload[] = [];
  const workloadPods = new Map<string, Pod>();
  for (const { pod, source } of pods) {
    const ip = pod.status?.podIP;
    if (!pod.spec.nodeName) {
      fail(source, 'spec.nodeName', 'required (pods are placed on a node explicitly)');
      continue;
    }
    if (!ip) continue; // not running yet: no workload to serve
    const ns = namespaceOf(pod);
    // As the API server defaults it: the deprecated serviceAccount field stands in for an empty serviceAccountName.
    const serviceAccount = pod.spec.serviceAccountName || pod.spec.serviceAccount || 'default';
    let identity: string;
    try {
      identity = spiffeId(trustDomain, ns, serviceAccount);
    } catch (err) {
      // Validation refuses such names first; the identity builder refuses them again.
      fail(source, 'spec.serviceAccountName', (err as Error).message);
      continue;
    }
    const w: Workload = {
      uid: podUid(pod),
      name: pod.metadata.name,
      namespace: ns,
      node: pod.spec.nodeName,
      ips: [ip],
      serviceAccount,
      labels: { ...(pod.metadata.labels ?? {}) },
      identity,
      captured: meshNamespaces.has(ns) && pod.metadata.labels?.[MESH_LABEL] !== 'disabled',
      ready: (pod.status?.phase ?? 'Running') === 'Running',
      nodeAddress: pod.status?.hostIP && net.isIP(pod.status.hostIP) ? pod.status.hostIP : '',
    };
    workloads.push(w);
    workloadPods.set(w.uid, pod);
  }

  const out: Service[] = [];
  const vipOwner = new Map<string, string>();
  for (const { svc, source } of services) {
    const spec = svc.spec;
    const ns = namespaceOf(svc);
    const ips = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
    if (ips.length === 0 || ips[0] === 'None') {
      fail(source, 'spec.clusterIP', 'required (headless services are not supported)');
      continue;
    }
    const taken = ips.find((ip) => vipOwner.has(ip));
    if (taken) {
      fail(source, 'spec.clusterIP', `${taken} is already used by ${vipOwner.get(taken)}`);
      continue;
    }
    if (!spec.ports?.length) {
      fail(source, 'spec.ports', 'at least one port is required');
      continue;
    }
    const selected = spec.selector
      ? workloads.filter((w) => w.namespace === ns && matches(spec.selector!, w.labels))
      : [];
    const ports: ServicePort[] = [];
    let portError = false;
    for (const [i, p] of spec.ports.entries()) {
      const field = `spec.ports[${i}]`;
      if ((p.protocol ?? 'TCP') !== 'TCP') {
        fail(source, `${field}.protocol`, `only TCP is supported (got ${describeValue(p.protocol)})`);
        portError = true;
        continue;
      }
      const target = resolveTargetPort(p.targetPort ?? p.port, selected.map((w) => workloadPods.get(w.uid)!), p.port);
      if (typeof target === 'string') {
        fail(source, `${field}.targetPort`, target);
        portError = true;
        continue;
      }
      ports.push({ name: p.name ?? '', port: p.port, targetPort: target });
    }
    if (portError) continue;
    const endpoints: Endpoint[] = selected.map((w) => ({ workloadUid: w.uid, address: w.ips[0], node: w.node, ready: w.ready }));
    for (const ip of ips) vipOwner.set(ip, `${ns}/${svc.metadata.name}`);
    out.push({ name: svc.metadata.name, namespace: ns, clusterIPs: ips, ports, endpoints, loadBalancing: { ...defaultLoadBalancing } });
  }
  errors.sort((a, b) => a.index - b.index);
  return { snapshot: { version, workloads, services: out }, errors: errors.map(({ index: _, ...e }) => e) };
}

/** A named port with no selected pod resolves to the service port: there is no endpoint to reach anyway. */
function resolveTargetPort(target: number | string, pods: Pod[], fallback: number): number | string {
  if (typeof target === 'number') {
    return Number.isInteger(target) && target >= 1 && target <= 65535 ? target : `must be an integer 1-65535 (got ${target})`;
  }
  if (/^\d+$/.test(target)) return resolveTargetPort(Number(target), pods, fallback);
  const found = new Set<number>();
  for (const pod of pods) {
    for (const c of pod.spec.containers ?? []) for (const p of c.ports ?? []) if (p.name === target) found.add(p.containerPort);
  }
  if (found.size === 0) return pods.length ? `no selected pod has a container port named ${JSON.stringify(target)}` : fallback;
  if (found.size > 1) return `named port ${JSON.stringify(target)} maps to different numbers (${[...found].join(', ')}) across pods`;
  return [...found][0];
}
