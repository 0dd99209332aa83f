// Wires one node agent together: datapath (kernel), snapshot source, pod
// netns registry, node proxy, and the admin / metrics / readiness servers.
import type * as net from 'node:net';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/agent-config';
import { BpfDatapath, interfaceIndex, type StrictAttachOptions } from '../kernel/bpf-datapath';
import { IdAllocator, desiredEnrollments, desiredState, vipEntries, workloadVipEntries, workloadVipKey, type DesiredState, type VipEntry } from '../datapath/desired-state';
import type { ReconcileResult } from '../datapath/reconciler';
import { MapSync } from './map-sync';
import { admitByVipCapacity } from './vip-admission';
import { NodeWorkloads } from './node-workloads';
import { MapCapacity } from '../datapath/map-capacity';
import { PodNetnsRegistry } from '../kernel/pod-netns-registry';
import { InboundCapture, desiredInboundPods } from './inbound-capture';
import { PeerAuthenticationEnforcer } from './peer-authentication';
import { AgentAdmin, type AgentParts } from './admin';
import { SpliceRelay } from '../kernel/splice-relay';
import { endedByReset, resetOnClose, serverFd, setTcpKeepalive, socketFd, type KeepaliveSettings } from '../kernel/socket-options';
import { authorizeConnection } from '../proxy/connection-decision';
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { Metadata as GrpcMetadata } from '@grpc/grpc-js';
import { CertificateManager } from '../identity/certificate-manager';
import { NODE_METADATA } from '../identity/certificate-protocol';
import { controlPlaneChannelCredentials } from '../identity/control-plane-tls';
import { AccessLog } from '../observability/access-log';
import { ComponentLoggers } from '../observability/logger';
import { Readiness } from '../observability/readiness';
import { PolicySet } from '../proxy/authorization';
import { NodeProxy } from '../proxy/node-proxy';
import { TUNNEL_PORT, TunnelPool } from '../proxy/tunnel-client';
import { TunnelServer } from '../proxy/tunnel-server';
import { ServiceIndex } from '../proxy/service-index';
import { ResourceStore, emptyDelta, type StoreDelta } from './resource-store';
import { SnapshotFileSource } from './snapshot-file-source';
import { connectionLimits } from './connection-budget';
import { XdsSource } from './xds-source';
import { CniEndpoint, MESH_RECORD_FILE } from './cni-endpoint';
import type { ListenerName } from './handover';
import { Succession, type SuccessionDeps } from './succession';
import { detectKubepodsCgroup } from '../kernel/kubepods-cgroup';
import * as path from 'node:path';

const BLOCKERS = ['bpf attached', 'config synced', 'pod netns scanned', 'maps reconciled', 'proxy listening', 'workload certificates'];
const PERSIST_DELAY_MS = 1000;
/** How often the bytes of live connections are added to istio_tcp_*_bytes_total (also before each scrape). */
const TELEMETRY_INTERVAL_MS = 5000;

/**
 * Keepalive on every socket the proxy and the tunnels hold: a silent peer
 * fails its connection within 5 + 2 x 3 = 11 s (also the TCP_USER_TIMEOUT
 * for unacknowledged data), and the other side is then reset.
 */
export const PROXY_KEEPALIVE: KeepaliveSettings = Object.freeze({ idleSeconds: 5, intervalSeconds: 2, probes: 3 });

/**
 * One node agent: start() brings the parts up in order (datapath, pod
 * registry, CNI endpoint, configuration source, certificates, tunnels, node
 * proxy, status servers), stopGracefully() and stop() take them down.
 * The admin views are admin.ts's, the map sync's timing map-sync.ts's.
 */
