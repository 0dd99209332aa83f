// Read-only lookup tables over one snapshot, rebuilt when the snapshot changes.
import type { Service, ServicePort, Snapshot, Workload } from '../model/resources';

export interface VipTarget {
  service: Service;
  port: ServicePort;
}

export class ServiceIndex {
  private readonly byVip = new Map<string, VipTarget>();
  private readonly workloads = new Map<string, Workload>();

  constructor(readonly snapshot: Snapshot) {
    for (const service of snapshot.services) {
      for (const ip of service.clusterIPs) for (const port of service.ports) this.byVip.set(`${ip}:${port.port}`, { service, port });
    }
    for (const w of snapshot.workloads) this.workloads.set(w.uid, w);
  }

  static empty(): ServiceIndex {
    return new ServiceIndex({ version: '', workloads: [], services: [] });
  }

  vip(address: string, port: number): VipTarget | undefined {
    return this.byVip.get(`${address}:${port}`);
  }

  workload(uid: string): Workload | undefined {
    return this.workloads.get(uid);
  }
}
