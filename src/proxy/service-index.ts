// Lookup tables the proxy reads on every connection: VIP:port -> service
// port, and workloads by uid. Updated in place, one service at a time, so a
// change to one of 10k services costs that service only.
import { defaultLoadBalancing, serviceKey, type Service, type ServicePort, type Workload } from '../model/resources';

export interface VipTarget {
  service: Service;
  port: ServicePort;
}

export class ServiceIndex {
  private readonly byVip = new Map<string, VipTarget>();
  private readonly services = new Map<string, Service>();
  private readonly workloads = new Map<string, Workload>();
  /** Pod IP -> the workloads that have it (more than one only for host-network pods). */
  private readonly byIp = new Map<string, Workload[]>();
  /** "workload uid:target port" -> a service with that endpoint (the destination side names the service this way). */
  private readonly byEndpoint = new Map<string, Service>();

  static of(services: Iterable<Service>, workloads: Iterable<Workload>): ServiceIndex {
    const index = new ServiceIndex();
    for (const s of services) index.upsertService(s);
    for (const w of workloads) index.upsertWorkload(w);
    return index;
  }

  upsertService(service: Service): void {
    const key = serviceKey(service);
    this.removeService(key);
    this.services.set(key, service);
    for (const ip of service.clusterIPs) for (const port of service.ports) this.byVip.set(`${ip}:${port.port}`, { service, port });
    for (const e of service.endpoints) for (const port of service.ports) this.byEndpoint.set(`${e.workloadUid}:${port.targetPort}`, service);
  }

  removeService(key: string): void {
    const old: Service | undefined = this.services.get(key);
    if (!old) return;
    this.services.delete(key);
    for (const e of old.endpoints) {
      for (const port of old.ports) {
        const k = `${e.workloadUid}:${port.targetPort}`;
        if (this.byEndpoint.get(k) === old) this.byEndpoint.delete(k);
      }
    }
    for (const ip of old.clusterIPs) {
      for (const port of old.ports) {
        const k: string = `${ip}:${port.port}`;
        if (this.byVip.get(k)?.service === old) this.byVip.delete(k);
      }
    }
  }

  upsertWorkload(w: Workload): void {
    this.removeWorkload(w.uid);
    this.workloads.set(w.uid, w);
    for (const ip of w.ips) {
      const list = this.byIp.get(ip);
      if (list) list.push(w);
      else this.byIp.set(ip, [w]);
    }
  }

  removeWorkload(uid: string): void {
    const old = this.workloads.get(uid);
    if (!old) return;
    this.workloads.delete(uid);
    for (const ip of old.ips) {
      const rest = (this.byIp.get(ip) ?? []).filter((w) => w.uid !== uid);
      if (rest.length) this.byIp.set(ip, rest);
      else this.byIp.delete(ip);
    }
  }

  /** Every known workload (any node) with this IP; empty when none. */
  workloadsWithIp(ip: string): readonly Workload[] {
    return this.byIp.get(ip) ?? [];
  }

  vip(address: string, port: number): VipTarget | undefined {
    return this.byVip.get(`${address}:${port}`);
  }

  /**
   * What a captured connection to address:port goes to: the service behind
   * a VIP, or, for a meshed pod's own address (captured so that policy
   * applies to it), that pod alone as a one-endpoint target named after it.
   */
  target(address: string, port: number): VipTarget | undefined {
    return this.vip(address, port) ?? this.workloadTarget(address, port);
  }

  /**
   * A meshed (enrolled) pod's own address:port as a one-endpoint target
   * named after the pod, whatever VIP shares the address; undefined when no
   * enrolled workload has the address.
   */
  workloadTarget(address: string, port: number): VipTarget | undefined {
    const w = this.workloadsWithIp(address).find((x) => x.captured);
    if (!w) return undefined;
    const servicePort: ServicePort = { name: '', port, targetPort: port };
    return {
      port: servicePort,
      service: {
        name: w.name,
        namespace: w.namespace,
        clusterIPs: [],
        ports: [servicePort],
        endpoints: [{ workloadUid: w.uid, address, node: w.node, ready: true }],
        loadBalancing: defaultLoadBalancing,
      },
    };
  }

  /** A service that has this workload as an endpoint on this target port (the last one written when several do). */
  serviceOfEndpoint(uid: string, targetPort: number): Service | undefined {
    return this.byEndpoint.get(`${uid}:${targetPort}`);
  }

  workload(uid: string): Workload | undefined {
    return this.workloads.get(uid);
  }
}
