// A TEST STAND-IN for kube-controller-manager's EndpointSlice controller,
// run inside the sim's Kubernetes API stand-in (kube-api-server.ts): no
// kube-controller-manager can be installed here, and sluice-control takes a
// Service's endpoints from its EndpointSlices. It keeps, for every Service
// with a selector, the discovery.k8s.io/v1 slices the real controller would
// write (pkg/controller/endpointslice and staging/src/k8s.io/endpointslice):
//   - a pod is an endpoint when the selector picks it, it has an IP, and it
//     is not in a terminal phase (Succeeded, Failed);
//   - conditions: serving is the pod's Ready condition, terminating is its
//     deletionTimestamp, ready is serving and not terminating;
//     publishNotReadyAddresses makes every endpoint ready and serving;
//   - each service port resolves per pod (a named targetPort is the pod's
//     container port of that name and protocol; a pod without it has no
//     such port), and endpoints whose resolved ports are alike share
//     slices, at most 100 endpoints each;
//   - a Service that selects no pod keeps one placeholder slice without
//     endpoints or ports, as the real controller does;
//   - labels kubernetes.io/service-name and
//     endpointslice.kubernetes.io/managed-by, an ownerReference to the
//     Service; slices of a Service without selector are left alone.
// Unlike the real controller, slice names are stable (a hash of the port
// set and an index), and it reacts to changes synchronously, inside the
// write that caused them: an API client that wrote a pod sees the slices
// already updated once its write is answered.
import { createHash } from 'node:crypto';
import { ENDPOINT_SLICE_API_VERSION, SERVICE_NAME_LABEL, type EndpointSlice, type KubeService, type Pod } from '../control/kubernetes-objects';
import type { KubeApiStandIn, StandInChange, StoredObject } from './kube-api-server';

