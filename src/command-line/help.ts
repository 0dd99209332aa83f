// --help text, generated from a program's declaration.
import { type CommandDecl, type FlagDecl, type ProgramDecl, valuesOf, withBuiltins } from './declaration';

function flagLabel(f: FlagDecl): string {
  return `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.value ? ` ${f.value}` : ''}`;
}

function flagLines(flags: readonly FlagDecl[]): string[] {
  const width = Math.max(0, ...flags.map((f) => flagLabel(f).length));
  return flags.map((f) => {
    const notes = [valuesOf(f) ? `one of ${valuesOf(f)!.join(', ')}` : '', f.default !== undefined ? `default ${f.default}` : '', f.multiple ? 'repeatable' : ''].filter(Boolean);
    return `  ${flagLabel(f).padEnd(width)}  ${f.description}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  });
}

/** The synopsis of one command: "sluice-sim exec NAMESPACE/POD [flags] -- CMD [ARGS...]". */
export function commandSynopsis(program: ProgramDecl, cmd: CommandDecl): string {
  const args = (cmd.args ?? []).map((a) => {
    const name = a.choices && a.choices.length <= 4 ? a.choices.join('|') : a.name;
    const word = `${name}${a.variadic ? '...' : ''}`;
    return a.optional ? `[${word}]` : word;
  });
  const name = cmd.name === program.defaultCommand ? `[${cmd.name}]` : cmd.name;
  const required = (cmd.flags ?? []).filter((f) => f.required).map((f) => `--${f.name}${f.value ? ` ${f.value}` : ''}`);
  const flags = [...required, ...(program.flags.length || cmd.flags?.length ? ['[flags]'] : [])];
  const rest = cmd.rest ? [cmd.rest.required ? `-- ${cmd.rest.name}` : `[-- ${cmd.rest.name}]`] : [];
  return [program.name, name, ...args, ...flags, ...rest].join(' ');
}

/** The program's help: what it is, its commands, its flags, the footer. Ends with a newline. */
export function programHelp(declared: ProgramDecl): string {
  const program = withBuiltins(declared);
  const width = Math.max(...program.commands.map((c) => c.name.length));
  const lines = [
    `${program.name}: ${program.summary}`,
    '',
    `usage: ${program.name} [flags] ${program.defaultCommand ? `[COMMAND]` : 'COMMAND'} [arguments]`,
    '',
    'commands:',
    ...program.commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}${c.name === program.defaultCommand ? ' (the default)' : ''}`),
    '',
    'flags:',
    ...flagLines(program.flags),
  ];
  const fallback = program.commands.find((c) => c.name === program.defaultCommand);
  if (fallback?.flags?.length) lines.push('', `flags of ${fallback.name}:`, ...flagLines(fallback.flags));
  if (program.footer) lines.push('', program.footer.trimEnd());
  lines.push('', `Run "${program.name} COMMAND --help" for a command's arguments and flags.`);
  return `${lines.join('\n')}\n`;
}

/** One command's help: synopsis, description, its flags and the program's flags. Ends with a newline. */
export function commandHelp(declared: ProgramDecl, cmd: CommandDecl): string {
  const program = withBuiltins(declared);
  const lines = [`usage: ${commandSynopsis(program, cmd)}`, '', cmd.summary];
  if (cmd.description) lines.push('', cmd.description.replace(/PROGRAM/g, program.name).trimEnd());
  const choices = (cmd.args ?? []).filter((a) => a.choices && a.choices.length > 4);
  for (const a of choices) lines.push('', `${a.name}: one of ${a.choices!.join(', ')}`);
  if (cmd.flags?.length) lines.push('', 'flags:', ...flagLines(cmd.flags));
  lines.push('', cmd.flags?.length ? `flags of every ${program.name} command:` : 'flags:', ...flagLines(program.flags));
  return `${lines.join('\n')}\n`;
}
