// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import type { FlagValues } from '../command-line';
import { DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, parseClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import { ConfigError, type ConfigFlag, configFromValues, readConfig } from './flags';

export interface ControlConfig {
  /** Manifest file or directory to follow; '' when the Kubernetes API is the source. */
  manifests: string;
  /** Kubeconfig file of the Kubernetes API to follow (development); '' for none. */
  kubeconfig: string;
  /** Follow the Kubernetes API of the cluster this runs in (service account token and CA mounted into the pod). */
  inCluster: boolean;
  listen: string;
  adminSocket: string;
  /** HOST:PORT of the Prometheus /metrics endpoint ('' for none; istiod's monitoring port is 15014). */
  metricsListen: string;
  trustDomain: string;
  /** Where the CA's root certificate and key live (generated on first start if absent). */
  caDir: string;
  /** Where the control plane keeps its own serving certificate and key ('' = caDir; a Secret-mounted caDir is read-only). */
  servingDir: string;
  /** NAMESPACE/NAME of the Secret that keeps the mesh root in the cluster, created on first start ('' = caDir). */
  caSecret: string;
  /** NAMESPACE/NAME of the ConfigMap the root certificate is published in for agents ('' = not published). */
  caRootConfigmap: string;
  /** NAMESPACE/NAME of the Lease replicas elect the status writer with ('' = this replica always writes). */
  leaderElectionLease: string;
  /** File with the secret node credentials derive from (node auth "secret"). */
  nodeSecretFile: string;
  /**
   * How agents prove their node: "secret" (HMAC tokens from nodeSecretFile),
   * "tokenreview" (projected service account tokens checked by the API
   * server), or "none" (plaintext xDS, no certificates). Default: "secret"
   * when nodeSecretFile is given, else "none".
   */
  nodeAuth: 'none' | 'secret' | 'tokenreview';
  /** The agents' service account, NAMESPACE/NAME (node auth "tokenreview"). */
  agentServiceAccount: string;
  /** The audience agents' tokens must be for (node auth "tokenreview"). */
  tokenAudience: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  logFile: string;
  /** Where Service cluster IPs must lie (kube-apiserver --service-cluster-ip-range); one CIDR per family, comma-separated. */
  serviceCidr: string;
  /** Pod addresses (kube-controller-manager --cluster-cidr): never a cluster IP. */
  podCidr: string;
  /** Node addresses, comma-separated, '' for none: never a cluster IP. */
  nodeCidrs: string;
  /** The three above, parsed and checked against each other. */
  ranges: ClusterRanges;
}

/** NAMESPACE/NAME of a namespaced object (both DNS-1123). */
const NAMESPACED_NAME = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    manifests: { type: 'string', default: '' },
    kubeconfig: { type: 'string', default: '' },
    inCluster: { type: 'boolean', default: false },
    listen: { type: 'string', pattern: '^[^:]*:[0-9]{1,5}$', default: '0.0.0.0:15010' },
    adminSocket: { type: 'string', default: '/run/sluice/control.sock' },
    metricsListen: { type: 'string', pattern: '^$|^[^:]*:[0-9]{1,5}$', default: '0.0.0.0:15014' },
    trustDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', default: 'cluster.local' },
    caDir: { type: 'string', minLength: 1, default: '/var/lib/sluice-control/ca' },
    servingDir: { type: 'string', default: '' },
    caSecret: { type: 'string', pattern: `^$|${NAMESPACED_NAME}`, default: '' },
    caRootConfigmap: { type: 'string', pattern: `^$|${NAMESPACED_NAME}`, default: '' },
    leaderElectionLease: { type: 'string', pattern: `^$|${NAMESPACED_NAME}`, default: '' },
    nodeSecretFile: { type: 'string', default: '' },
    nodeAuth: { enum: ['', 'none', 'secret', 'tokenreview'], default: '' },
    agentServiceAccount: { type: 'string', pattern: NAMESPACED_NAME, default: 'sluice-system/sluice-agent' },
    tokenAudience: { type: 'string', minLength: 1, default: 'sluice' },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' },
    logFile: { type: 'string', default: '' },
    serviceCidr: { type: 'string', minLength: 1, default: DEFAULT_SERVICE_CIDR },
    podCidr: { type: 'string', minLength: 1, default: DEFAULT_POD_CIDR },
    nodeCidrs: { type: 'string', default: '' },
  },
};

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** The control plane's flags; each can also be given as SLUICE_CONTROL_<FLAG>. */
export const controlFlags: readonly ConfigFlag[] = [
  { name: 'manifests', field: 'manifests', value: 'PATH', description: 'source: Kubernetes manifests, a YAML file or a directory of them, followed as they change' },
  { name: 'kubeconfig', field: 'kubeconfig', value: 'PATH', description: 'source: the Kubernetes API of this kubeconfig\'s current context, watched (development)' },
  { name: 'in-cluster', field: 'inCluster', description: 'source: the Kubernetes API of the cluster sluice-control runs in, watched with its service account' },
  { name: 'listen', field: 'listen', value: 'HOST:PORT', complete: 'none', default: '0.0.0.0:15010', description: 'where agents connect for xDS (port 0: any free port)' },
  { name: 'admin-socket', field: 'adminSocket', value: 'PATH', default: '/run/sluice/control.sock', description: 'unix socket of the admin endpoint (what sluicectl --control reads)' },
  { name: 'metrics-listen', field: 'metricsListen', value: 'HOST:PORT', complete: 'none', default: '0.0.0.0:15014', description: "Prometheus /metrics (as istiod's monitoring port; '' for none, port 0: any free port)" },
  { name: 'trust-domain', field: 'trustDomain', value: 'DOMAIN', complete: 'none', default: 'cluster.local', description: 'trust domain of workload identities' },
  { name: 'ca-dir', field: 'caDir', value: 'DIR', complete: 'directory', default: '/var/lib/sluice-control/ca', description: 'where the CA\'s root certificate and key live (generated on first start)' },
  { name: 'serving-dir', field: 'servingDir', value: 'DIR', complete: 'directory', description: 'where the control plane keeps its own serving certificate, renewed while it runs (default: --ca-dir; give a writable one when --ca-dir is a Secret)' },
  { name: 'ca-secret', field: 'caSecret', value: 'NAMESPACE/NAME', complete: 'none', description: 'keep the mesh root in this Secret (created with a new root on first start, shared by every replica) instead of --ca-dir; needs --in-cluster or --kubeconfig' },
  { name: 'ca-root-configmap', field: 'caRootConfigmap', value: 'NAMESPACE/NAME', complete: 'none', description: 'with --ca-secret: publish the root certificate (root-cert.pem) in this ConfigMap, for agents to verify the control plane' },
  { name: 'leader-election-lease', field: 'leaderElectionLease', value: 'NAMESPACE/NAME', complete: 'none', description: 'with several replicas: elect, with this Lease, the one that writes policy status and Events (every replica serves xDS and certificates)' },
  { name: 'node-secret-file', field: 'nodeSecretFile', value: 'FILE', description: 'secret node credentials derive from (--node-auth secret)' },
  { name: 'node-auth', field: 'nodeAuth', value: 'MODE', suggestions: ['none', 'secret', 'tokenreview'], description: 'how agents prove their node: secret (--node-secret-file), tokenreview (projected service account tokens, checked by the API server), none (plaintext xDS, no certificates); default: secret with --node-secret-file, else none' },
  { name: 'agent-service-account', field: 'agentServiceAccount', value: 'NS/NAME', complete: 'none', default: 'sluice-system/sluice-agent', description: 'the agents\' service account (--node-auth tokenreview)' },
  { name: 'token-audience', field: 'tokenAudience', value: 'AUDIENCE', complete: 'none', default: 'sluice', description: 'audience the agents\' tokens must be for (--node-auth tokenreview)' },
  { name: 'log-level', field: 'logLevel', value: 'LEVEL', suggestions: LEVELS, default: 'info', description: 'log level' },
  { name: 'log-file', field: 'logFile', value: 'FILE', description: 'log to this file instead of stdout' },
  { name: 'service-cidr', field: 'serviceCidr', value: 'CIDR[,CIDR]', complete: 'none', default: DEFAULT_SERVICE_CIDR, description: 'where Service cluster IPs must lie (as kube-apiserver --service-cluster-ip-range)' },
  { name: 'pod-cidr', field: 'podCidr', value: 'CIDR[,CIDR]', complete: 'none', default: DEFAULT_POD_CIDR, description: 'pod addresses: never a cluster IP (as --cluster-cidr)' },
  { name: 'node-cidrs', field: 'nodeCidrs', value: 'CIDR,...', complete: 'none', description: 'node addresses: never a cluster IP' },
];

