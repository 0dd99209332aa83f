// The one translation from Kubernetes-shaped objects (Namespaces, Pods,
// Services, EndpointSlices) to the resources agents serve from (Workloads,
// Services), whichever source the objects come from (manifest files, the
// Kubernetes API, the simulated cluster). Every object is validated on its
// own first (object-validation.ts): translation only sees objects
// Kubernetes would have accepted. What a valid object asks for and sluice
// cannot serve (a UDP port, an IPv6 cluster IP, a hostNetwork pod in a mesh
// namespace, ...) is a warning: served in part, never dropped silently.
import * as net from 'node:net';
import { defaultClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import { DEFAULT_TRUST_DOMAIN, defaultLoadBalancing, spiffeId, type Endpoint, type Service, type ServicePort, type Snapshot, type Workload } from '../model/resources';
import {
  ENDPOINT_SLICE_API_VERSION,
  MESH_LABEL,
  SERVICE_NAME_LABEL,
  objectName,
  type EndpointSlice,
  type KubeService,
  type Pod,
  type SourcedObject,
} from './kubernetes-objects';
import { CORE_KINDS, validateObject } from './object-validation';

/**
 * A refused object field, or a warning: where the object came from ("apps.yaml
 * (document 3)"), the object ("Service shop/web"), the field ("spec.ports[0]")
 * and why.
 */
export interface TranslationError {
  source: string;
  object: string;
  field: string;
  reason: string;
}

/** "source: object: field: reason", one line per refused object. */
export function formatTranslationError(e: TranslationError): string {
  return `${e.source}: ${e.object}: ${e.field}: ${e.reason}`;
}

/** What translate() made of the objects: the Workloads and Services agents serve from, and what was refused or not served. */
export interface Translation {
  snapshot: Snapshot;
  /** Objects refused (invalid, or unusable as a whole): none of them is served. */
  errors: TranslationError[];
  /** Valid objects served in part or not at all because sluice cannot serve what they ask for; same shape as errors. */
  warnings: TranslationError[];
}

/**
 * Where a Service's endpoints come from:
 *   - 'pod-selectors': the pods its selector picks, ready by the pod's Ready
 *     condition (manifest files and the sim, which have no EndpointSlices);
 *   - 'endpoint-slices': what its discovery.k8s.io/v1 EndpointSlices
 *     (label kubernetes.io/service-name) say, with their ready, serving and
 *     terminating conditions, as kube-proxy reads them (the Kubernetes API).
 */
export type EndpointSource = 'pod-selectors' | 'endpoint-slices';

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

/** A pod's uid, or "namespace/name" for a manifest pod without one. */
export function podUid(pod: Pod): string {
  return pod.metadata.uid || `${namespaceOf(pod)}/${pod.metadata.name}`;
}

/**
 * Whether new connections may go to a pod, as the endpoints controller
 * decides (podutil.IsPodReady): not being deleted, phase Running, and its
 * Ready condition "True". A pod with no conditions at all (a hand-written
 * manifest) is ready when Running (or when it states no phase).
 */
export function podReady(pod: Pod): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  if ((pod.status?.phase ?? 'Running') !== 'Running') return false;
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  return ready ? ready.status === 'True' : true;
}

/** One endpoint before its ports are settled: its target port per service port it serves. */
interface Candidate {
  endpoint: Omit<Endpoint, 'targetPorts'>;
  ports: Map<number, number>;
}

/**
 * Translates what it can of the v1 Namespaces, Pods and Services and the
 * discovery.k8s.io/v1 EndpointSlices among `objects` (other kinds and API
 * versions are ignored). Every object that cannot be used is an error
 * naming source, object (kind namespace/name), field and value, in the order
 * of `objects`; what a valid object holds that sluice cannot serve is a
 * warning (see Translation); the rest is translated:
 *   - a pod without an IP (not started) is not a workload yet; a
 *     hostNetwork pod is a workload that is never enrolled;
 *   - a Service serves its IPv4 cluster IP and its TCP ports; headless and
 *     ExternalName Services have no VIP (their pods stay workloads);
 *   - endpoints per `endpointSource`; a named targetPort resolves per
 *     endpoint (Endpoint.targetPorts), as kube-proxy does.
 * Cluster IPs must lie in `ranges` (see clusterIPProblem). Never throws on
 * what the objects hold.
 */
