// Pure: which map entries should exist for a snapshot on this node.
import { serviceKey, type Snapshot, type Workload } from '../model/resources';
import { IPPROTO_TCP, type Enrollment, type VipKey, type VipValue } from './map-codecs';

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

export interface DesiredState {
  enrollments: Map<bigint, Enrollment>;
  vips: { key: VipKey; value: VipValue }[];
}

/**
 * Workloads this node captures: scheduled here, in the mesh, and with a known
 * netns cookie (the CNI step has reported its network namespace).
 */
export function capturedWorkloads(snapshot: Snapshot, node: string): Workload[] {
  return snapshot.workloads.filter((w) => w.node === node && w.captured);
}

export function desiredState(
  snapshot: Snapshot,
  node: string,
  cookieOf: (workloadUid: string) => bigint | undefined,
  workloadIds: IdAllocator,
  serviceIds: IdAllocator,
): DesiredState {
  const enrollments = new Map<bigint, Enrollment>();
  for (const w of capturedWorkloads(snapshot, node)) {
    const cookie = cookieOf(w.uid);
    if (cookie !== undefined) enrollments.set(cookie, { workloadId: workloadIds.idOf(w.uid), flags: 0 });
  }
  const vips: DesiredState['vips'] = [];
  for (const s of snapshot.services) {
    const serviceId = serviceIds.idOf(serviceKey(s));
    for (const ip of s.clusterIPs) {
      for (const p of s.ports) vips.push({ key: { address: ip, port: p.port, proto: IPPROTO_TCP }, value: { serviceId, flags: 0 } });
    }
  }
  return { enrollments, vips };
}
