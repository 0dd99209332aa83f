// Agent configuration from flags and SLUICE_* environment variables, checked
// with ajv. The result is frozen: nothing changes it after start.
import Ajv from 'ajv';
import * as net from 'node:net';
import type { FlagValues } from '../command-line';
import { type ConfigFlag, ConfigError, configFromValues, readConfig } from './flags';

export { ConfigError };

export interface AgentConfig {
  nodeName: string;
  /** Control plane address host:port or unix:/path (xDS mode). */
  controlPlane: string;
  /** Local snapshot file of workloads and services (static mode, instead of a control plane). */
  snapshot: string;
  /** Where the last good state from the control plane is kept across restarts. */
  stateDir: string;
  /** Root-only directory on tmpfs where workload keys and certificates outlive a restart of the agent. */
  credentialsDir: string;
  /** This node's credential for certificate requests; workload certificates are obtained only when set. */
  nodeTokenFile: string;
  /** The mesh root: the control plane is reached over TLS and must present its SPIFFE ID. */
  controlPlaneCa: string;
  trustDomain: string;
  /** Lifetime asked for workload certificates, seconds (0: the CA's default, one hour). */
  certificateTtl: number;
  /** Directory where the CNI step reports each pod's netns. */
  podNetnsDir: string;
  /** Unix socket where sluice-cni reports new pods ('' = none). */
  cniSocket: string;
  /** The node's named network namespaces, searched at start for pods running before the agent ('' = no search). */
  hostNetnsDir: string;
  /** bpffs directory of this agent; pins live in <bpffs>/v<schema>/. */
  bpffs: string;
  /** cgroup v2 directory whose subtree is captured, or "auto": the kubelet's kubepods cgroup (src/kernel/kubepods-cgroup.ts). */
  cgroup: string;
  proxyAddress: string;
  proxyPort: number;
  /** Admin endpoint: a unix socket path. */
  adminSocket: string;
  /** Unix socket where a newer agent asks this one for its listening sockets ('' = <state-dir>/handover.sock). */
  handoverSocket: string;
  /** Unix socket of the listener keeper (`sluice-agent keep-listeners`), asked at start for the listening sockets it holds ('' = none). */
  listenerKeeperSocket: string;
  /** After handing over, how long open connections may run on before the rest are reset, seconds. */
  drainSeconds: number;
  stopDrainMs: number;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  /** Address the metrics and readiness ports bind to. */
  statusAddress: string;
  /** splice: established connections are relayed by kernel splice on relay threads; stream: in JS. */
  relay: 'splice' | 'stream';
  relayThreads: number;
  /** Seconds between full resyncs of the maps against the desired state (repairs drift); 0: never. */
  resyncInterval: number;
  /** VIP map entries the agent admits (services x cluster IPs x ports); 0: the kernel map's capacity. */
  maxVipEntries: number;
  /** Proxied connections held at once; 0: derived from the descriptor limit (RLIMIT_NOFILE). */
  maxConnections: number;
  /** Proxied connections from one pod at once; 0: a quarter of maxConnections. */
  maxConnectionsPerWorkload: number;
  /** One info line per connection when it ends (component "access"); on by default, as ztunnel's. */
  accessLog: boolean;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  logFile: string;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['nodeName', 'bpffs', 'cgroup', 'proxyAddress'],
  properties: {
    nodeName: { type: 'string', minLength: 1, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' },
    controlPlane: { type: 'string', pattern: '^([^:/]+:[0-9]{1,5}|unix:/.+)?$', default: '' },
    snapshot: { type: 'string', default: '' },
    stateDir: { type: 'string', pattern: '^/', default: '/var/lib/sluice' },
    credentialsDir: { type: 'string', pattern: '^/', default: '/run/sluice/credentials' },
    nodeTokenFile: { type: 'string', default: '' },
    certificateTtl: { type: 'integer', minimum: 0, maximum: 86400, default: 0 },
    controlPlaneCa: { type: 'string', default: '' },
    trustDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', default: 'cluster.local' },
    podNetnsDir: { type: 'string', minLength: 1, default: '/run/sluice/pods' },
    cniSocket: { type: 'string', pattern: '^(/.*)?$', default: '' },
    hostNetnsDir: { type: 'string', pattern: '^(/.*)?$', default: '' },
    bpffs: { type: 'string', pattern: '^/' },
    cgroup: { type: 'string', pattern: '^(/|auto$)' },
    proxyAddress: { type: 'string', format: 'ipv4' },
    proxyPort: { type: 'integer', minimum: 1, maximum: 65535, default: 15001 },
    adminSocket: { type: 'string', default: '/run/sluice/admin.sock' },
    handoverSocket: { type: 'string', default: '' },
    listenerKeeperSocket: { type: 'string', default: '' },
    drainSeconds: { type: 'integer', minimum: 0, maximum: 3600, default: 25 },
    stopDrainMs: { type: 'integer', minimum: 0, maximum: 20000, default: 2000 },
    adminPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15000 },
    metricsPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15020 },
    readinessPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15021 },
    statusAddress: { type: 'string', format: 'ip', default: '0.0.0.0' },
    relay: { enum: ['splice', 'stream'], default: 'splice' },
    relayThreads: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
    maxConnections: { type: 'integer', minimum: 0, default: 0 },
    maxVipEntries: { type: 'integer', minimum: 0, default: 0 },
    resyncInterval: { type: 'integer', minimum: 0, maximum: 86400, default: 30 },
    maxConnectionsPerWorkload: { type: 'integer', minimum: 0, default: 0 },
    accessLog: { type: 'boolean', default: true },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' },
    logFile: { type: 'string', default: '' },
  },
};

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true });
ajv.addFormat('ipv4', (s: string) => net.isIPv4(s));
ajv.addFormat('ip', (s: string) => net.isIP(s) !== 0);
const validate = ajv.compile(schema);

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** The agent's flags; each can also be given as SLUICE_<FLAG> (--proxy-port: SLUICE_PROXY_PORT). */
export const agentFlags: readonly ConfigFlag[] = [
  { name: 'node-name', field: 'nodeName', value: 'NAME', complete: 'none', description: 'this node\'s name, as in the workloads\' spec.nodeName (required)' },
  { name: 'control-plane', field: 'controlPlane', value: 'HOST:PORT', complete: 'none', description: 'control plane to follow over xDS (host:port or unix:/path); or --snapshot' },
  { name: 'snapshot', field: 'snapshot', value: 'FILE', description: 'static snapshot file of workloads and services, instead of a control plane' },
  { name: 'credentials-dir', field: 'credentialsDir', value: 'DIR', complete: 'directory', default: '/run/sluice/credentials', description: 'root-only tmpfs directory where workload keys and certificates outlive an agent restart (never the state directory)' },
  { name: 'state-dir', field: 'stateDir', value: 'DIR', complete: 'directory', default: '/var/lib/sluice', description: 'where the last good state from the control plane is kept across restarts' },
  { name: 'node-token-file', field: 'nodeTokenFile', value: 'FILE', description: 'this node\'s credential; workload certificates are obtained only when set' },
  { name: 'certificate-ttl', field: 'certificateTtl', value: 'SECONDS', complete: 'none', default: '0', description: 'lifetime asked for workload certificates (0: the CA\'s default, one hour)' },
  { name: 'control-plane-ca', field: 'controlPlaneCa', value: 'FILE', description: 'mesh root: reach the control plane over TLS and check its SPIFFE ID' },
  { name: 'trust-domain', field: 'trustDomain', value: 'DOMAIN', complete: 'none', default: 'cluster.local', description: 'trust domain of workload identities' },
  { name: 'pod-netns-dir', field: 'podNetnsDir', value: 'DIR', complete: 'directory', default: '/run/sluice/pods', description: 'directory where the CNI step reports each pod\'s netns' },
  { name: 'cni-socket', field: 'cniSocket', value: 'PATH', description: 'unix socket where sluice-cni reports new pods (the DaemonSet: /run/sluice/cni.sock; default: none)' },
  { name: 'host-netns-dir', field: 'hostNetnsDir', value: 'DIR', complete: 'directory', description: 'the node\'s named network namespaces, searched at start for pods running before the agent (default: no search)' },
  { name: 'bpffs', field: 'bpffs', value: 'DIR', complete: 'directory', description: 'bpffs directory of this agent; pins live in DIR/v<schema>/ (required)' },
  { name: 'cgroup', field: 'cgroup', value: 'DIR', complete: 'directory', description: 'cgroup v2 directory whose subtree is captured, or "auto": the kubelet\'s kubepods cgroup, for either cgroup driver, on unified or hybrid hosts (required)' },
  { name: 'proxy-address', field: 'proxyAddress', value: 'IPV4', complete: 'none', description: 'address of the node proxy that captured connections are sent to (required)' },
  { name: 'proxy-port', field: 'proxyPort', value: 'PORT', complete: 'none', default: '15001', description: 'port of the node proxy' },
  { name: 'admin-socket', field: 'adminSocket', value: 'PATH', default: '/run/sluice/admin.sock', description: 'unix socket of the admin endpoint (what sluicectl reads)' },
  { name: 'listener-keeper-socket', field: 'listenerKeeperSocket', value: 'PATH', description: "unix socket of the listener keeper (sluice-agent keep-listeners), which holds the listening sockets while no agent runs: a restart or crash refuses no connection ('' = no keeper)" },
  { name: 'handover-socket', field: 'handoverSocket', value: 'PATH', description: 'unix socket where a newer agent on this node takes over the listening sockets, so an upgrade refuses no connection (default: STATE-DIR/handover.sock)' },
  { name: 'stop-drain-ms', field: 'stopDrainMs', value: 'MS', complete: 'none', default: '2000', description: 'on a stop with no successor (SIGTERM), how long the connections in flight may run on, while new ones wait in the listener keeper\'s queue, before the rest are reset (0: reset at once; the process exits within 8 s past it, so keep the sum below the pod\'s termination grace period)' },
  { name: 'drain-seconds', field: 'drainSeconds', value: 'SECONDS', complete: 'none', default: '25', description: 'after a handover, how long open connections run on before the rest are reset (keep it below the pod\'s termination grace period)' },
  { name: 'admin-port', field: 'adminPort', value: 'PORT', complete: 'none', default: '15000', description: 'admin endpoint on 127.0.0.1 (0: none)' },
  { name: 'metrics-port', field: 'metricsPort', value: 'PORT', complete: 'none', default: '15020', description: 'Prometheus metrics port (0: none)' },
  { name: 'readiness-port', field: 'readinessPort', value: 'PORT', complete: 'none', default: '15021', description: 'readiness port, /healthz/ready (0: none)' },
  { name: 'status-address', field: 'statusAddress', value: 'IP', complete: 'none', default: '0.0.0.0', description: 'address the metrics and readiness ports bind to' },
  { name: 'relay', field: 'relay', value: 'MODE', suggestions: ['splice', 'stream'], default: 'splice', description: 'how established connections are relayed: kernel splice on relay threads, or in JS' },
  { name: 'relay-threads', field: 'relayThreads', value: 'N', complete: 'none', default: '1', description: 'splice relay threads' },
  { name: 'resync-interval', field: 'resyncInterval', value: 'SECONDS', complete: 'none', default: '30', description: 'full resync of the BPF maps against the desired state, repairing entries changed behind the agent (0: off)' },
  { name: 'max-vip-entries', field: 'maxVipEntries', value: 'N', complete: 'none', default: '0', description: 'VIP map entries admitted (cluster IP x port); a service that does not fit is NACKed whole (0: the map capacity)' },
  { name: 'max-connections', field: 'maxConnections', value: 'N', complete: 'none', default: '0', description: 'proxied connections held at once (0: from the descriptor limit, keeping headroom for the agent)' },
  { name: 'max-connections-per-workload', field: 'maxConnectionsPerWorkload', value: 'N', complete: 'none', default: '0', description: 'proxied connections from one pod at once (0: a quarter of --max-connections)' },
  { name: 'access-log', field: 'accessLog', value: 'BOOL', suggestions: ['true', 'false'], default: 'true', description: 'one info line per connection when it ends (component "access"; switch at run time with "sluicectl access-log on|off")' },
  { name: 'log-level', field: 'logLevel', value: 'LEVEL', suggestions: LEVELS, default: 'info', description: 'log level' },
  { name: 'log-file', field: 'logFile', value: 'FILE', description: 'log to this file instead of stdout' },
];