/** The label that says which controller keeps a slice. */
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** The managed-by value of the slices this stand-in writes (the real controller's is endpointslice-controller.k8s.io). */
export const MANAGED_BY = 'sluice-sim.sluice.dev';
/** The real controller's default --max-endpoints-per-slice. */
const MAX_ENDPOINTS_PER_SLICE = 100;

type SlicePort = NonNullable<EndpointSlice['ports']>[number];
type SliceEndpoint = NonNullable<EndpointSlice['endpoints']>[number];

function labelsMatch(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** podutil.IsPodReady: the Ready condition is "True". */
function podReadyCondition(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/**
 * The service port's target on this pod (FindPort in pkg/api/v1/pod): a
 * number as is, absent as the service port, a name as the pod's container
 * port of that name and protocol; undefined when the pod has no such port.
 */
function targetPortOn(pod: Pod, port: { port: number; targetPort?: number | string; protocol?: string }): number | undefined {
  const t = port.targetPort;
  if (t === undefined || t === 0 || t === '') return port.port;
  if (typeof t === 'number') return t;
  if (/^[0-9]+$/.test(t)) return Number(t);
  const protocol = port.protocol ?? 'TCP';
  for (const c of pod.spec?.containers ?? []) {
    const found = (c.ports ?? []).find((cp) => cp.name === t && (cp.protocol ?? 'TCP') === protocol);
    if (found) return found.containerPort;
  }
  return undefined;
}

/**
 * The EndpointSlices the controller keeps for `service` given the pods of
 * its namespace: [] for a Service without a selector (its slices are
 * someone else's). Pure; names are `<service>-<hash of ports>-<index>`.
 */
export function desiredEndpointSlices(service: KubeService, pods: Pod[]): EndpointSlice[] {
  const selector = service.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return [];
  const namespace = service.metadata.namespace || 'default';
  const publishNotReady = (service.spec as { publishNotReadyAddresses?: boolean }).publishNotReadyAddresses === true;
  const groups = new Map<string, { ports: SlicePort[]; endpoints: SliceEndpoint[] }>();
  for (const pod of pods) {
    if ((pod.metadata.namespace || 'default') !== namespace || !labelsMatch(selector, pod.metadata.labels)) continue;
    const ip = pod.status?.podIP;
    if (!ip || ['Succeeded', 'Failed'].includes(pod.status?.phase ?? '')) continue;
    const ports: SlicePort[] = [];
    for (const p of service.spec.ports ?? []) {
      const target = targetPortOn(pod, p);
      if (target !== undefined) ports.push({ name: p.name ?? '', port: target, protocol: p.protocol ?? 'TCP' });
    }
    const terminating = Boolean(pod.metadata.deletionTimestamp);
    const serving = publishNotReady || podReadyCondition(pod);
    const endpoint: SliceEndpoint = {
      addresses: [ip],
      conditions: { ready: publishNotReady || (serving && !terminating), serving, terminating },
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      targetRef: { kind: 'Pod', namespace, name: pod.metadata.name, uid: pod.metadata.uid },
    };
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    group.endpoints.push(endpoint);
    groups.set(key, group);
  }
  const slices: EndpointSlice[] = [];
  if (groups.size === 0) groups.set('[]', { ports: [], endpoints: [] });
  for (const [key, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 8);
    group.endpoints.sort((a, b) => String(a.addresses[0]).localeCompare(String(b.addresses[0])));
    for (let i = 0; i === 0 || i * MAX_ENDPOINTS_PER_SLICE < group.endpoints.length; i++) {
      slices.push({
        apiVersion: ENDPOINT_SLICE_API_VERSION,
        kind: 'EndpointSlice',
        metadata: {
          name: `${service.metadata.name}-${hash}-${i}`,
          namespace,
          labels: { [SERVICE_NAME_LABEL]: service.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
          ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service.metadata.name, uid: service.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        addressType: 'IPv4',
        endpoints: group.endpoints.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE),
        ports: group.ports,
      } as EndpointSlice);
    }
  }
  return slices;
}

/**
 * Keeps the API stand-in's EndpointSlices in step with its Services and
 * Pods: every change of a Pod reconciles the Services of its namespace,
 * every change of a Service reconciles that Service.
 */
export class EndpointSliceController {
  constructor(private readonly api: KubeApiStandIn) {}

  /** Reconciles every Service once, then follows changes. */
  start(): void {
    for (const svc of this.api.objectsOf('Service')) this.reconcile(svc.metadata.namespace || 'default', svc.metadata.name);
    this.api.subscribe((change) => this.changed(change));
  }

  private changed(change: StandInChange): void {
    // The stand-in validates nothing: an object of any shape must not break the write that stored it.
    try {
      this.follow(change);
    } catch (err) {
      process.stderr.write(`endpoint-slice controller stand-in: ${change.object.kind} ${String(change.object.metadata?.name)}: ${(err as Error).message}\n`);
    }
  }

  private follow(change: StandInChange): void {
    const { kind, metadata } = change.object;
    const namespace = metadata.namespace || 'default';
    if (kind === 'Service') this.reconcile(namespace, metadata.name);
    else if (kind === 'Pod') {
      for (const svc of this.api.objectsOf('Service')) if ((svc.metadata.namespace || 'default') === namespace) this.reconcile(namespace, svc.metadata.name);
    }
  }

  /** Writes the slices `namespace/name` should have and deletes the ones it should not (all of them once the Service is gone). */
  private reconcile(namespace: string, name: string): void {
    const service = this.api.objectsOf('Service').find((s) => (s.metadata.namespace || 'default') === namespace && s.metadata.name === name) as KubeService | undefined;
    const pods = this.api.objectsOf('Pod') as unknown as Pod[];
    const desired = service ? desiredEndpointSlices(service, pods) : [];
    const current = this.api
      .objectsOf('EndpointSlice')
      .filter((s) => s.metadata.namespace === namespace && labelOf(s, SERVICE_NAME_LABEL) === name && labelOf(s, MANAGED_BY_LABEL) === MANAGED_BY);
    for (const slice of desired) {
      const now = current.find((c) => c.metadata.name === slice.metadata.name);
      if (now && sameContent(now, slice)) continue;
      this.api.apply(slice as unknown as StoredObject);
    }
    for (const stale of current) if (!desired.some((d) => d.metadata.name === stale.metadata.name)) this.api.delete('EndpointSlice', namespace, stale.metadata.name);
  }
}

function labelOf(o: StoredObject, label: string): string | undefined {
  return (o.metadata.labels as Record<string, string> | undefined)?.[label];
}

function sameContent(stored: StoredObject, slice: EndpointSlice): boolean {
  return JSON.stringify([stored.endpoints, stored.ports, stored.metadata.labels]) === JSON.stringify([slice.endpoints, slice.ports, slice.metadata.labels]);
}
