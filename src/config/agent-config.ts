// Agent configuration from flags and SLUICE_* environment variables, checked
// with ajv. The result is frozen: nothing changes it after start.
import Ajv from 'ajv';
import * as net from 'node:net';
import { ConfigError, readConfig } from './flags';

export { ConfigError };

export interface AgentConfig {
  nodeName: string;
  /** Control plane address host:port or unix:/path (xDS mode). */
  controlPlane: string;
  /** Local snapshot file of workloads and services (static mode, instead of a control plane). */
  snapshot: string;
  /** Where the last good state from the control plane is kept across restarts. */
  stateDir: string;
  /** This node's credential for certificate requests; workload certificates are obtained only when set. */
  nodeTokenFile: string;
  /** The mesh root: the control plane is reached over TLS and must present its SPIFFE ID. */
  controlPlaneCa: string;
  trustDomain: string;
  /** Lifetime asked for workload certificates, seconds (0: the CA's default, one hour). */
  certificateTtl: number;
  /** Directory where the CNI step reports each pod's netns. */
  podNetnsDir: string;
  /** bpffs directory of this agent; pins live in <bpffs>/v<schema>/. */
  bpffs: string;
  /** cgroup v2 directory whose subtree is captured. */
  cgroup: string;
  proxyAddress: string;
  proxyPort: number;
  /** Admin endpoint: a unix socket path. */
  adminSocket: string;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  /** Address the metrics and readiness ports bind to. */
  statusAddress: string;
  /** splice: established connections are relayed by kernel splice on relay threads; stream: in JS. */
  relay: 'splice' | 'stream';
  relayThreads: number;
  /** One info line per connection when it ends (component "access"). */
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
    nodeTokenFile: { type: 'string', default: '' },
    certificateTtl: { type: 'integer', minimum: 0, maximum: 86400, default: 0 },
    controlPlaneCa: { type: 'string', default: '' },
    trustDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', default: 'cluster.local' },
    podNetnsDir: { type: 'string', minLength: 1, default: '/run/sluice/pods' },
    bpffs: { type: 'string', pattern: '^/' },
    cgroup: { type: 'string', pattern: '^/' },
    proxyAddress: { type: 'string', format: 'ipv4' },
    proxyPort: { type: 'integer', minimum: 1, maximum: 65535, default: 15001 },
    adminSocket: { type: 'string', default: '/run/sluice/admin.sock' },
    adminPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15000 },
    metricsPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15020 },
    readinessPort: { type: 'integer', minimum: 0, maximum: 65535, default: 15021 },
    statusAddress: { type: 'string', format: 'ip', default: '0.0.0.0' },
    relay: { enum: ['splice', 'stream'], default: 'splice' },
    relayThreads: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
    accessLog: { type: 'boolean', default: false },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' },
    logFile: { type: 'string', default: '' },
  },
};

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true });
ajv.addFormat('ipv4', (s: string) => net.isIPv4(s));
ajv.addFormat('ip', (s: string) => net.isIP(s) !== 0);
const validate = ajv.compile(schema);

const flagNames: Record<string, string> = {
  'node-name': 'nodeName',
  'control-plane': 'controlPlane',
  snapshot: 'snapshot',
  'state-dir': 'stateDir',
  'node-token-file': 'nodeTokenFile',
  'certificate-ttl': 'certificateTtl',
  'control-plane-ca': 'controlPlaneCa',
  'trust-domain': 'trustDomain',
  'pod-netns-dir': 'podNetnsDir',
  bpffs: 'bpffs',
  cgroup: 'cgroup',
  'proxy-address': 'proxyAddress',
  'proxy-port': 'proxyPort',
  'admin-socket': 'adminSocket',
  'admin-port': 'adminPort',
  'metrics-port': 'metricsPort',
  'readiness-port': 'readinessPort',
  'status-address': 'statusAddress',
  relay: 'relay',
  'relay-threads': 'relayThreads',
  'access-log': 'accessLog',
  'log-level': 'logLevel',
  'log-file': 'logFile',
};

export const agentUsage = `usage: sluice-agent --node-name NAME (--control-plane HOST:PORT | --snapshot FILE) --bpffs DIR --cgroup DIR --proxy-address IPV4 [options]
  every flag --some-flag can also be given as SLUICE_SOME_FLAG
  ${Object.keys(flagNames).map((f) => `--${f}`).join(' ')}`;

/** Reads flags (winning) and environment; throws ConfigError naming the field and value. */
export function loadAgentConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<AgentConfig> {
  const config = readConfig<AgentConfig>(argv, env, { flags: flagNames, envPrefix: 'SLUICE', usage: agentUsage, what: 'agent' }, validate);
  if (!config.controlPlane === !config.snapshot) {
    throw new ConfigError('invalid agent configuration: give exactly one of --control-plane HOST:PORT (xDS) or --snapshot FILE (static)');
  }
  if (config.nodeTokenFile && !config.controlPlane) {
    throw new ConfigError('invalid agent configuration: --node-token-file needs --control-plane (certificates come from it)');
  }
  return Object.freeze(config);
}
