// The agent's operator-facing endpoints: the admin API (unix socket, and
// /status on loopback), the Prometheus metrics and the readiness probe, with
// the views they serve (observability/agent-admin-api.ts declares their
// shapes for sluicectl too). Views read the running parts through
// AgentParts, asked anew for each request, so nothing here holds state of
// the data path; a request never changes what the agent serves, except POST
// /logging on the unix socket.
import type * as http from 'node:http';
import type { Logger } from 'pino';
import type * as promClient from 'prom-client';
import type { AgentConfig } from '../config/agent-config';
import { VIP_F_WORKLOAD } from '../datapath/map-codecs';
import type { MapCapacity } from '../datapath/map-capacity';
import type { CertificateManager } from '../identity/certificate-manager';
import type { BpfDatapath } from '../kernel/bpf-datapath';
import type { PodNetnsRegistry } from '../kernel/pod-netns-registry';
import type { SpliceRelay } from '../kernel/splice-relay';
import type { Workload } from '../model/resources';
import { packageVersion } from '../command-line/version';
import type { AccessLog } from '../observability/access-log';
import type { AgentStatusView, ConnectionView, MapsView } from '../observability/agent-admin-api';
import { createJsonServer, listenTcp, listenUnix } from '../observability/http-json';
import { IstioTcpMetrics } from '../observability/istio-metrics';
import type { ComponentLoggers } from '../observability/logger';
import { createRegistry } from '../observability/metrics';
import type { Readiness } from '../observability/readiness';
import type { PolicySet } from '../proxy/authorization';
import { EndpointStats } from '../proxy/endpoint-picker';
import type { NodeProxy } from '../proxy/node-proxy';
import type { ServiceIndex } from '../proxy/service-index';
import type { TunnelPool } from '../proxy/tunnel-client';
import type { TunnelServer } from '../proxy/tunnel-server';
import type { ConnectionLimits } from '../proxy/budget-queues';
import type { InboundCapture } from './inbound-capture';
import type { MapSync } from './map-sync';
import type { ResourceStore } from './resource-store';
import type { SnapshotFileSource } from './snapshot-file-source';
import { trace } from './trace';
import type { XdsSource } from './xds-source';

/**
 * The agent's parts as they are now, for one request. Parts that start late
 * (or not at all in this configuration) are undefined until they run.
 */
export interface AgentParts {
  store: ResourceStore;
  index: ServiceIndex;
  policies: PolicySet;
  /** Enrolled workloads of this node by netns cookie. */
  workloadByCookie: ReadonlyMap<bigint, Workload>;
  /** uid -> when it was enrolled and the connections it had open then. */
  enrolledSince: ReadonlyMap<string, { at: string; preexistingConnections?: number }>;
  /** uid -> why its STRICT mode is not enforced in the kernel. */
  strictNotEnforced: ReadonlyMap<string, string>;
  /** Where the configuration comes from, in words. */
  configFrom: string;
  limits: ConnectionLimits;
  mapSync: MapSync;
  vipCapacity?: MapCapacity;
  datapath?: BpfDatapath;
  source?: SnapshotFileSource;
  xds?: XdsSource;
  registry?: PodNetnsRegistry;
  inboundCapture?: InboundCapture;
  proxy?: NodeProxy;
  relay?: SpliceRelay;
  certificates?: CertificateManager;
  tunnels?: TunnelPool;
  tunnelServer?: TunnelServer;
}

export interface AgentAdminDeps {
  config: Readonly<AgentConfig>;
  logger: Logger;
  logs: ComponentLoggers;
  accessLog: AccessLog;
  readiness: Readiness;
  parts: () => AgentParts;
}

/**
 * The admin, metrics and readiness servers of one agent. startAdmin() binds
 * the admin API (first, so a stuck start can be asked why);
 * createMetrics() builds the registry the proxy's telemetry writes to;
 * startStatusServers() binds metrics and readiness; close() unbinds all
 * (a handover passes them to the next agent, which binds them again).
 */
export class AgentAdmin {
  private readonly servers: http.Server[] = [];
  private readonly startedAt = Date.now();
  private registry?: promClient.Registry;

  constructor(private readonly deps: AgentAdminDeps) {}

