// Pure: which map entries should exist for a snapshot on this node.
import { serviceKey, type Service, type Snapshot, type Workload } from '../model/resources';
import { IPPROTO_TCP, VIP_F_NO_ENDPOINTS, VIP_F_WORKLOAD, type Enrollment, type VipKey, type VipValue } from './map-codecs';

/** Small stable ids for workloads and services, local to one agent run. */
export class IdAllocator {
  private readonly ids = new Map<string, number>();
  private next = 1;
  idOf(key: string): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(key, id);
    }
    return id;
  }
}

export interface VipEntry {
  key: VipKey;
  value: VipValue;
}

export interface DesiredState {
  enrollments: Map<bigint, Enrollment>;
  /** VIP entries grouped by service key, so one service can be updated alone. */
  vips: Map<string, VipEntry[]>;
}

/**
 * One entry per cluster IP and port of a service. A service with no ready
 * endpoint is still captured, but flagged so that connect() is refused in
 * the kernel (ECONNREFUSED), as kube-proxy's REJECT rule does.
 */
export function vipEntries(service: Service, serviceId: number): VipEntry[] {
  const out: VipEntry[] = [];
  const flags = service.endpoints.some((e) => e.ready) ? 0 : VIP_F_NO_ENDPOINTS;
  for (const ip of service.clusterIPs) {
    for (const p of service.ports) out.push({ key: { address: ip, port: p.port, proto: IPPROTO_TCP }, value: { serviceId, flags } });
  }
  return out;
}

/** The key under which a workload's own entries are kept beside the services'. */
export function workloadVipKey(uid: string): string {
  return `workload/${uid}`;
}

/**
 * A meshed workload's own addresses (any port): an enrolled pod that dials
 * a pod IP instead of a VIP is captured too, so the destination's
 * AuthorizationPolicy applies whatever address was dialled (as in Istio
 * ambient, where every inbound connection passes the node's proxy).
 * IPv4 only; none for a workload outside the mesh, or one on its node's
 * address (host network).
 */
export function workloadVipEntries(w: Workload): VipEntry[] {
  if (!w.captured) return [];
  return w.ips
    .filter((ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip) && ip !== w.nodeAddress)
    .map((ip) => ({ key: { address: ip, port: 0, proto: IPPROTO_TCP }, value: { serviceId: 0, flags: VIP_F_WORKLOAD } }));
}

export function desiredEnrollments(
  workloads: Iterable<Workload>,
  node: string,
  cookieOf: (workloadUid: string) => bigint | undefined,
  workloadIds: IdAllocator,
): Map<bigint, Enrollment> {
  const enrollments = new Map<bigint, Enrollment>();
  for (const w of workloads) {
    if (w.node !== node || !w.captured) continue;
    const cookie = cookieOf(w.uid);
    if (cookie !== undefined) enrollments.set(cookie, { workloadId: workloadIds.idOf(w.uid), flags: 0 });
  }
  return enrollments;
}

export function desiredState(
  snapshot: Snapshot,
  node: string,
  cookieOf: (workloadUid: string) => bigint | undefined,
  workloadIds: IdAllocator,
  serviceIds: IdAllocator,
): DesiredState {
  const enrollments = desiredEnrollments(snapshot.workloads, node, cookieOf, workloadIds);
  const vips = new Map<string, VipEntry[]>();
  for (const s of snapshot.services) {
    const key = serviceKey(s);
    vips.set(key, vipEntries(s, serviceIds.idOf(key)));
  }
  for (const w of snapshot.workloads) {
    const entries = workloadVipEntries(w);
    if (entries.length) vips.set(workloadVipKey(w.uid), entries);
  }
  return { enrollments, vips };
}
