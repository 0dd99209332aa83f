// Command lines into a command, flag values, positional arguments and the
// words after "--", on top of node:util.parseArgs. Flags may come before or
// after the command; "--flag=value" and "--flag value" are the same.
import { parseArgs } from 'node:util';
import { type CommandDecl, type FlagDecl, type ProgramDecl, flagsOf, withBuiltins } from './declaration';

/**
 * The command line itself is wrong (unknown flag or command, missing value or
 * argument). Programs exit 2 on it. `command` is the command whose help the
 * hint should point to, when known.
 */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** Flag values by long name: a string, a list (multiple/greedy flags) or true (switches). */
export type FlagValues = Record<string, string | string[] | boolean | undefined>;

export interface ParsedCommandLine {
  /** The command's name; '' when none was given and the program has no default command. */
  command: string;
  /** The command's declaration (undefined with command ''). */
  decl?: CommandDecl;
  /** The command was named on the command line (not taken as the program's default). */
  named: boolean;
  values: FlagValues;
  /** Positional words, in order (not those after "--"). */
  args: string[];
  /** The words after "--", untouched; undefined when there was no "--". */
  rest?: string[];
}

function lookup(flags: readonly FlagDecl[]): { long: Map<string, FlagDecl>; short: Map<string, FlagDecl> } {
  const long = new Map<string, FlagDecl>();
  const short = new Map<string, FlagDecl>();
  for (const f of flags) {
    long.set(f.name, f);
    if (f.short) short.set(f.short, f);
  }
  return { long, short };
}

/**
 * Index of the first word that is not a flag or a flag's value (-1 when
 * there is none before "--"), and the unknown flag right before it, if any:
 * that word may be the unknown flag's value rather than a command.
 */
function commandWordIndex(argv: readonly string[], flags: readonly FlagDecl[]): { at: number; afterUnknown?: string } {
  const { long, short } = lookup(flags);
  let unknown: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return { at: -1 };
    if (!a.startsWith('-') || a === '-') return { at: i, ...(unknown ? { afterUnknown: unknown } : {}) };
    const decl = a.startsWith('--') ? long.get(a.slice(2).split('=')[0]) : short.get(a[1]);
    const inline = a.startsWith('--') ? a.includes('=') : a.length > 2;
    unknown = decl || inline ? undefined : a;
    if (decl?.value && !inline) i++;
    if (decl?.greedy) while (i + 1 < argv.length && !argv[i + 1].startsWith('-')) i++;
  }
  return { at: -1 };
}

/**
 * Parses words against a list of flags: returns the values by long name, the
 * positional words and the words after "--". Throws UsageError naming the
 * flag for an unknown flag, a flag without its value, a value given to a
 * switch, or a value that is not one of the flag's choices. `elsewhere` maps
 * flags of other commands to those commands, for a better message.
 */
export function parseWords(
  words: readonly string[],
  flags: readonly FlagDecl[],
  context: { command?: string; elsewhere?: Map<string, string[]> } = {},
): { values: FlagValues; args: string[]; rest?: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const f of flags) options[f.name] = { type: f.value ? 'string' : 'boolean', ...(f.short ? { short: f.short } : {}), ...(f.multiple || f.greedy ? { multiple: true } : {}) };
  const { tokens } = parseArgs({ args: [...words], options, strict: false, allowPositionals: true, tokens: true });
  const { long } = lookup(flags);
  const values: FlagValues = {};
  const args: string[] = [];
  let rest: string[] | undefined;
  let greedy: FlagDecl | undefined;
  for (const t of tokens) {
    if (t.kind === 'option-terminator') {
      rest = words.slice(t.index + 1);
      break;
    }
    if (t.kind === 'positional') {
      if (greedy) (values[greedy.name] as string[]).push(t.value);
      else args.push(t.value);
      continue;
    }
    greedy = undefined;
    const decl = long.get(t.name);
    if (!decl) {
      const owners = context.elsewhere?.get(t.name);
      const where = owners?.length ? ` (it is a flag of ${owners.map((o) => `"${o}"`).join(', ')})` : '';
      throw new UsageError(`unknown flag ${t.rawName}${context.command && where ? ` for "${context.command}"` : ''}${where}`, context.command);
    }
    if (decl.value && t.value === undefined) throw new UsageError(`flag --${decl.name} needs a value (${decl.value})`, context.command);
    if (!decl.value && t.inlineValue) throw new UsageError(`flag --${decl.name} takes no value (got ${JSON.stringify(t.value)})`, context.command);
    if (decl.value) {
      const v = t.value as string;
      if (decl.choices && !decl.choices.includes(v)) throw new UsageError(`${t.rawName} ${v}: expected one of ${decl.choices.join(', ')}`, context.command);
      if (decl.multiple || decl.greedy) ((values[decl.name] ??= []) as string[]).push(v);
      else values[decl.name] = v;
      if (decl.greedy) greedy = decl;
    } else values[decl.name] = true;
  }
  return { values, args, ...(rest ? { rest } : {}) };
}

