// The agent's admin API: the JSON body of each view as sluice-agent serves it
// (src/agent/agent.ts builds them) and sluicectl reads it (src/cli/). One
// declaration for both sides, so a field renamed on one side fails to
// compile on the other. Values are JSON: a netns cookie (a 64-bit integer)
// travels as a decimal string, times as ISO 8601 strings.
import type { ProxiedConnection } from '../model/connection';

/** One xDS type of the agent's Delta ADS stream (GET /status config.xds.types). */
export interface XdsTypeStatusView {
  /** Type URL. */
  type: string;
  received: number;
  acks: number;
  nacks: number;
  synced: boolean;
  lastAck?: { version: string; nonce: string; at: string };
  lastNack?: { version: string; nonce: string; at: string; reason: string };
}

/** Where the agent's configuration comes from, and how that is going. */
export interface AgentConfigStatusView {
  source: string;
  version: string;
  file?: { file: string; version: string; appliedAt: string; lastError: string; rejected: { name: string; reason: string }[] };
  xds?: { target: string; node: string; state: string; connectedSince: string; lastError: string; types: XdsTypeStatusView[] };
}

/** An enrolled pod of this node. */
export interface EnrolledPodView {
  /** namespace/name */
  workload: string;
  ips: string[];
  netnsCookie: string;
  enrolledAt?: string;
  /** TCP connections the pod had open when it was enrolled (left uncaptured). */
  preexistingConnections?: number;
  /** Why its STRICT mode is not enforced in the kernel, when it is not. */
  strictNotEnforced?: string;
}

/** A pod whose plaintext from outside the mesh goes through the node proxy. */
export interface InboundPodView {
  pod: string;
  ip: string;
  listening: boolean;
  /** Why its listener is not open (plaintext into it is dropped meanwhile). */
  error?: string;
  /** Set for a STRICT pod whose kernel filter is not in place: all its plaintext is refused. */
  refuseAll?: string;
}

/** A map key the agent could not put right: retried with backoff until it is (agent/map-sync.ts). */
export interface FailingKeyView {
  map: string;
  /** The key as operators write it ("10.96.0.10:80", "ifindex 7", "pod ns/name", "service ns/name"). */
  key: string;
  op: 'update' | 'delete' | 'attach';
  error: string;
  /** When it first failed (ISO 8601). */
  since: string;
  /** Passes it has failed in a row. */
  passes: number;
}

/** The map sync: keys failing now (the first 50 listed, oldest first) and when they are tried again. */
export interface MapSyncView {
  failingKeys: number;
  failing: FailingKeyView[];
  /** Full passes run to retry failing keys, since start. */
  retries: number;
  /** Absent when no retry is waiting. */
  nextRetryInMs?: number;
  /** The backoff the waiting retry was scheduled with, ms (1 s doubling to 30 s). */
  backoffMs?: number;
}

/** GET /status */
export interface AgentStatusView {
  node: string;
  pid: number;
  uptimeSeconds: number;
  memory: { rssBytes: number; heapUsedBytes: number };
  ready: boolean;
  /** Readiness blockers still pending. */
  pending: string[];
  /** address:port of the node proxy. */
  proxy: string;
  relay: string;
  bpf: { pinRoot?: string; attached: { program: string; reused: boolean }[] };
  config: AgentConfigStatusView;
  /** Workloads of this node, enrolled or not. */
  workloads: number;
  services: number;
  enrolled: EnrolledPodView[];
  inboundCapture: { pods: InboundPodView[]; mapErrors: string[] };
  /** Pod record file or uid -> why its netns could not be resolved. */
  podNetnsErrors: Record<string, string>;
  lastReconcile: { at: string; errors: string[]; updated: number; deleted: number };
  resync: { intervalSeconds: number; last?: string; repairs: number };
  mapSync: MapSyncView;
  /** The node proxy's counters by name (absent before the proxy starts). */
  proxyCounters?: Record<string, number>;
  activeConnections: number;
  connectionBudget: { maxConnections: number; maxPerSource: number; inUse: number; waiting?: number };
  /** Per map: entries, capacity, and for the VIP map what resources were admitted or rejected. */
  mapFill: Record<string, { entries: number; capacity: number; admitted?: { entries: number; limit: number }; rejectedResources?: number }>;
  /** Tunnel counters (null without workload certificates). */
  tunnels: ({ openSessions?: number; streamsOpened?: number; server?: Record<string, number> } & Record<string, unknown>) | null;
}

/** GET /maps: the kernel maps as they are now. */
export interface MapsView {
  pinRoot: string;
  enrollment: { netnsCookie: string; workloadId: number; workload: string }[];
  vips: { vip: string; serviceId: number; service: string }[];
  originalDestinations: { tuple: string; originalDst: string; netnsCookie: string }[];
  /** Per-CPU counters summed over all CPUs, by name (enum sluice_counter). */
  counters: Record<string, number>;
}

/** GET /connections: one proxied connection, with its age in ms. */
export interface ConnectionView extends ProxiedConnection {
  ageMs: number;
}