  /** GET /status */
  status(): AgentStatusView {
    const { config, readiness } = this.deps;
    const p = this.deps.parts();
    return {
      node: config.nodeName,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      memory: { rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      ready: readiness.ready,
      pending: readiness.blockers(),
      proxy: `${config.proxyAddress}:${config.proxyPort}`,
      relay: p.relay ? `splice, ${config.relayThreads} thread(s)` : 'stream (in JS)',
      bpf: { pinRoot: p.datapath?.pinRoot, attached: p.datapath?.attached ?? [] },
      config: {
        source: p.configFrom,
        version: p.store.version,
        ...(p.source ? { file: p.source.status } : {}),
        ...(p.xds ? { xds: p.xds.client.status() } : {}),
      },
      workloads: [...p.store.workloads.values()].filter((w) => w.node === config.nodeName).length,
      services: p.store.services.size,
      enrolled: [...p.workloadByCookie.entries()].map(([cookie, w]) => ({
        workload: `${w.namespace}/${w.name}`,
        ips: w.ips,
        netnsCookie: String(cookie),
        enrolledAt: p.enrolledSince.get(w.uid)?.at,
        preexistingConnections: p.enrolledSince.get(w.uid)?.preexistingConnections,
        ...(p.strictNotEnforced.has(w.uid) ? { strictNotEnforced: p.strictNotEnforced.get(w.uid) } : {}),
      })),
      inboundCapture: { pods: p.inboundCapture?.status() ?? [], mapErrors: p.inboundCapture?.mapErrors ?? [] },
      podNetnsErrors: p.registry?.errors() ?? {},
      lastReconcile: p.mapSync.lastReconcile,
      resync: { intervalSeconds: config.resyncInterval, last: p.mapSync.lastResync, repairs: p.mapSync.repairs },
      mapSync: p.mapSync.view(),
      proxyCounters: p.proxy ? Object.fromEntries(Object.entries(p.proxy.counters)) : undefined,
      activeConnections: p.proxy?.activeConnections ?? 0,
      connectionBudget: { ...p.limits, inUse: p.proxy?.activeConnections ?? 0, waiting: p.proxy?.waitingConnections ?? 0 },
      mapFill: {
        sluice_vips: {
          ...(p.datapath?.vipFill() ?? { entries: 0, capacity: 0 }),
          admitted: p.vipCapacity ? { entries: p.vipCapacity.entries, limit: p.vipCapacity.capacity } : undefined,
          rejectedResources: p.vipCapacity?.rejected ?? 0,
        },
      },
      tunnels: p.tunnels ? { ...p.tunnels.counters, openSessions: p.tunnels.openSessions, server: p.tunnelServer?.counters } : null,
    };
  }

  /** GET /maps: the kernel maps as they are now (read on this thread: an operator's request, not a scrape). */
  maps(): MapsView | { error: string } {
    const p = this.deps.parts();
    const dp = p.datapath;
    if (!dp) return { error: 'datapath not loaded' };
    const serviceById = new Map<string, string>();
    for (const s of p.store.services.values()) for (const ip of s.clusterIPs) for (const port of s.ports) serviceById.set(`${ip}:${port.port}`, `${s.namespace}/${s.name}`);
    return {
      pinRoot: dp.pinRoot,
      enrollment: dp.enroll.entries().map((e) => {
        const w = p.workloadByCookie.get(e.key);
        return { netnsCookie: String(e.key), workloadId: e.value.workloadId, workload: w ? `${w.namespace}/${w.name}` : '' };
      }),
      vips: dp.vips.entries().map((e) => {
        // A meshed pod's own address (port 0 = any port), captured so policy applies to it.
        if (e.value.flags & VIP_F_WORKLOAD) {
          const w = p.index.workloadsWithIp(e.key.address).find((x) => x.captured);
          return { vip: `${e.key.address}:*`, serviceId: e.value.serviceId, service: w ? `pod ${w.namespace}/${w.name}` : 'pod' };
        }
        return { vip: `${e.key.address}:${e.key.port}`, serviceId: e.value.serviceId, service: serviceById.get(`${e.key.address}:${e.key.port}`) ?? '' };
      }),
      originalDestinations: dp.tuples.entries().map((e) => ({
        tuple: `${e.key.srcAddress}:${e.key.srcPort} -> ${e.key.dstAddress}:${e.key.dstPort}`,
        originalDst: `${e.value.address}:${e.value.port}`,
        netnsCookie: String(e.value.netnsCookie),
      })),
      counters: dp.counters(),
    };
  }

  /** GET /connections: the node proxy's live connections, with their age in ms. */
  connections(): ConnectionView[] {
    const now = Date.now();
    return (this.deps.parts().proxy?.connections() ?? []).map((c) => ({ ...c, ageMs: now - c.startedAt }));
  }

  /** GET /config_dump: the agent's configuration, every resource it holds, and the endpoints' health as the proxy sees it. */
  configDump(): object {
    const p = this.deps.parts();
    return { config: this.deps.config, resources: p.store.contents(), endpoints: p.proxy?.endpoints.snapshot(Date.now()) ?? [] };
  }

  /**
   * Binds the admin API: every view on the unix socket (--admin-socket,
   * root on the node), /status alone on 127.0.0.1:--admin-port. Rejects
   * when the unix socket cannot be bound; a busy admin port is logged.
   */
  async startAdmin(): Promise<void> {
    const { config, logger, logs, accessLog } = this.deps;
    const admin = createJsonServer({
      '/status': () => ({ body: this.status() }),
      '/maps': () => ({ body: this.maps() }),
      '/connections': () => ({ body: this.connections() }),
      '/config_dump': () => ({ body: this.configDump() }),
      '/workloads': () => ({ body: this.workloads() }),
      '/services': () => ({ body: [...this.deps.parts().store.services.values()] }),
      '/policies': () => {
        const store = this.deps.parts().store;
        return { body: { authorizationPolicies: [...store.authorizationPolicies.values()], peerAuthentications: [...store.peerAuthentications.values()] } };
      },
      '/trace': (url) => this.traceResponse(url),
      '/certs': () => {
        const certificates = this.deps.parts().certificates;
        return { body: certificates ? certificates.list() : { error: 'this agent obtains no certificates (no --node-token-file)' } };
      },
      '/healthz/ready': () => this.readyResponse(),
      '/logging': () => ({ body: { levels: logs.levels(), accessLog: accessLog.enabled } }),
    }, {
      // Run-time changes: the unix socket only (root on the node).
      '/logging': (url) => {
        const level = url.searchParams.get('level');
        const access = url.searchParams.get('access_log');
        if (level === null && access === null) return { status: 400, body: { error: 'POST /logging needs level=LEVEL|COMPONENT=LEVEL[,...] or access_log=on|off' } };
        if (access !== null && access !== 'on' && access !== 'off') return { status: 400, body: { error: `access_log=${access}: expected on or off` } };
        if (level !== null) {
          const problem = logs.apply(level);
          if (problem) return { status: 400, body: { error: problem } };
        }
        if (access !== null) accessLog.enabled = access === 'on';
        logger.info({ level, accessLog: accessLog.enabled }, 'logging changed');
        return { body: { levels: logs.levels(), accessLog: accessLog.enabled } };
      },
    });
    this.servers.push(admin);
    await listenUnix(admin, config.adminSocket);
    if (config.adminPort) {
      // The same admin API on loopback only, never on a routable address.
      const local = createJsonServer({ '/status': () => ({ body: this.status() }) });
      this.servers.push(local);
      await listenTcp(local, '127.0.0.1', config.adminPort).catch((err) =>
        logger.warn({ err: (err as Error).message }, 'admin port not available; the unix socket still serves'),
      );
    }
  }

  /**
   * sluice's own metrics and the Istio-compatible TCP metrics, in one
   * registry (served by startStatusServers()). Returns the Istio metrics,
   * which the proxy and the tunnel server write to.
   */
  createMetrics(): IstioTcpMetrics {
    const parts = () => this.deps.parts();
    const registry = createRegistry({
      version: packageVersion(),
      proxyCounters: () => ({ ...(parts().proxy?.counters ?? {}) }),
      activeConnections: () => parts().proxy?.activeConnections ?? 0,
      waitingConnections: () => parts().proxy?.waitingConnections ?? 0,
      bpfCounters: () => parts().datapath?.counters() ?? {},
      maps: () => parts().datapath?.fill() ?? [],
      mapRepairs: () => parts().mapSync.repairs,
      mapSync: () => ({ failingKeys: parts().mapSync.failingByMap(), retries: parts().mapSync.retries }),
      enrolledWorkloads: () => parts().workloadByCookie.size,
      snapshotVersion: () => parts().store.version,
      xds: () => {
        const c = parts().xds?.client;
        if (!c) return undefined;
        return {
          state: c.state,
          connects: c.counters.connects,
          types: c.status().types.map((t) => ({ type: t.type.replace('type.googleapis.com/', ''), received: t.received, acks: t.acks, nacks: t.nacks, lastAckAt: t.lastAck?.at })),
        };
      },
      certificates: () => {
        const certificates = parts().certificates;
        return certificates ? { certificates: certificates.list(), ...certificates.counters } : undefined;
      },
      tunnels: () => {
        const { tunnels, tunnelServer } = parts();
        return tunnels
          ? {
              outboundSessions: tunnels.openSessions,
              ...tunnels.counters,
              inboundSessions: tunnelServer?.openSessions ?? 0,
              inboundSessionsAccepted: tunnelServer?.counters.sessions ?? 0,
              inboundStreams: tunnelServer?.openStreams ?? 0,
              inboundCounters: { ...(tunnelServer?.counters ?? {}) },
            }
          : undefined;
      },
      policyDecisions: () =>
        [...(parts().proxy?.decisions ?? [])].map(([key, count]) => {
          const [policy, action] = key.split('\u0000');
          return { policy, action: action as 'allow' | 'deny', count };
        }),
      relay: () => {
        const r = parts().relay;
        if (!r) return undefined;
        const live = r.bytes();
        let fromClients = r.finished.bytesFromClient;
        let fromEndpoints = r.finished.bytesFromEndpoint;
        for (const [a, b] of live.values()) {
          fromClients += a;
          fromEndpoints += b;
        }
        return { threads: r.threads, pairs: live.size, bytesFromClients: fromClients, bytesFromEndpoints: fromEndpoints, pairsDone: r.finished.pairs };
      },
      failures: () => parts().proxy?.failures.snapshot() ?? {},
    });
    this.registry = registry;
    return new IstioTcpMetrics(registry);
  }

  /** Adds the bytes of live connections (relay counts, socket counts) to the Istio byte Counters; also run before each scrape. */
  reportBytes(): void {
    const { proxy, tunnelServer } = this.deps.parts();
    try {
      proxy?.reportBytes();
      tunnelServer?.reportBytes();
    } catch (err) {
      this.deps.logs.component('telemetry').warn({ err: (err as Error).message }, 'could not read live connection byte counts');
    }
  }

  /** Binds /metrics (when createMetrics() ran and --metrics-port is set) and /healthz/ready (--readiness-port) on --status-address. Rejects when a port is taken. */
  async startStatusServers(): Promise<void> {
    const { config } = this.deps;
    const registry = this.registry;
    if (config.metricsPort && registry) {
      const metrics = createJsonServer({
        '/metrics': async () => {
          this.reportBytes();
          return { body: await registry.metrics(), contentType: registry.contentType };
        },
      });
      this.servers.push(metrics);
      await listenTcp(metrics, config.statusAddress, config.metricsPort);
    }
    if (config.readinessPort) {
      const readiness = createJsonServer({ '/healthz/ready': () => this.readyResponse() });
      this.servers.push(readiness);
      await listenTcp(readiness, config.statusAddress, config.readinessPort);
    }
  }

  /** Closes the admin, metrics and readiness servers, and their open keep-alive connections. */
  async close(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map((s) => {
        const closed = new Promise<void>((r) => s.close(() => r()));
        s.closeAllConnections();
        return closed;
      }),
    );
  }

  private workloads(): object {
    const p = this.deps.parts();
    const enrolled = new Set([...p.workloadByCookie.values()].map((w) => w.uid));
    return [...p.store.workloads.values()].map((w) => ({ ...w, local: w.node === this.deps.config.nodeName, enrolled: enrolled.has(w.uid) }));
  }

  private traceResponse(url: URL) {
    const from = url.searchParams.get('from') ?? '';
    const to = url.searchParams.get('to') ?? '';
    if (!from.includes('/') || !to) return { status: 400, body: { error: 'trace needs from=NAMESPACE/POD and to=IP:PORT' } };
    const p = this.deps.parts();
    return {
      body: trace(from, to, {
        node: this.deps.config.nodeName,
        workloads: p.store.workloads.values(),
        index: p.index,
        policies: p.policies,
        endpoints: p.proxy?.endpoints ?? new EndpointStats(),
        enrolled: new Set([...p.workloadByCookie.values()].map((w) => w.uid)),
      }),
    };
  }

  private readyResponse() {
    const { readiness } = this.deps;
    return readiness.ready ? { status: 200, body: { ready: true } } : { status: 503, body: { ready: false, pending: readiness.blockers() } };
  }
}