/** The flags that "sluice-control ca" reads. */
export const caFlags: readonly ConfigFlag[] = controlFlags.filter((f) => ['ca-dir', 'trust-domain'].includes(f.name));

/** The flags that "sluice-control render" reads. */
export const renderFlags: readonly ConfigFlag[] = controlFlags.filter((f) => ['manifests', 'trust-domain', 'service-cidr', 'pod-cidr', 'node-cidrs'].includes(f.name));

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

const controlFlagSpec = { flags: controlFlags, envPrefix: 'SLUICE_CONTROL', what: 'control plane' };

/**
 * Reads flags (winning) and SLUICE_CONTROL_* variables; throws ConfigError
 * naming the flag and value, or when not exactly one source is given.
 */
export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return withSource(withRanges(readConfig<ControlConfig>(argv, env, controlFlagSpec, validate)));
}

/** Where the objects come from: exactly one of --manifests, --kubeconfig, --in-cluster. */
export type ControlSource = { kind: 'manifests'; path: string } | { kind: 'kubernetes'; kubeconfig?: string };

/** The configuration's source; throws ConfigError unless exactly one is given. */
export function controlSource(config: ControlConfig): ControlSource {
  const given = [config.manifests && '--manifests', config.kubeconfig && '--kubeconfig', config.inCluster && '--in-cluster'].filter((x): x is string => Boolean(x));
  if (given.length === 0) throw new ConfigError('invalid control plane configuration: missing a source: --manifests PATH, --kubeconfig PATH or --in-cluster');
  if (given.length > 1) throw new ConfigError(`invalid control plane configuration: ${given.join(' and ')} given together; exactly one source is followed`);
  if (config.manifests) return { kind: 'manifests', path: config.manifests };
  return config.kubeconfig ? { kind: 'kubernetes', kubeconfig: config.kubeconfig } : { kind: 'kubernetes' };
}