export class Agent {
  readonly readiness = new Readiness(BLOCKERS);
  private readonly store = new ResourceStore();
  private index = new ServiceIndex();
  private policies = PolicySet.empty();
  private pendingDelta = emptyDelta();
  private enrollmentDirty = false;
  private configFrom = '';
  private persistTimer?: NodeJS.Timeout;
  /** This node's workloads: enrolled by netns cookie, local by pod IP, with their enrollment records. */
  private readonly workloads: NodeWorkloads;
  private readonly workloadIds = new IdAllocator();
  private readonly serviceIds = new IdAllocator();
  private reconcileTimer?: NodeJS.Immediate;
  /** When the maps are put right again: failing keys retried with backoff, drift repaired by a periodic resync. */
  private readonly mapSync: MapSync;
  /** Set once stop() began: no reconcile pass runs from then on. */
  private stopping = false;
  private datapath?: BpfDatapath;
  private source?: SnapshotFileSource;
  private xds?: XdsSource;
  private registry?: PodNetnsRegistry;
  private inboundCapture?: InboundCapture;
  private cni?: CniEndpoint;
  private proxy?: NodeProxy;
  private relay?: SpliceRelay;
  private certificates?: CertificateManager;
  private tunnels?: TunnelPool;
  private tunnelServer?: TunnelServer;
  /** STRICT and PERMISSIVE in the kernel (peer-authentication.ts); set once the datapath is open. */
  private peerAuthentication?: PeerAuthenticationEnforcer;

  private readonly limits;
  private vipCapacity?: MapCapacity;
  /** Component loggers, whose levels change at run time (POST /logging). */
  private readonly logs: ComponentLoggers;
  readonly accessLog: AccessLog;
  /** The admin API, metrics and readiness endpoints. */
  private readonly admin: AgentAdmin;
  private telemetryTimer?: NodeJS.Timeout;
  /** Handover to a newer agent, inheritance at start, drains at stop. */
  private readonly succession: Succession;