/** The problem with a command's positional words, required flags and "--" words, or undefined. */
function argumentProblem(cmd: CommandDecl, values: FlagValues, args: string[], rest: string[] | undefined): string | undefined {
  const decls = cmd.args ?? [];
  const required = decls.filter((a) => !a.optional).length;
  const variadic = decls.some((a) => a.variadic);
  const synopsis = decls.map((a) => a.name).join(' ');
  if (args.length > decls.length && !variadic) {
    const extra = args.slice(decls.length).map((a) => JSON.stringify(a)).join(' ');
    return decls.length ? `"${cmd.name}" takes ${synopsis}; unexpected argument ${extra}` : `"${cmd.name}" takes no arguments; unexpected argument ${extra}`;
  }
  if (args.length < required) return `"${cmd.name}" needs ${decls.slice(args.length).filter((a) => !a.optional).map((a) => a.name).join(' ')}`;
  for (let i = 0; i < args.length; i++) {
    const d = decls[Math.min(i, decls.length - 1)];
    if (d.choices && !d.choices.includes(args[i])) return `${cmd.name} ${d.name} ${JSON.stringify(args[i])}: expected one of ${d.choices.join(', ')}`;
  }
  const missing = (cmd.flags ?? []).filter((f) => f.required && values[f.name] === undefined);
  if (missing.length) return `"${cmd.name}" needs ${missing.map((f) => `--${f.name}${f.value ? ` ${f.value}` : ''}`).join(' and ')}`;
  if (rest !== undefined && !cmd.rest) return `"${cmd.name}" takes nothing after "--"`;
  if (cmd.rest?.required && !rest?.length) return `"${cmd.name}" needs -- ${cmd.rest.name}`;
  return undefined;
}

/**
 * Parses a whole command line (without the node and script paths) against a
 * program's declaration (built-ins included: --help, --version, help, version,
 * completion). The command is the first word that is not a flag or a flag's
 * value; flags of the program and of that command may stand before or after
 * it. With `--help` the command's arguments are not checked. Throws
 * UsageError for an unknown command, an unknown flag, a missing value, or
 * arguments that do not fit the command.
 */
export function parseCommandLine(program: ProgramDecl, argv: readonly string[]): ParsedCommandLine {
  const p = withBuiltins(program);
  const allFlags = [...p.flags, ...p.commands.flatMap((c) => c.flags ?? [])];
  const { at, afterUnknown } = commandWordIndex(argv, allFlags);
  let decl: CommandDecl | undefined;
  let named = false;
  const words = [...argv];
  if (at >= 0) {
    decl = p.commands.find((c) => c.name === argv[at]);
    if (decl) {
      words.splice(at, 1);
      named = true;
    }
    else {
      decl = p.commands.find((c) => c.name === p.defaultCommand);
      if (afterUnknown) throw new UsageError(`unknown flag ${afterUnknown}`, decl?.name);
      if (!decl?.args?.length) throw new UsageError(`unknown command ${JSON.stringify(argv[at])}`);
    }
  } else decl = p.commands.find((c) => c.name === p.defaultCommand);
  const elsewhere = new Map<string, string[]>();
  for (const c of p.commands) for (const f of c.flags ?? []) if (c !== decl) elsewhere.set(f.name, [...(elsewhere.get(f.name) ?? []), c.name]);
  const { values, args, rest } = parseWords(words, flagsOf(p, decl), { command: decl?.name, elsewhere });
  const parsed: ParsedCommandLine = { command: decl?.name ?? '', ...(decl ? { decl } : {}), named, values, args, ...(rest ? { rest } : {}) };
  if (decl && !values.help && !values.version) {
    const problem = argumentProblem(decl, values, args, rest);
    if (problem) throw new UsageError(problem, decl.name);
  }
  return parsed;
}
