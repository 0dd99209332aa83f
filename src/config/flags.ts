// Flags and environment into one validated object, shared by the binaries:
// flags win over PREFIX_SOME_FLAG variables; errors name the flag and value.
import type { ValidateFunction } from 'ajv';
import { describeAjvErrors } from '../model/validate';

export class ConfigError extends Error {}

export interface FlagSpec {
  /** flag name without "--" -> field of the configuration object */
  flags: Record<string, string>;
  /** Environment variable prefix: "SLUICE" reads SLUICE_PROXY_PORT for --proxy-port. */
  envPrefix: string;
  usage: string;
  /** "agent", "control plane": used in error messages. */
  what: string;
}

export function readConfig<T>(argv: string[], env: NodeJS.ProcessEnv, spec: FlagSpec, validate: ValidateFunction): T {
  const raw: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(spec.flags)) {
    const v = env[`${spec.envPrefix}_${flag.toUpperCase().replace(/-/g, '_')}`];
    if (v !== undefined && v !== '') raw[field] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}\n${spec.usage}`);
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq < 0 ? undefined : eq);
    const field = spec.flags[flag];
    if (!field) throw new ConfigError(`unknown flag --${flag}\n${spec.usage}`);
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`flag --${flag} needs a value`);
    raw[field] = value;
  }
  if (!validate(raw)) {
    const toFlag = Object.fromEntries(Object.entries(spec.flags).map(([f, k]) => [k, `--${f}`]));
    const missing = (validate.errors ?? [])
      .filter((e) => e.keyword === 'required')
      .map((e) => toFlag[(e.params as { missingProperty: string }).missingProperty]);
    const detail = missing.length ? `missing ${missing.join(', ')}` : describeAjvErrors(validate.errors, raw, (p) => toFlag[p] ?? p);
    throw new ConfigError(`invalid ${spec.what} configuration: ${detail}`);
  }
  return raw as T;
}
