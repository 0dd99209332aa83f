// Wires one node agent together: datapath (kernel), snapshot source, pod
// netns registry, node proxy, and the admin / metrics / readiness servers.
import type * as http from 'node:http';
import type * as net from 'node:net';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/agent-config';
import { BpfDatapath } from '../datapath/bpf-datapath';
import { IdAllocator, capturedWorkloads, desiredState } from '../datapath/desired-state';
import { PodNetnsRegistry } from '../datapath/pod-netns-registry';
import { SpliceRelay } from '../datapath/splice-relay';
import type { Snapshot, Workload } from '../model/resources';
import { createJsonServer, listenTcp, listenUnix } from '../observability/http-json';
import { createRegistry } from '../observability/metrics';
import { Readiness } from '../observability/readiness';
import { NodeProxy } from '../proxy/node-proxy';
import { ServiceIndex } from '../proxy/service-index';
import { SnapshotFileSource } from './snapshot-file-source';

const BLOCKERS = ['bpf attached', 'config loaded', 'pod netns scanned', 'maps reconciled', 'proxy listening'];

function socketFd(socket: net.Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}

export class Agent {
  readonly readiness = new Readiness(BLOCKERS);
  private index = ServiceIndex.empty();
  private workloadByCookie = new Map<bigint, Workload>();
  /** When each enrolled workload was enrolled, and how many connections it already had then. */
  private readonly enrolledSince = new Map<string, { at: string; preexistingConnections?: number }>();
  private readonly workloadIds = new IdAllocator();
  private readonly serviceIds = new IdAllocator();
  private reconcileTimer?: NodeJS.Timeout;
  private lastReconcile = { at: '', errors: [] as string[], updated: 0, deleted: 0 };
  private readonly servers: http.Server[] = [];
  private readonly startedAt = Date.now();
  private datapath?: BpfDatapath;
  private source?: SnapshotFileSource;
  private registry?: PodNetnsRegistry;
  private proxy?: NodeProxy;
  private relay?: SpliceRelay;

  constructor(
    readonly config: Readonly<AgentConfig>,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const { config, logger } = this;
    // Admin first, so an agent stuck on start-up can still be asked why.
    await this.startAdmin();

    this.datapath = await BpfDatapath.open({
      bpffsDir: config.bpffs,
      cgroupPath: config.cgroup,
      proxyAddress: config.proxyAddress,
      proxyPort: config.proxyPort,
    });
    logger.child({ component: 'datapath' }).info({ pinRoot: this.datapath.pinRoot, attached: this.datapath.attached }, 'capture programs attached');
    this.readiness.done('bpf attached');

    this.registry = new PodNetnsRegistry(config.podNetnsDir, () => this.scheduleReconcile());
    await this.registry.start();
    this.readiness.done('pod netns scanned');

    this.source = new SnapshotFileSource(config.snapshot, logger.child({ component: 'config' }), (s) => this.onSnapshot(s));
    this.source.start();

    const datapath = this.datapath;
    if (config.relay === 'splice') {
      this.relay = new SpliceRelay();
      this.relay.start(config.relayThreads);
    }
    this.proxy = new NodeProxy({
      offload: this.relay,
      originalDst: (socket) => datapath.originalDst(socketFd(socket)),
      sourceWorkload: (cookie) => this.workloadByCookie.get(cookie),
      index: () => this.index,
      logger: logger.child({ component: 'proxy' }),
    });
    await this.proxy.listen(config.proxyAddress, config.proxyPort);
    this.readiness.done('proxy listening');
    await this.startStatusServers();
    logger.info({ node: config.nodeName, proxy: `${config.proxyAddress}:${config.proxyPort}` }, 'agent started');
  }

  /** Stops serving. Links and maps stay pinned: capture survives the agent. */
  async stop(): Promise<void> {
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    this.source?.stop();
    this.registry?.stop();
    await this.proxy?.close(true);
    this.relay?.stop();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.datapath?.close();
  }

  private onSnapshot(snapshot: Snapshot): void {
    this.index = new ServiceIndex(snapshot);
    this.readiness.done('config loaded');
    this.logger.child({ component: 'config' }).info(
      { version: snapshot.version, workloads: snapshot.workloads.length, services: snapshot.services.length },
      'configuration applied',
    );
    this.scheduleReconcile();
  }