  constructor(
    readonly config: Readonly<AgentConfig>,
    private readonly logger: Logger,
  ) {
    this.limits = connectionLimits(config.maxConnections, config.maxConnectionsPerWorkload, undefined, config.relayThreads);
    this.logs = new ComponentLoggers(logger);
    this.accessLog = new AccessLog(this.logs.component('access'), { enabled: config.accessLog });
    this.workloads = new NodeWorkloads({
      node: config.nodeName,
      cookieOf: (uid) => this.registry?.cookieOf(uid),
      establishedConnections: (uid) => this.registry?.establishedConnections(uid) ?? Promise.resolve(undefined),
      logger: this.logs.component('enrollment'),
    });
    this.succession = new Succession(this.successionDeps());
    this.admin = new AgentAdmin({ config, logger, logs: this.logs, accessLog: this.accessLog, readiness: this.readiness, parts: () => this.parts() });
    this.mapSync = new MapSync({ resyncIntervalSeconds: config.resyncInterval, fullPass: () => this.fullPass(), logger: this.logs.component('datapath') });
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    // Before anything is bound: an agent already running on this node
    // releases its sockets and hands over its listeners (handover.ts).
    const inherited = this.succession.inherit();
    // Admin first, so an agent stuck on start-up can still be asked why.
    await this.admin.startAdmin();

    this.datapath = await BpfDatapath.open({
      bpffsDir: config.bpffs,
      cgroupPath: config.cgroup === 'auto' ? detectKubepodsCgroup() : config.cgroup,
      proxyAddress: config.proxyAddress,
      proxyPort: config.proxyPort,
    });
    this.logs.component('datapath').info({ pinRoot: this.datapath.pinRoot, attached: this.datapath.attached }, 'capture programs attached');
    this.readiness.done('bpf attached');
    const opened = this.datapath;
    this.peerAuthentication = new PeerAuthenticationEnforcer({
      datapath: opened,
      hostInterfaceOf: (uid) => this.registry?.get(uid)?.hostInterface,
      interfaceIndex,
      allowedAddress: config.proxyAddress,
    });
    // A STRICT filter attached (or failed) on its worker thread: one pass, so
    // the pod's state and sluice-cni's answer follow.
    opened.onStrictFilterSettled = () => this.scheduleReconcile();

    this.registry = new PodNetnsRegistry(config.podNetnsDir, () => {
      this.enrollmentDirty = true;
      this.scheduleReconcile();
    });
    await this.registry.start();
    this.readiness.done('pod netns scanned');
    // sluice-cni reports new pods here; answers once each is enrolled (src/cni/).
    const registry = this.registry;
    this.cni = new CniEndpoint({
      node: config.nodeName, socketPath: config.cniSocket, podNetnsDir: config.podNetnsDir, hostNetnsDir: config.hostNetnsDir,
      meshRecordFile: path.join(config.stateDir, MESH_RECORD_FILE),
      workload: (uid) => this.store.workloads.get(uid),
      enrolled: (uid) => this.workloads.isEnrolled(uid) && !this.strictNotEnforced.has(uid),
      podError: (uid) => registry.errors()[uid] ?? this.strictNotEnforced.get(uid), pending: () => this.readiness.blockers(), logger: this.logs.component('cni'),
    });
    await this.cni.listen();

    const token = config.nodeTokenFile ? nodeTokenReader(config.nodeTokenFile, this.logs.component('certificates')) : undefined;
    const credentials = config.controlPlaneCa ? controlPlaneChannelCredentials(config.controlPlaneCa, config.trustDomain) : undefined;
    if (config.snapshot) this.startFileSource();
    else this.startXdsSource(credentials, token);
    if (token) {
      this.certificates = new CertificateManager(
        { target: config.controlPlane, node: config.nodeName, token, validitySeconds: config.certificateTtl, credentials, keepDir: config.credentialsDir },
        this.logs.component('certificates'),
      );
      this.certificates.start();
      this.awaitCertificates(this.certificates);
    } else {
      this.readiness.done('workload certificates');
    }

    const datapath = this.datapath;
    const accessLog = this.accessLog;
    const telemetry = config.metricsPort ? this.admin.createMetrics() : undefined;
    if (config.relay === 'splice') {
      this.relay = new SpliceRelay();
      this.relay.start(config.relayThreads);
    }
    const certificates = this.certificates;
    const keepalive = (socket: net.Socket) => setTcpKeepalive(socket, PROXY_KEEPALIVE);
    if (certificates) {
      // Cross-node traffic goes through mTLS tunnels between agents.
      this.tunnels = new TunnelPool((identity) => certificates.credentials(identity), TUNNEL_PORT, { keepalive });
      this.tunnelServer = new TunnelServer({
        credentials: (identity) => certificates.credentials(identity),
        rootPem: () => certificates.rootPem(),
        localWorkload: (ip) => this.workloads.byIp.get(ip),
        workloadsWithIp: (ip) => this.index.workloadsWithIp(ip),
        keepalive,
        endedByReset,
        resetOnClose,
        limits: this.limits,
        authorize: (destination, source, port) => {
          const decision = authorizeConnection(this.policies, destination, destination.namespace, source, port);
          this.proxy?.countDecision(decision.policy, decision.allowed);
          return decision;
        },
        serviceFor: (destination, port) => this.index.serviceOfEndpoint(destination.uid, port),
        telemetry,
        accessLog: (entry) => accessLog.write(entry),
        logger: this.logs.component('tunnel'),
      });
      await this.succession.listenInherited('tunnel', inherited, (fd) => this.tunnelServer!.listen(config.proxyAddress, TUNNEL_PORT, fd));
    }
    this.proxy = new NodeProxy({
      offload: this.relay,
      node: config.nodeName,
      tunnel: this.tunnels,
      originalDst: (socket) => datapath.originalDst(socketFd(socket)),
      sourceWorkload: (cookie) => this.workloads.byCookie.get(cookie),
      index: () => this.index,
      policies: () => this.policies,
      logger: this.logs.component('proxy'),
      keepalive,
      endedByReset,
      resetOnClose,
      limits: this.limits,
      telemetry,
      accessLog: (entry) => accessLog.write(entry),
    });
    const proxy = this.proxy;
    await this.succession.listenInherited('proxy', inherited, (fd) => proxy.listen(config.proxyAddress, config.proxyPort, fd));
    this.inboundCapture = this.createInboundCapture();
    this.scheduleReconcile();
    this.succession.took(inherited);
    this.readiness.done('proxy listening');
    if (telemetry) {
      this.telemetryTimer = setInterval(() => {
        this.admin.reportBytes();
        telemetry.expireIdle();
      }, TELEMETRY_INTERVAL_MS);
      this.telemetryTimer.unref();
    }
    await this.admin.startStatusServers();
    this.mapSync.start();
    await this.succession.offer();
    logger.info({ node: config.nodeName, proxy: `${config.proxyAddress}:${config.proxyPort}` }, 'agent started');
  }

