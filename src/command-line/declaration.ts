// One declaration per binary of its commands and flags. Parsing, --help and
// the shell completion scripts are all generated from it, so they cannot
// disagree with each other.

/** A flag, given as --name VALUE, --name=VALUE, or -s VALUE when it has a short form. */
export interface FlagDecl {
  /** Long name without the leading "--". */
  name: string;
  /** One-letter short form without the leading "-". */
  short?: string;
  /** Placeholder of the value in help ("FILE"). A flag without one is a switch that takes no value. */
  value?: string;
  /** The command cannot run without it (shown in the synopsis, checked by the parser). */
  required?: boolean;
  /** The flag may be repeated; the values are kept in order. */
  multiple?: boolean;
  /** Words that follow the value and do not start with "-" are further values ("-f a.yaml b.yaml"). */
  greedy?: boolean;
  /** The only values accepted; also what the shell offers. */
  choices?: readonly string[];
  /** Values the shell offers and help lists, without enforcing them (the value is validated elsewhere). */
  suggestions?: readonly string[];
  /** What the shell offers for the value when there are no choices (default: files). */
  complete?: 'file' | 'directory' | 'none';
  description: string;
  /** Shown in help as "(default: ...)". */
  default?: string;
}

/** A positional argument of a command. */
export interface ArgDecl {
  /** Placeholder in help ("NAMESPACE/POD"). */
  name: string;
  optional?: boolean;
  /** Takes every remaining positional word (at least one unless optional). */
  variadic?: boolean;
  /** The only values accepted; also what the shell offers. */
  choices?: readonly string[];
}

export interface CommandDecl {
  name: string;
  /** One line, shown in the list of commands. */
  summary: string;
  /** More text shown by "COMMAND --help". */
  description?: string;
  args?: readonly ArgDecl[];
  flags?: readonly FlagDecl[];
  /** The command takes the words after "--" untouched (e.g. a command line to run). */
  rest?: { name: string; required: boolean };
}

export interface ProgramDecl {
  name: string;
  /** One line: what the program is. */
  summary: string;
  /** Flags accepted before or after any command. */
  flags: readonly FlagDecl[];
  commands: readonly CommandDecl[];
  /** The command run when the first word is not a command name (or there is none). */
  defaultCommand?: string;
  /** Text at the end of the program's help (environment, exit codes). */
  footer?: string;
}

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** The flags every binary has, whatever its declaration says. */
export const BUILTIN_FLAGS: readonly FlagDecl[] = [
  { name: 'help', short: 'h', description: 'show help for the program or the command, and exit' },
  { name: 'version', description: 'print the version and exit' },
];

/** The commands every binary has, whatever its declaration says. */
export const BUILTIN_COMMANDS: readonly CommandDecl[] = [
  { name: 'help', summary: 'show help for the program or a command', args: [{ name: 'COMMAND', optional: true }] },
  { name: 'version', summary: 'print the version of the program and of Node.js' },
  {
    name: 'completion',
    summary: 'print a shell completion script (bash, zsh or fish)',
    description:
      'Load it in the current shell with\n' +
      '  bash:  source <(PROGRAM completion bash)\n' +
      '  zsh:   source <(PROGRAM completion zsh)\n' +
      '  fish:  PROGRAM completion fish | source',
    args: [{ name: 'SHELL', choices: SHELLS }],
  },
];

/** The program's declaration with the built-in flags and commands added. */
export function withBuiltins(program: ProgramDecl): ProgramDecl {
  const names = new Set(program.commands.map((c) => c.name));
  return {
    ...program,
    flags: [...program.flags, ...BUILTIN_FLAGS.filter((f) => !program.flags.some((g) => g.name === f.name))],
    commands: [...program.commands, ...BUILTIN_COMMANDS.filter((c) => !names.has(c.name))],
  };
}

/** The values offered for a flag: its choices or suggestions. */
export function valuesOf(f: FlagDecl): readonly string[] | undefined {
  return f.choices ?? f.suggestions;
}

/** Every flag a command accepts: its own and the program's. */
export function flagsOf(program: ProgramDecl, command: CommandDecl | undefined): FlagDecl[] {
  return [...program.flags, ...(command?.flags ?? [])];
}

/** A declaration's own contradictions (one flag name with two meanings, duplicate commands); [] when sound. */
export function declarationProblems(program: ProgramDecl): string[] {
  const problems: string[] = [];
  const p = withBuiltins(program);
  const seen = new Map<string, FlagDecl>();
  const shorts = new Map<string, string>();
  for (const f of [...p.flags, ...p.commands.flatMap((c) => c.flags ?? [])]) {
    const before = seen.get(f.name);
    if (before && Boolean(before.value) !== Boolean(f.value)) problems.push(`--${f.name} takes a value in one place and not in another`);
    seen.set(f.name, f);
    if (f.short) {
      const owner = shorts.get(f.short);
      if (owner && owner !== f.name) problems.push(`-${f.short} means both --${owner} and --${f.name}`);
      shorts.set(f.short, f.name);
    }
  }
  const commands = new Set<string>();
  for (const c of p.commands) {
    if (commands.has(c.name)) problems.push(`command ${c.name} is declared twice`);
    commands.add(c.name);
  }
  if (program.defaultCommand && !commands.has(program.defaultCommand)) problems.push(`default command ${program.defaultCommand} is not declared`);
  return problems;
}
