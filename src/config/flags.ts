// Flags and environment into one validated object, shared by the binaries:
// flags win over PREFIX_SOME_FLAG variables; errors name the flag and value.
import type { ValidateFunction } from 'ajv';
import { type FlagDecl, type FlagValues, UsageError, parseWords } from '../command-line';
import { describeAjvErrors } from '../model/validate';

/** The configuration is invalid (a flag, a variable or their combination); binaries exit 2 on it. */
export class ConfigError extends UsageError {}

/**
 * A flag that sets one field of a configuration object. One with a `value`
 * placeholder takes a value; one without is a switch that sets its field to
 * true (its variable takes "true"/"1" or "false"/"0").
 */
export interface ConfigFlag extends FlagDecl {
  /** The configuration object's field the flag sets. */
  field: string;
}

/** A switch's variable: "true"/"1" and "false"/"0"; anything else stays a string, which the schema refuses. */
function switchValue(v: string): boolean | string {
  return v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v;
}

export interface FlagSpec {
  flags: readonly ConfigFlag[];
  /** Environment variable prefix: "SLUICE" reads SLUICE_PROXY_PORT for --proxy-port. */
  envPrefix: string;
  /** "agent", "control plane": used in error messages. */
  what: string;
}

/** The environment variable that can give `flag`: ("SLUICE", "proxy-port") -> SLUICE_PROXY_PORT. */
export function envName(envPrefix: string, flag: string): string {
  return `${envPrefix}_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Builds the configuration from parsed flag values (winning) and the
 * environment, then validates it. Throws ConfigError: "missing --a, --b" for
 * required flags, or "--proxy-port: must be <= 65535 (got 70000)".
 */
export function configFromValues<T>(values: FlagValues, env: NodeJS.ProcessEnv, spec: FlagSpec, validate: ValidateFunction): T {
  const raw: Record<string, unknown> = {};
  for (const f of spec.flags) {
    const v = env[envName(spec.envPrefix, f.name)];
    if (v !== undefined && v !== '') raw[f.field] = f.value ? v : switchValue(v);
    const given = values[f.name];
    if (typeof given === 'string') raw[f.field] = given;
    if (given === true && !f.value) raw[f.field] = true;
  }
  if (!validate(raw)) {
    const toFlag = Object.fromEntries(spec.flags.map((f) => [f.field, `--${f.name}`]));
    const missing = (validate.errors ?? [])
      .filter((e) => e.keyword === 'required')
      .map((e) => toFlag[(e.params as { missingProperty: string }).missingProperty]);
    const detail = missing.length ? `missing ${missing.join(', ')}` : describeAjvErrors(validate.errors, raw, (p) => toFlag[p] ?? p);
    throw new ConfigError(`invalid ${spec.what} configuration: ${detail}`);
  }
  return raw as T;
}

/**
 * Parses argv (flags only: "--flag value" or "--flag=value") and builds the
 * configuration as configFromValues does. Throws UsageError for an unknown
 * flag or a flag without its value, ConfigError for a positional argument or
 * an invalid configuration.
 */
export function readConfig<T>(argv: string[], env: NodeJS.ProcessEnv, spec: FlagSpec, validate: ValidateFunction): T {
  const { values, args, rest } = parseWords(argv, spec.flags);
  const unexpected = [...args, ...(rest ? ['--', ...rest] : [])];
  if (unexpected.length) throw new ConfigError(`unexpected argument ${JSON.stringify(unexpected[0])}`);
  return configFromValues<T>(values, env, spec, validate);
}