export function translate(
  objects: SourcedObject[],
  version: string,
  trustDomain = DEFAULT_TRUST_DOMAIN,
  ranges: ClusterRanges = DEFAULT_RANGES,
  endpointSource: EndpointSource = 'pod-selectors',
): Translation {
  const errors: (TranslationError & { index: number })[] = [];
  const warnings: (TranslationError & { index: number })[] = [];
  const position = new Map<SourcedObject, number>(objects.map((s, i) => [s, i]));
  const entry = (s: SourcedObject, field: string, reason: string) => ({ source: s.source, object: objectName(s.object), field, reason, index: position.get(s) ?? 0 });
  const fail = (s: SourcedObject, field: string, reason: string) => errors.push(entry(s, field, reason));
  const warn = (s: SourcedObject, field: string, reason: string) => warnings.push(entry(s, field, reason));

  const meshNamespaces = new Set<string>();
  const pods: { pod: Pod; source: SourcedObject }[] = [];
  const services: { svc: KubeService; source: SourcedObject }[] = [];
  const slices: { slice: EndpointSlice; source: SourcedObject }[] = [];
  for (const s of objects) {
    const o = s.object;
    const isSlice = o.kind === 'EndpointSlice' && o.apiVersion === ENDPOINT_SLICE_API_VERSION;
    if (!isSlice && (!CORE_KINDS.has(o.kind) || isOtherGroup(o.apiVersion))) continue;
    const problems = validateObject(s, ranges);
    if (problems.length) {
      for (const p of problems) fail(s, p.field, p.reason);
      continue;
    }
    if (o.kind === 'Namespace') {
      if (o.metadata.labels?.[MESH_LABEL] === 'enabled') meshNamespaces.add(o.metadata.name);
    } else if (o.kind === 'Pod') pods.push({ pod: o as Pod, source: s });
    else if (isSlice) slices.push({ slice: o as EndpointSlice, source: s });
    else services.push({ svc: o as KubeService, source: s });
  }

  const workloads: Workload[] = [];
  const workloadPods = new Map<string, Pod>();
  const workloadsByName = new Map<string, Workload>();
  const workloadsByUid = new Map<string, Workload>();
  for (const { pod, source } of pods) {
    const ip = pod.status?.podIP;
    if (!ip) continue; // not started yet (or not scheduled): no address, no workload to serve
    if (!pod.spec.nodeName) {
      fail(source, 'spec.nodeName', 'required (a pod with an IP runs on a node)');
      continue;
    }
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
    const inMesh = meshNamespaces.has(ns) && pod.metadata.labels?.[MESH_LABEL] !== 'disabled';
    const hostNetwork = pod.spec.hostNetwork === true;
    if (inMesh && hostNetwork) {
      warn(source, 'spec.hostNetwork', "true: the pod shares its node's network namespace and address, so it is not enrolled (its own connections are not captured)");
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
      captured: inMesh && !hostNetwork,
      ready: podReady(pod),
      nodeAddress: pod.status?.hostIP && net.isIP(pod.status.hostIP) ? pod.status.hostIP : '',
    };
    workloads.push(w);
    workloadPods.set(w.uid, pod);
    workloadsByName.set(`${ns}/${w.name}`, w);
    workloadsByUid.set(w.uid, w);
  }

  const slicesOf = new Map<string, { slice: EndpointSlice; source: SourcedObject }[]>();
  for (const entry of slices) {
    const owner = entry.slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!owner) continue; // not a Service's slice (a mirror or a hand-made one): no Service reads it
    if (entry.slice.addressType === 'FQDN') {
      warn(entry.source, 'addressType', 'FQDN endpoints are not served (only IPv4 addresses)');
      continue;
    }
    const key = `${namespaceOf(entry.slice)}/${owner}`;
    slicesOf.set(key, [...(slicesOf.get(key) ?? []), entry]);
  }

  const out: Service[] = [];
  const vipOwner = new Map<string, string>();
  for (const { svc, source } of services) {
    const spec = svc.spec;
    const ns = namespaceOf(svc);
    if (spec.type === 'ExternalName') {
      warn(source, 'spec.type', 'ExternalName: a DNS alias without a cluster IP, nothing to capture');
      continue;
    }
    const listed = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
    if (listed.length === 0 || listed[0] === 'None') {
      // Headless: DNS answers with the pods' own addresses; connections to them are not captured.
      warn(source, 'spec.clusterIP', listed[0] === 'None' ? 'headless ("None"): no virtual IP to capture; clients reach its pods at their own addresses, outside sluice' : 'no cluster IP allocated: no virtual IP to capture');
      continue;
    }
    const ipField = (i: number) => (spec.clusterIPs?.length ? `spec.clusterIPs[${i}]` : 'spec.clusterIP');
    const ips: string[] = [];
    listed.forEach((ip, i) => {
      if (net.isIPv4(ip)) ips.push(ip);
      else warn(source, ipField(i), `${ip}: IPv6 cluster IPs are not served yet (IPv4 only): connections to it are not captured`);
    });
    if (ips.length === 0) continue;
    const taken = ips.find((ip) => vipOwner.has(ip));
    if (taken) {
      fail(source, 'spec.clusterIP', `${taken} is already used by ${vipOwner.get(taken)}`);
      continue;
    }
    if (!spec.ports?.length) {
      fail(source, 'spec.ports', 'at least one port is required');
      continue;
    }
    const tcpPorts: { index: number; name: string; port: number; targetPort: number | string }[] = [];
    for (const [i, p] of spec.ports.entries()) {
      const protocol = p.protocol ?? 'TCP';
      if (protocol !== 'TCP') {
        warn(source, `spec.ports[${i}].protocol`, `${protocol} port ${p.port} is not served (sluice relays TCP only): its traffic is not captured`);
        continue;
      }
      const t = p.targetPort;
      // IntOrString: absent (or 0) is the port itself; "8080" is a number.
      const targetPort = t === undefined || t === 0 || t === '' ? p.port : typeof t === 'string' && /^[0-9]+$/.test(t) ? Number(t) : t;
      tcpPorts.push({ index: i, name: p.name ?? '', port: p.port, targetPort });
    }
    if (tcpPorts.length === 0) {
      warn(source, 'spec.ports', 'no TCP port: the Service is not served');
      continue;
    }

    let candidates: Candidate[];
    if (endpointSource === 'endpoint-slices') {
      const found = sliceCandidates(slicesOf.get(`${ns}/${svc.metadata.name}`) ?? [], tcpPorts, workloadsByUid, workloadsByName);
      if (found.unknown.length) {
        const shown = found.unknown.slice(0, 5).join(', ') + (found.unknown.length > 5 ? `, ... (${found.unknown.length} in all)` : '');
        if (found.candidates.length === 0) {
          warn(source, 'endpoints', `its endpoints (${shown}) are not pods sluice knows: the Service is not served, its clients connect as without sluice`);
          continue;
        }
        warn(source, 'endpoints', `endpoints that are not pods sluice knows are left out: ${shown}`);
      }
      candidates = found.candidates;
    } else {
      const selected = spec.selector ? workloads.filter((w) => w.namespace === ns && matches(spec.selector!, w.labels)) : [];
      candidates = selected.map((w) => ({
        endpoint: { workloadUid: w.uid, address: w.ips[0], node: w.node, ready: w.ready },
        ports: podPorts(workloadPods.get(w.uid)!, tcpPorts),
      }));
      for (const p of tcpPorts) {
        if (typeof p.targetPort !== 'string') continue;
        const missing = selected.filter((w) => !candidates.find((c) => c.endpoint.workloadUid === w.uid)?.ports.has(p.port)).map((w) => w.name);
        if (missing.length) {
          warn(source, `spec.ports[${p.index}].targetPort`, `pods without a TCP container port named ${JSON.stringify(p.targetPort)} are not endpoints of port ${p.port}: ${missing.join(', ')}`);
        }
      }
    }

    const ports: ServicePort[] = tcpPorts.map((p) => {
      // The number most endpoints share is what the port says; endpoints that differ carry their own.
      const first = candidates.find((c) => c.ports.has(p.port));
      const targetPort = first ? first.ports.get(p.port)! : typeof p.targetPort === 'number' ? p.targetPort : p.port;
      return { name: p.name, port: p.port, targetPort };
    });
    const endpoints: Endpoint[] = [];
    for (const c of candidates) {
      if (c.ports.size === 0) continue;
      const uniform = ports.every((p) => c.ports.get(p.port) === p.targetPort);
      endpoints.push(uniform ? { ...c.endpoint } : { ...c.endpoint, targetPorts: Object.fromEntries([...c.ports].map(([k, v]) => [String(k), v])) });
    }
    for (const ip of ips) vipOwner.set(ip, `${ns}/${svc.metadata.name}`);
    out.push({ name: svc.metadata.name, namespace: ns, clusterIPs: ips, ports, endpoints, loadBalancing: { ...defaultLoadBalancing } });
  }
  const ordered = (list: (TranslationError & { index: number })[]) => list.sort((a, b) => a.index - b.index).map(({ index: _, ...e }) => e);
  return { snapshot: { version, workloads, services: out }, errors: ordered(errors), warnings: ordered(warnings) };
}

