// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import type { FlagValues } from '../command-line';
import { DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, parseClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import { ConfigError, type ConfigFlag, configFromValues, readConfig } from './flags';

export interface ControlConfig {
  manifests: string;
  listen: string;
  adminSocket: string;
  /** HOST:PORT of the Prometheus /metrics endpoint ('' for none; istiod's monitoring port is 15014). */
  metricsListen: string;
  trustDomain: string;
  /** Where the CA's root certificate and key live (generated on first start if absent). */
  caDir: string;
  /** File with the secret node credentials derive from; certificates are issued only when set. */
  nodeSecretFile: string;
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

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['manifests'],
  properties: {
    manifests: { type: 'string', minLength: 1 },
    listen: { type: 'string', pattern: '^[^:]*:[0-9]{1,5}$', default: '0.0.0.0:15010' },
    adminSocket: { type: 'string', default: '/run/sluice/control.sock' },
    metricsListen: { type: 'string', pattern: '^$|^[^:]*:[0-9]{1,5}$', default: '0.0.0.0:15014' },
    trustDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', default: 'cluster.local' },
    caDir: { type: 'string', minLength: 1, default: '/var/lib/sluice-control/ca' },
    nodeSecretFile: { type: 'string', default: '' },
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
  { name: 'manifests', field: 'manifests', value: 'PATH', description: 'Kubernetes manifests: a YAML file or a directory of them, followed as they change (required)' },
  { name: 'listen', field: 'listen', value: 'HOST:PORT', complete: 'none', default: '0.0.0.0:15010', description: 'where agents connect for xDS (port 0: any free port)' },
  { name: 'admin-socket', field: 'adminSocket', value: 'PATH', default: '/run/sluice/control.sock', description: 'unix socket of the admin endpoint (what sluicectl --control reads)' },
  { name: 'metrics-listen', field: 'metricsListen', value: 'HOST:PORT', complete: 'none', default: '0.0.0.0:15014', description: "Prometheus /metrics (as istiod's monitoring port; '' for none, port 0: any free port)" },
  { name: 'trust-domain', field: 'trustDomain', value: 'DOMAIN', complete: 'none', default: 'cluster.local', description: 'trust domain of workload identities' },
  { name: 'ca-dir', field: 'caDir', value: 'DIR', complete: 'directory', default: '/var/lib/sluice-control/ca', description: 'where the CA\'s root certificate and key live (generated on first start)' },
  { name: 'node-secret-file', field: 'nodeSecretFile', value: 'FILE', description: 'secret node credentials derive from; certificates are issued only when set' },
  { name: 'log-level', field: 'logLevel', value: 'LEVEL', suggestions: LEVELS, default: 'info', description: 'log level' },
  { name: 'log-file', field: 'logFile', value: 'FILE', description: 'log to this file instead of stdout' },
  { name: 'service-cidr', field: 'serviceCidr', value: 'CIDR[,CIDR]', complete: 'none', default: DEFAULT_SERVICE_CIDR, description: 'where Service cluster IPs must lie (as kube-apiserver --service-cluster-ip-range)' },
  { name: 'pod-cidr', field: 'podCidr', value: 'CIDR[,CIDR]', complete: 'none', default: DEFAULT_POD_CIDR, description: 'pod addresses: never a cluster IP (as --cluster-cidr)' },
  { name: 'node-cidrs', field: 'nodeCidrs', value: 'CIDR,...', complete: 'none', description: 'node addresses: never a cluster IP' },
];

/** The flags that "sluice-control render" reads. */
export const renderFlags: readonly ConfigFlag[] = controlFlags.filter((f) => ['manifests', 'trust-domain', 'service-cidr', 'pod-cidr', 'node-cidrs'].includes(f.name));

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

const controlFlagSpec = { flags: controlFlags, envPrefix: 'SLUICE_CONTROL', what: 'control plane' };

/** Reads flags (winning) and SLUICE_CONTROL_* variables; throws ConfigError naming the flag and value. */
export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return withRanges(readConfig<ControlConfig>(argv, env, controlFlagSpec, validate));
}

/** Parses the address ranges and checks them against each other; throws ConfigError (parseClusterRanges). */
function withRanges(config: ControlConfig): Readonly<ControlConfig> {
  const ranges = parseClusterRanges(config);
  if (typeof ranges === 'string') throw new ConfigError(`invalid control plane configuration: ${ranges}`);
  return Object.freeze({ ...config, ranges });
}

/** Like loadControlConfig, from flag values already parsed (by the control plane's command line). */
export function controlConfigFromValues(values: FlagValues, env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return withRanges(configFromValues<ControlConfig>(values, env, controlFlagSpec, validate));
}