function withSource(config: Readonly<ControlConfig>): Readonly<ControlConfig> {
  const source = controlSource(config);
  if (config.nodeAuth === 'secret' && !config.nodeSecretFile) throw new ConfigError('invalid control plane configuration: --node-auth secret needs --node-secret-file');
  if (config.nodeAuth === 'tokenreview' && source.kind !== 'kubernetes') throw new ConfigError('invalid control plane configuration: --node-auth tokenreview needs the Kubernetes API (--kubeconfig or --in-cluster) to send TokenReviews to');
  if ((config.caSecret || config.caRootConfigmap) && source.kind !== 'kubernetes') throw new ConfigError(`invalid control plane configuration: ${config.caSecret ? '--ca-secret' : '--ca-root-configmap'} needs the Kubernetes API (--kubeconfig or --in-cluster) to keep the mesh root in`);
  if (config.leaderElectionLease && source.kind !== 'kubernetes') throw new ConfigError('invalid control plane configuration: --leader-election-lease needs the Kubernetes API (--kubeconfig or --in-cluster) to hold the Lease in');
  if (config.caRootConfigmap && !config.caSecret) throw new ConfigError('invalid control plane configuration: --ca-root-configmap publishes the root of --ca-secret; give both');
  return config;
}

/** Parses the address ranges and checks them against each other; throws ConfigError (parseClusterRanges). */
function withRanges(config: ControlConfig): Readonly<ControlConfig> {
  const ranges = parseClusterRanges(config);
  if (typeof ranges === 'string') throw new ConfigError(`invalid control plane configuration: ${ranges}`);
  // '' (not given): derived from --node-secret-file, as before --node-auth existed.
  const nodeAuth = (config.nodeAuth as string) === '' ? (config.nodeSecretFile ? 'secret' : 'none') : config.nodeAuth;
  return Object.freeze({ ...config, ranges, nodeAuth });
}

/** Like loadControlConfig, from flag values already parsed (by the control plane's command line). */
export function controlConfigFromValues(values: FlagValues, env: NodeJS.ProcessEnv, command: 'serve' | 'render' | 'ca' = 'serve'): Readonly<ControlConfig> {
  const config = withRanges(configFromValues<ControlConfig>(values, env, controlFlagSpec, validate));
  // render reads manifest files only; ca needs no source.
  if (command === 'render' && !config.manifests) throw new ConfigError('invalid control plane configuration: missing --manifests');
  return command === 'serve' ? withSource(config) : config;
}