  /** What each step of a succession (succession.ts) does to this agent's parts. */
  private successionDeps(): SuccessionDeps {
    return {
      config: this.config,
      logger: this.logs.component('handover'),
      listeners: () => this.listeningDescriptors(),
      release: async () => {
        if (this.reconcileTimer) clearImmediate(this.reconcileTimer);
        this.reconcileTimer = undefined;
        this.mapSync.stop();
        // A filter attach still running would land after the new agent's own, with this object's program.
        await this.datapath?.strictFiltersSettled();
        // The state file is the new agent's from here: written one last time.
        if (this.persistTimer) {
          clearTimeout(this.persistTimer);
          this.persistTimer = undefined;
          await this.persist();
        }
        await this.cni?.close();
        await this.admin.close();
        // The successor opens its own listeners in the pods and owns the map;
        // until it does, plaintext into those pods is dropped.
        await this.inboundCapture?.close();
      },
      resume: async () => {
        // The maps first: a socket that cannot be bound again (the failed
        // agent may still hold one) must not leave them unsynced.
        if (this.proxy && this.datapath) this.inboundCapture = this.createInboundCapture();
        // Whatever changed meanwhile, and anything the new agent wrote: one full pass.
        this.enrollmentDirty = true;
        this.scheduleReconcile();
        this.mapSync.start();
        this.mapSync.resync();
        await this.admin.startAdmin();
        await this.cni?.listen();
        await this.admin.startStatusServers();
      },
      quiesce: () => {
        this.mapSync.stop();
        this.source?.stop();
        this.xds?.stop();
        this.certificates?.stopRenewing();
        this.registry?.stop();
        this.proxy?.stopAccepting();
        this.tunnelServer?.stopAccepting();
      },
      // Inbound tunnel sessions count until they closed themselves after their
      // last stream (GOAWAY was sent): destroying one earlier could drop the
      // final frames of a stream that just ended.
      openAfterHandover: () => (this.proxy?.activeConnections ?? 0) + (this.proxy?.waitingConnections ?? 0) + (this.tunnelServer?.openStreams ?? 0) + (this.tunnelServer?.openSessions ?? 0),
      stopAccepting: () => {
        if (!this.proxy) return false;
        this.proxy.stopAccepting();
        this.tunnelServer?.stopListening();
        return true;
      },
      inFlight: () => (this.proxy?.activeConnections ?? 0) + (this.proxy?.waitingConnections ?? 0) + (this.tunnelServer?.openStreams ?? 0) + (this.tunnelServer?.waitingStreams ?? 0),
      stop: () => this.stop(),
    };
  }

  /** The node proxy's and the tunnel server's listening descriptors, by name (those listening). */
  private listeningDescriptors(): Map<ListenerName, number> {
    const listeners = new Map<ListenerName, number>();
    if (this.proxy) listeners.set('proxy', serverFd(this.proxy.listener));
    if (this.tunnelServer) listeners.set('tunnel', serverFd(this.tunnelServer.listener));
    for (const [name, fd] of listeners) if (fd < 0) listeners.delete(name);
    return listeners;
  }

  /** SIGTERM with no successor: stop accepting, let what is in flight end (up to --stop-drain-ms), stop (succession.ts). */
  stopGracefully(): Promise<void> {
    return this.succession.stopGracefully();
  }

  /** SIGTERM after a handover began: drain, and resolve `drained` (succession.ts). False when no handover began. */
  stopAfterHandover(): boolean {
    return this.succession.stopAfterHandover();
  }

  /** Resolves when, after a handover, this agent drained and stopped: the process may exit. */
  get drained(): Promise<void> {
    return this.succession.drained;
  }

  /** Set while a newer agent owns the maps, or while this agent only finishes. */
  private get mapsPaused(): boolean {
    return this.succession.mapsPaused;
  }

  /**
   * Ready only once every identity on this node has a valid certificate
   * (obtained, or kept from before a restart): without them nothing can
   * cross to another node, and readiness must not claim otherwise.
   */
  private awaitCertificates(certificates: CertificateManager): void {
    const timer = setInterval(() => {
      const blockers = this.readiness.blockers();
      if (!blockers.includes('workload certificates')) return clearInterval(timer);
      if (blockers.includes('maps reconciled') || !certificates.allValid()) return;
      this.readiness.done('workload certificates');
      clearInterval(timer);
    }, 200);
    timer.unref();
  }