const agentFlagSpec = { flags: agentFlags, envPrefix: 'SLUICE', what: 'agent' };

/** Reads flags (winning) and environment; throws ConfigError (or UsageError for a malformed command line) naming the flag and value. */
export function loadAgentConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<AgentConfig> {
  return checkAgentConfig(readConfig<AgentConfig>(argv, env, agentFlagSpec, validate));
}

/** Like loadAgentConfig, from flag values already parsed (by the agent's command line). */
export function agentConfigFromValues(values: FlagValues, env: NodeJS.ProcessEnv): Readonly<AgentConfig> {
  return checkAgentConfig(configFromValues<AgentConfig>(values, env, agentFlagSpec, validate));
}

function checkAgentConfig(config: AgentConfig): Readonly<AgentConfig> {
  if (!config.controlPlane === !config.snapshot) {
    throw new ConfigError('invalid agent configuration: give exactly one of --control-plane HOST:PORT (xDS) or --snapshot FILE (static)');
  }
  if (config.nodeTokenFile && !config.controlPlane) {
    throw new ConfigError('invalid agent configuration: --node-token-file needs --control-plane (certificates come from it)');
  }
  if (!config.handoverSocket) config.handoverSocket = `${config.stateDir.replace(/\/+$/, '')}/handover.sock`;
  return Object.freeze(config);
}
