// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import type { FlagValues } from '../command-line';
import { type ConfigFlag, configFromValues, readConfig } from './flags';

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
  },
};

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** The control plane's flags; each can also be given as SLUICE_CONTROL_<FLAG>. */
export const controlFlags: readonly ConfigFlag[] = [
  { name: 'manifests', field: 'manifests', value: 'PATH', description: 'Kubernetes manifests: a YAML file or a directory of them, followed as they change (required)' },
  { name: 'listen', field: 'listen', value: 'HOST:PORT', complete: 'none', default: '0.0.0.0:15010', description: 'where agents connect for xDS (port 0: any free port)' },
  { name: 'admin-socket', field: 'adminSocket', value: 'PATH', default: '/run/sluice/control.sock', description: 'unix socket of the admin endpoint (what sluicectl --control reads)' },
  { name: 'trust-domain', field: 'trustDomain', value: 'DOMAIN', complete: 'none', default: 'cluster.local', description: 'trust domain of workload identities' },
  { name: 'ca-dir', field: 'caDir', value: 'DIR', complete: 'directory', default: '/var/lib/sluice-control/ca', description: 'where the CA\'s root certificate and key live (generated on first start)' },
  { name: 'node-secret-file', field: 'nodeSecretFile', value: 'FILE', description: 'secret node credentials derive from; certificates are issued only when set' },
  { name: 'log-level', field: 'logLevel', value: 'LEVEL', suggestions: LEVELS, default: 'info', description: 'log level' },
  { name: 'log-file', field: 'logFile', value: 'FILE', description: 'log to this file instead of stdout' },
];

/** The flags that "sluice-control render" reads. */
export const renderFlags: readonly ConfigFlag[] = controlFlags.filter((f) => f.name === 'manifests' || f.name === 'trust-domain');

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

const controlFlagSpec = { flags: controlFlags, envPrefix: 'SLUICE_CONTROL', what: 'control plane' };

/** Reads flags (winning) and SLUICE_CONTROL_* variables; throws ConfigError naming the flag and value. */
export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return Object.freeze(readConfig<ControlConfig>(argv, env, controlFlagSpec, validate));
}

/** Like loadControlConfig, from flag values already parsed (by the control plane's command line). */
export function controlConfigFromValues(values: FlagValues, env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return Object.freeze(configFromValues<ControlConfig>(values, env, controlFlagSpec, validate));
}