/**
 * A pod's target port for each TCP service port: a number is taken as is; a
 * name is the pod's TCP container port of that name (FindPort in
 * pkg/api/v1/pod), so pods of two versions may differ. A port the pod
 * cannot resolve is left out (the pod is no endpoint of that port).
 */
function podPorts(pod: Pod, tcpPorts: { port: number; targetPort: number | string }[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of tcpPorts) {
    if (typeof p.targetPort === 'number') {
      out.set(p.port, p.targetPort);
      continue;
    }
    for (const c of pod.spec.containers ?? []) {
      const found = (c.ports ?? []).find((cp) => cp.name === p.targetPort && (cp.protocol ?? 'TCP') === 'TCP');
      if (found) {
        out.set(p.port, found.containerPort);
        break;
      }
    }
  }
  return out;
}

/**
 * A Service's endpoints as its IPv4 EndpointSlices say (IPv6 slices are the
 * same pods by their IPv6 addresses, not served yet). A slice's ports are
 * matched to the Service's by name and protocol: that is the target port of
 * the slice's endpoints (the endpoints controller groups pods whose named
 * port resolves alike). An endpoint is ready when its `ready` condition is
 * not false (nil means unknown, taken as ready) and it is not
 * `terminating`: a terminating endpoint stays listed, not ready, so that no
 * new connection goes there and the open ones are kept. Endpoints that are
 * not a known pod (no targetRef to one) are returned in `unknown`. An
 * address listed twice (by two slices, during an update) is one endpoint,
 * ready if either says so.
 */