  private scheduleReconcile(): void {
    if (this.reconcileTimer) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      this.reconcile();
    }, 20);
  }

  private reconcile(): void {
    if (!this.datapath || !this.registry || this.readiness.blockers().includes('config loaded')) return;
    const registry = this.registry;
    const snapshot = this.index.snapshot;
    const desired = desiredState(snapshot, this.config.nodeName, (uid) => registry.cookieOf(uid), this.workloadIds, this.serviceIds);
    const byCookie = new Map<bigint, Workload>();
    for (const w of capturedWorkloads(snapshot, this.config.nodeName)) {
      const cookie = registry.cookieOf(w.uid);
      if (cookie !== undefined) byCookie.set(cookie, w);
    }
    this.workloadByCookie = byCookie;
    const results = this.datapath.apply(desired);
    this.noteEnrollmentChanges(byCookie);
    const updated = results.reduce((n, r) => n + r.updated, 0);
    const deleted = results.reduce((n, r) => n + r.deleted, 0);
    const errors = results.flatMap((r) => r.errors);
    this.lastReconcile = { at: new Date().toISOString(), errors, updated, deleted };
    const log = this.logger.child({ component: 'datapath' });
    if (errors.length) log.error({ errors }, 'map reconcile had errors');
    if (updated || deleted) log.info({ results, enrolled: byCookie.size }, 'maps reconciled');
    this.readiness.done('maps reconciled');
  }

  /**
   * Enrollment never touches live connections: those a pod opened before it
   * was enrolled keep their direct path. Count them, so the CLI can say so.
   */
  private noteEnrollmentChanges(byCookie: Map<bigint, Workload>): void {
    const log = this.logger.child({ component: 'enrollment' });
    const current = new Set([...byCookie.values()].map((w) => w.uid));
    for (const uid of [...this.enrolledSince.keys()]) {
      if (!current.has(uid)) {
        this.enrolledSince.delete(uid);
        log.info({ uid }, 'workload left the mesh');
      }
    }
    for (const w of byCookie.values()) {
      if (this.enrolledSince.has(w.uid)) continue;
      const entry: { at: string; preexistingConnections?: number } = { at: new Date().toISOString() };
      this.enrolledSince.set(w.uid, entry);
      void this.registry?.establishedConnections(w.uid).then((n) => {
        entry.preexistingConnections = n;
        log.info({ workload: `${w.namespace}/${w.name}`, preexistingConnections: n }, 'workload enrolled; connections opened before stay as they are');
      });
    }
  }

  // ---- inspection (admin endpoint) ----

  status(): object {
    const snapshot = this.index.snapshot;
    return {
      node: this.config.nodeName,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      ready: this.readiness.ready,
      pending: this.readiness.blockers(),
      proxy: `${this.config.proxyAddress}:${this.config.proxyPort}`,
      bpf: { pinRoot: this.datapath?.pinRoot, attached: this.datapath?.attached ?? [] },
      config: this.source?.status,
      workloads: snapshot.workloads.filter((w) => w.node === this.config.nodeName).length,
      services: snapshot.services.length,
      enrolled: [...this.workloadByCookie.entries()].map(([cookie, w]) => ({
        workload: `${w.namespace}/${w.name}`,
        ips: w.ips,
        netnsCookie: cookie,
        enrolledAt: this.enrolledSince.get(w.uid)?.at,
        preexistingConnections: this.enrolledSince.get(w.uid)?.preexistingConnections,
      })),
      podNetnsErrors: this.registry?.errors() ?? {},
      lastReconcile: this.lastReconcile,
      proxyCounters: this.proxy?.counters,
      activeConnections: this.proxy?.activeConnections ?? 0,
    };
  }

  maps(): object {
    const dp = this.datapath;
    if (!dp) return { error: 'datapath not loaded' };
    const serviceById = new Map<string, string>();
    for (const s of this.index.snapshot.services) for (const ip of s.clusterIPs) for (const p of s.ports) serviceById.set(`${ip}:${p.port}`, `${s.namespace}/${s.name}`);
    return {
      pinRoot: dp.pinRoot,
      enrollment: dp.enroll.entries().map((e) => {
        const w = this.workloadByCookie.get(e.key);
        return { netnsCookie: e.key, workloadId: e.value.workloadId, workload: w ? `${w.namespace}/${w.name}` : '' };
      }),
      vips: dp.vips.entries().map((e) => ({ vip: `${e.key.address}:${e.key.port}`, serviceId: e.value.serviceId, service: serviceById.get(`${e.key.address}:${e.key.port}`) ?? '' })),
      originalDestinations: dp.tuples.entries().map((e) => ({
        tuple: `${e.key.srcAddress}:${e.key.srcPort} -> ${e.key.dstAddress}:${e.key.dstPort}`,
        originalDst: `${e.value.address}:${e.value.port}`,
        netnsCookie: e.value.netnsCookie,
      })),
      counters: dp.counters(),
    };
  }

  connections(): object {
    const now = Date.now();
    return (this.proxy?.connections() ?? []).map((c) => ({ ...c, ageMs: now - c.startedAt }));
  }

  configDump(): object {
    return { config: this.config, snapshot: this.index.snapshot, endpoints: this.proxy?.endpoints.snapshot(Date.now()) ?? [] };
  }

  private readyResponse() {
    return this.readiness.ready
      ? { status: 200, body: { ready: true } }
      : { status: 503, body: { ready: false, pending: this.readiness.blockers() } };
  }

  private async startAdmin(): Promise<void> {
    const admin = createJsonServer({
      '/status': () => ({ body: this.status() }),
      '/maps': () => ({ body: this.maps() }),
      '/connections': () => ({ body: this.connections() }),
      '/config_dump': () => ({ body: this.configDump() }),
      '/healthz/ready': () => this.readyResponse(),
    });
    this.servers.push(admin);
    await listenUnix(admin, this.config.adminSocket);
    if (this.config.adminPort) {
      // The same admin API on loopback only, never on a routable address.
      const local = createJsonServer({ '/status': () => ({ body: this.status() }) });
      this.servers.push(local);
      await listenTcp(local, '127.0.0.1', this.config.adminPort).catch((err) =>
        this.logger.warn({ err: (err as Error).message }, 'admin port not available; the unix socket still serves'),
      );
    }
  }

  private async startStatusServers(): Promise<void> {
    const { config } = this;
    if (config.metricsPort) {
      const registry = createRegistry({
        proxyCounters: () => ({ ...(this.proxy?.counters ?? {}) }),
        activeConnections: () => this.proxy?.activeConnections ?? 0,
        bpfCounters: () => this.datapath?.counters() ?? {},
        enrolledWorkloads: () => this.workloadByCookie.size,
        snapshotVersion: () => this.index.snapshot.version,
      });
      const metrics = createJsonServer({
        '/metrics': async () => ({ body: await registry.metrics(), contentType: registry.contentType }),
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
}
