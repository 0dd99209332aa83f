// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import { readConfig } from './flags';

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

const flagNames: Record<string, string> = {
  manifests: 'manifests',
  listen: 'listen',
  'admin-socket': 'adminSocket',
  'trust-domain': 'trustDomain',
  'ca-dir': 'caDir',
  'node-secret-file': 'nodeSecretFile',
  'log-level': 'logLevel',
  'log-file': 'logFile',
};

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

export const controlUsage = `usage: sluice-control [serve] --manifests PATH [--listen HOST:PORT] [--admin-socket PATH] [--trust-domain DOMAIN]
                      [--ca-dir DIR] [--node-secret-file FILE] [--log-level LEVEL] [--log-file FILE]
       sluice-control render --manifests PATH [--trust-domain DOMAIN]
  every flag --some-flag can also be given as SLUICE_CONTROL_SOME_FLAG`;

export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  return Object.freeze(readConfig<ControlConfig>(argv, env, { flags: flagNames, envPrefix: 'SLUICE_CONTROL', usage: controlUsage, what: 'control plane' }, validate));
}