function sliceCandidates(
  slices: { slice: EndpointSlice }[],
  tcpPorts: { name: string; port: number }[],
  byUid: Map<string, Workload>,
  workloadsByName: Map<string, Workload>,
): { candidates: Candidate[]; unknown: string[] } {
  const byAddress = new Map<string, Candidate>();
  const unknown: string[] = [];
  for (const { slice } of [...slices].sort((a, b) => a.slice.metadata.name.localeCompare(b.slice.metadata.name))) {
    if (slice.addressType !== 'IPv4') continue;
    const ports = new Map<number, number>();
    for (const p of tcpPorts) {
      const sp = (slice.ports ?? []).find((x) => (x.name ?? '') === p.name && (x.protocol ?? 'TCP') === 'TCP');
      if (sp && typeof sp.port === 'number') ports.set(p.port, sp.port);
    }
    for (const e of slice.endpoints ?? []) {
      const address = e.addresses[0];
      const ref = e.targetRef;
      const w =
        ref && (ref.kind ?? 'Pod') === 'Pod'
          ? (ref.uid ? byUid.get(ref.uid) : undefined) ?? workloadsByName.get(`${ref.namespace || namespaceOf(slice)}/${ref.name}`)
          : undefined;
      if (!w) {
        unknown.push(address);
        continue;
      }
      const c = e.conditions ?? {};
      const ready = c.ready !== false && c.terminating !== true;
      const known = byAddress.get(address);
      if (known) {
        known.endpoint.ready ||= ready;
        for (const [k, v] of ports) if (!known.ports.has(k)) known.ports.set(k, v);
        continue;
      }
      byAddress.set(address, { endpoint: { workloadUid: w.uid, address, node: e.nodeName || w.node, ready }, ports: new Map(ports) });
    }
  }
  return { candidates: [...byAddress.values()], unknown };
}
