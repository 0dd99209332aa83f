// sluice-control configuration from flags and SLUICE_CONTROL_* variables.
import Ajv from 'ajv';
import { describeAjvErrors } from '../model/validate';
import { ConfigError } from './agent-config';

export interface ControlConfig {
  manifests: string;
  listen: string;
  adminSocket: string;
  trustDomain: string;
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
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' },
    logFile: { type: 'string', default: '' },
  },
};

const flagNames: Record<string, keyof ControlConfig> = {
  manifests: 'manifests',
  listen: 'listen',
  'admin-socket': 'adminSocket',
  'trust-domain': 'trustDomain',
  'log-level': 'logLevel',
  'log-file': 'logFile',
};

const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(schema);

export const controlUsage = `usage: sluice-control [serve] --manifests PATH [--listen HOST:PORT] [--admin-socket PATH] [--trust-domain DOMAIN] [--log-level LEVEL] [--log-file FILE]
       sluice-control render --manifests PATH [--trust-domain DOMAIN]
  every flag --some-flag can also be given as SLUICE_CONTROL_SOME_FLAG`;

export function loadControlConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<ControlConfig> {
  const raw: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(flagNames)) {
    const v = env[`SLUICE_CONTROL_${flag.toUpperCase().replace(/-/g, '_')}`];
    if (v) raw[field] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}\n${controlUsage}`);
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq < 0 ? undefined : eq);
    const field = flagNames[flag];
    if (!field) throw new ConfigError(`unknown flag --${flag}\n${controlUsage}`);
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`flag --${flag} needs a value`);
    raw[field] = value;
  }
  if (!validate(raw)) {
    const toFlag = Object.fromEntries(Object.entries(flagNames).map(([f, k]) => [k, `--${f}`]));
    const missing = (validate.errors ?? []).filter((e) => e.keyword === 'required').map((e) => toFlag[(e.params as { missingProperty: string }).missingProperty]);
    throw new ConfigError(`invalid control plane configuration: ${missing.length ? `missing ${missing.join(', ')}` : describeAjvErrors(validate.errors, raw, (p) => toFlag[p] ?? p)}`);
  }
  return Object.freeze(raw as unknown as ControlConfig);
}
