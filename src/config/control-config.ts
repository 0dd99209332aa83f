// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import { DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, parseClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import { ConfigError, readConfig } from './flags';

export interface ControlConfig {
  manifests: string;
  listen: string;
  adminSocket: string;
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

const flagNames: Record<string, string> = {
  manifests: 'manifests',
  listen: 'listen',
  'admin-socket': 'adminSocket',
  'trust-domain': 'trustDomain',
  'ca-dir': 'caDir',
  'node-secret-file': 'nodeSecretFile',
  'log-level': 'logLevel',
  'log-file': 'logFile',
  'service-cidr': 'serviceCidr',
  'pod-cidr': 'podCidr',
  'node-cidrs': 'nodeCidrs',
};

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

export const controlUsage = `usage: sluice-control [serve] --manifests PATH [--listen HOST:PORT] [--admin-socket PATH] [--trust-domain DOMAIN]
                      [--ca-dir DIR] [--node-secret-file FILE] [--log-level LEVEL] [--log-file FILE]
                      [--service-cidr CIDR[,CIDR]] [--pod-cidr CIDR[,CIDR]] [--node-cidrs CIDR,...]
       sluice-control render --manifests PATH [--trust-domain DOMAIN] [--service-cidr ...] [--pod-cidr ...] [--node-cidrs ...]
  every flag --some-flag can also be given as SLUICE_CONTROL_SOME_FLAG`;

/**
 * The configuration from flags and SLUICE_CONTROL_* variables, frozen.
 * Throws ConfigError naming the flag: unknown flags, bad values, and
 * address ranges that do not parse or overlap (parseClusterRanges).
 */
export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  const config = readConfig<ControlConfig>(argv, env, { flags: flagNames, envPrefix: 'SLUICE_CONTROL', usage: controlUsage, what: 'control plane' }, validate);
  const ranges = parseClusterRanges(config);
  if (typeof ranges === 'string') throw new ConfigError(`invalid control plane configuration: ${ranges}`);
  return Object.freeze({ ...config, ranges });
}