  /** Stops serving. Links and maps stay pinned: capture survives the agent. */
  async stop(): Promise<void> {
    // No pass from here: a filter attach that settles meanwhile must not start one.
    this.stopping = true;
    if (this.datapath) this.datapath.onStrictFilterSettled = undefined;
    this.mapSync.stop();
    await this.succession.close();
    if (this.reconcileTimer) clearImmediate(this.reconcileTimer);
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      await this.persist();
    }
    this.source?.stop();
    this.xds?.stop();
    this.certificates?.stop();
    this.registry?.stop();
    await this.cni?.close();
    await this.inboundCapture?.close();
    await this.proxy?.close(true);
    this.tunnels?.close();
    await this.tunnelServer?.close();
    this.relay?.stop();
    await this.admin.close();
    this.datapath?.close();
  }

  private startFileSource(): void {
    this.configFrom = `file ${this.config.snapshot}`;
    this.source = new SnapshotFileSource(this.config.snapshot, this.logs.component('config'), (snapshot) => {
      this.onDelta(this.store.replaceAll(snapshot));
      this.readiness.done('config synced');
      this.logs.component('config').info(
        { version: snapshot.version, workloads: snapshot.workloads.length, services: snapshot.services.length },
        'configuration applied',
      );
    });
    this.source.start();
  }

  private startXdsSource(credentials: grpc.ChannelCredentials | undefined, token: (() => string) | undefined): void {
    const log = this.logs.component('xds');
    this.configFrom = `control plane ${this.config.controlPlane}${credentials ? ' (TLS)' : ''}`;
    const node = this.config.nodeName;
    const metadata = token
      ? () => {
          const md = new GrpcMetadata();
          md.set(NODE_METADATA, node);
          md.set('authorization', `Bearer ${token()}`);
          return md;
        }
      : undefined;
    this.xds = new XdsSource(this.config.controlPlane, node, this.store, (delta) => this.onDelta(delta), log, credentials, metadata);
    // A service whose VIP entries do not fit in the kernel map is refused
    // whole (NACK naming it and the map), never half installed.
    const mapCapacity = this.datapath!.vipFill().capacity;
    const capacity = new MapCapacity('sluice_vips', this.config.maxVipEntries > 0 ? Math.min(this.config.maxVipEntries, mapCapacity) : mapCapacity);
    this.vipCapacity = capacity;
    // Meshed workloads' own addresses share the map, so they are admitted too.
    admitByVipCapacity(this.xds, capacity);
    // Serve the last good state at once if there is one: the control plane
    // may be away right now, and the pods on this node should not wait for it.
    try {
      const restored = this.xds.restore(this.config.stateDir);
      if (restored) {
        for (const r of restored.rejected) log.error({ resource: r.name }, `persisted resource not used: ${r.reason}`);
        this.onDelta(restored.delta);
        this.readiness.done('config synced');
        this.configFrom = `control plane ${this.config.controlPlane} (serving state saved at ${restored.savedAt} until it answers)`;
        log.info({ version: restored.version, savedAt: restored.savedAt }, 'serving the persisted state');
      }
    } catch (err) {
      log.error(`persisted state not used: ${(err as Error).message}`);
    }
    this.xds.client.onChange(() => {
      if (this.xds?.client.synced && this.readiness.blockers().includes('config synced')) this.readiness.done('config synced');
      if (this.xds?.client.state === 'connected') {
        this.configFrom = `control plane ${this.config.controlPlane}${credentials ? ' (TLS)' : ''}`;
        this.certificates?.retryNow();
      }
    });
    this.xds.start();
  }

  private onDelta(delta: StoreDelta): void {
    const p = this.pendingDelta;
    p.full ||= delta.full;
    p.policies ||= delta.policies;
    for (const k of delta.services) p.services.add(k);
    for (const k of delta.workloads) p.workloads.add(k);
    this.scheduleReconcile();
    // While a newer agent takes over, the state file is its to write.
    if (this.xds && !this.mapsPaused) this.schedulePersist();
  }

  private schedulePersist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persist();
    }, PERSIST_DELAY_MS);
  }

  private persist(): Promise<void> {
    return this.xds ? this.xds.save(this.config.stateDir) : Promise.resolve();
  }

  /** Coalesces the changes of one event-loop turn (one xDS response, one file read) into one pass. */
  private scheduleReconcile(): void {
    if (this.reconcileTimer) return;
    this.reconcileTimer = setImmediate(() => {
      this.reconcileTimer = undefined;
      this.reconcile();
    });
  }

  /** Applies what changed: one service at a time, or everything after a full change. */
  private reconcile(): void {
    if (this.stopping || !this.datapath || !this.registry || this.mapsPaused || this.readiness.blockers().includes('config synced')) return;
    const delta = this.pendingDelta;
    this.pendingDelta = emptyDelta();
    const log = this.logs.component('datapath');
    const results: ReconcileResult[] = [];
    const errors: string[] = [];
    if (delta.full) {
      this.index = ServiceIndex.of(this.store.services.values(), this.store.workloads.values());
      results.push(...this.datapath.apply(this.desiredState()));
      this.enrollmentDirty = false;
    } else {
      // Incremental: each service or workload is installed whole or not at
      // all (updateServiceVips); a failure is its own key in the map sync.
      const vips: ReconcileResult = { map: 'sluice_vips', updated: 0, deleted: 0, unchanged: 0, errors: [], failures: [], covered: [] };
      const update = (key: string, entries: VipEntry[] | undefined) => {
        vips.covered!.push(key);
        try {
          const r = this.datapath!.updateServiceVips(key, entries);
          vips.updated += r.updated;
          vips.deleted += r.deleted;
        } catch (err) {
          vips.errors.push(`${key}: ${(err as Error).message}`);
          vips.failures.push({ map: 'sluice_vips', key, op: 'update', error: (err as Error).message });
        }
      };
      for (const key of delta.services) {
        const service = this.store.services.get(key);
        if (service) this.index.upsertService(service);
        else this.index.removeService(key);
        update(`service ${key}`, service ? vipEntries(service, this.serviceIds.idOf(key)) : undefined);
      }
      for (const uid of delta.workloads) {
        const w = this.store.workloads.get(uid);
        if (w) this.index.upsertWorkload(w);
        else this.index.removeWorkload(uid);
        if (w?.node === this.config.nodeName || !w) this.enrollmentDirty = true;
        const entries = w ? workloadVipEntries(w) : [];
        update(workloadVipKey(uid), entries.length ? entries : undefined);
      }
      if (vips.covered!.length) results.push(vips);
    }
    if (delta.policies) {
      try {
        this.policies = new PolicySet([...this.store.authorizationPolicies.values()]);
      } catch (err) {
        errors.push(`authorization policies not applied, the previous ones stay: ${(err as Error).message}`);
      }
    }
    if (delta.policies || delta.full) {
      // Open connections that the policies in force no longer allow are closed now.
      const revoked = (this.proxy?.revalidate() ?? 0) + (this.tunnelServer?.revalidate() ?? 0);
      if (revoked) log.info({ revoked }, 'closed open connections that policy no longer allows');
    }
    if (this.enrollmentDirty) {
      this.enrollmentDirty = false;
      const registry = this.registry;
      results.push(this.datapath.applyEnrollments(desiredEnrollments(this.store.workloads.values(), this.config.nodeName, (uid) => registry.cookieOf(uid), this.workloadIds)));
    }
    this.refreshEnrolled();
    results.push(this.applyPeerAuthentication(), this.applyInboundCapture());
    const summary = this.mapSync.record(results);
    summary.errors.unshift(...errors);
    if (summary.errors.length) log.error({ errors: summary.errors }, 'map reconcile had errors');
    if (summary.updated || summary.deleted) log.info({ updated: summary.updated, deleted: summary.deleted, enrolled: this.workloads.byCookie.size, version: this.store.version }, 'maps reconciled');
    this.readiness.done('maps reconciled');
  }

  /** Every map's desired contents from the configuration now (datapath/desired-state.ts). */
  private desiredState(): DesiredState {
    const registry = this.registry!;
    return desiredState(this.store.snapshot(), this.config.nodeName, (uid) => registry.cookieOf(uid), this.workloadIds, this.serviceIds);
  }

  /**
   * The map sync's full pass (map-sync.ts): every map against the desired
   * state, reading the kernel. Undefined while it cannot run: before the
   * first reconcile, or while a newer agent owns the maps. The service index
   * is not rebuilt: only kernel state can drift.
   */
  private fullPass(): ReconcileResult[] | undefined {
    if (!this.datapath || !this.registry || this.mapsPaused || this.readiness.blockers().includes('maps reconciled')) return undefined;
    return [...this.datapath.apply(this.desiredState()), this.applyPeerAuthentication({ retryFailed: true }), this.applyInboundCapture()];
  }

  private createInboundCapture(): InboundCapture {
    const datapath = this.datapath!;
    const proxy = this.proxy!;
    return new InboundCapture({
      captureInbound: (netns, iface, port) => datapath.captureInbound(netns, iface, port),
      applyInbound: (entries) => datapath.applyInbound(entries),
      serve: (fd, pod) => proxy.serveInbound(fd, pod.refuseAll),
      allowedAddress: this.config.proxyAddress,
      logger: this.logs.component('inbound'),
    });
  }

  /**
   * Plaintext into meshed pods that policy protects goes through the node
   * proxy (inbound-capture.ts). Only from a synced configuration: an agent
   * starting without one keeps its predecessor's entries (their pods' plaintext
   * is dropped meanwhile) rather than removing them. Runs after STRICT, whose
   * pass says which pods' filters are not in place.
   */
  private applyInboundCapture(): ReconcileResult {
    const registry = this.registry;
    if (!this.inboundCapture || !registry || this.mapsPaused || this.readiness.blockers().includes('config synced')) return untouched('sluice_inbound');
    const pods = desiredInboundPods(this.workloads.byCookie.values(), this.policies, [...this.store.peerAuthentications.values()], (uid) => registry.get(uid), this.strictNotEnforced);
    return this.inboundCapture.reconcile(pods);
  }

  /**
   * PeerAuthentication in the kernel for the enrolled pods
   * (peer-authentication.ts). Filters whose attach failed are tried again
   * only with `retryFailed`: by the map sync, which backs off.
   */
  private applyPeerAuthentication(options: StrictAttachOptions = {}): ReconcileResult {
    if (!this.peerAuthentication) return untouched('sluice_strict');
    return this.peerAuthentication.apply(this.workloads.byCookie.values(), [...this.store.peerAuthentications.values()], options);
  }

  /** Pods under STRICT whose filter is not in place (uid -> why). */
  private get strictNotEnforced(): ReadonlyMap<string, string> {
    return this.peerAuthentication?.notEnforced ?? new Map();
  }

  /** Recomputes the node's workloads; tells the certificate manager and sluice-cni. */
  private refreshEnrolled(): void {
    const workloads = [...this.store.workloads.values()];
    this.certificates?.setIdentities(this.workloads.identities(workloads));
    this.workloads.refresh(workloads);
    this.cni?.workloadsChanged(workloads);
  }

  /** The parts as they are now, for the admin views and metrics (admin.ts). */
  private parts(): AgentParts {
    return {
      store: this.store,
      index: this.index,
      policies: this.policies,
      workloadByCookie: this.workloads.byCookie,
      enrolledSince: this.workloads.enrolledSince,
      strictNotEnforced: this.strictNotEnforced,
      configFrom: this.configFrom,
      limits: this.limits,
      mapSync: this.mapSync,
      vipCapacity: this.vipCapacity,
      datapath: this.datapath,
      source: this.source,
      xds: this.xds,
      registry: this.registry,
      inboundCapture: this.inboundCapture,
      proxy: this.proxy,
      relay: this.relay,
      certificates: this.certificates,
      tunnels: this.tunnels,
      tunnelServer: this.tunnelServer,
    };
  }
}

/** A pass that did not run: nothing changed, and the map's failing keys stay as they were. */
function untouched(map: string): ReconcileResult {
  return { map, updated: 0, deleted: 0, unchanged: 0, errors: [], failures: [], covered: [] };
}

/**
 * Reads the node credential from `file` now (throws naming the flag when it
 * cannot) and returns a reader for later requests: each reads the file
 * again, since the kubelet rotates a projected service account token in
 * place; when a later read fails, the last token read is used and the
 * failure logged.
 */
function nodeTokenReader(file: string, log: Logger): () => string {
  const read = () => fs.readFileSync(file, 'utf8').trim();
  let last: string;
  try {
    last = read();
  } catch (err) {
    throw new Error(`--node-token-file ${file}: ${(err as Error).message}`);
  }
  return () => {
    try {
      last = read();
    } catch (err) {
      log.warn({ file, err: (err as Error).message }, 'node token file unreadable; using the token read before');
    }
    return last;
  };
}
