// Runs a program from its declaration: --help, version, completion, the
// command's handler, exit codes, and errors on stderr. Output is never cut
// short: the process exits only once stdout and stderr have been written out.
import { completionScript } from './completion';
import { type ProgramDecl, type Shell, withBuiltins } from './declaration';
import { commandHelp, programHelp } from './help';
import { type ParsedCommandLine, UsageError, parseCommandLine } from './parse';
import { versionText } from './version';

/** Exit codes of every sluice binary. */
export const EXIT = {
  /** Done; for sluicectl trace: the connection would be captured and allowed. */
  OK: 0,
  /** It failed, or the answer is "no" (a trace verdict of refused, denied or not captured). */
  FAILURE: 1,
  /** The command line, or the configuration or manifests it names, is invalid; nothing was done. */
  USAGE: 2,
} as const;

/** What a handler returns: an exit code, or SERVING when the process keeps running (a server). */
export const SERVING = 'serving';
export type CommandResult = number | typeof SERVING;
export type CommandHandler = (parsed: ParsedCommandLine) => CommandResult | Promise<CommandResult>;

export interface RunOptions {
  /**
   * Turns an error a handler threw into an exit code and a message; return
   * undefined for the default: UsageError exits 2 with a hint to --help,
   * TypeError, RangeError and ReferenceError (bugs) exit 1 with their stack,
   * any other error exits 1 with its message.
   */
  classify?: (err: Error) => { code: number; message: string } | undefined;
}

/**
 * Exits with `code` once everything written to stdout and stderr so far has
 * been handed to the operating system. process.exit() right after a write
 * would drop what a pipe has not taken yet (anything past 64 KiB).
 */
export function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.destroyed || stream.writableEnded) done();
    else stream.write('', () => done());
  }
}

let pipeGuard = false;

/** A reader that goes away (`| head`) ends the program quietly instead of with an EPIPE stack. */
function guardStdout(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw err;
  });
}

function usageFailure(program: string, err: UsageError): void {
  const where = err.command && err.command !== '' ? `${program} ${err.command} --help` : `${program} --help`;
  process.stderr.write(`${program}: ${err.message}\nRun "${where}" for usage.\n`);
  exitAfterFlush(EXIT.USAGE);
}

/**
 * Parses argv against the declaration and runs the command's handler.
 * Handles the built-ins itself: --help/-h and "help [COMMAND]" (stdout, exit
 * 0), --version and "version", "completion bash|zsh|fish". Usage errors go to
 * stderr with a hint to --help and exit 2; a handler's number is the exit
 * code; SERVING leaves the process running.
 */
export async function runProgram(declared: ProgramDecl, argv: readonly string[], handlers: Record<string, CommandHandler>, options: RunOptions = {}): Promise<void> {
  guardStdout();
  const program = withBuiltins(declared);
  try {
    const parsed = parseCommandLine(declared, argv);
    if (parsed.values.help || parsed.command === 'help') {
      const topic = parsed.command === 'help' && !parsed.values.help ? parsed.args[0] : parsed.named ? parsed.command : undefined;
      const decl = topic === undefined ? undefined : program.commands.find((c) => c.name === topic);
      if (topic !== undefined && !decl) throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
      process.stdout.write(decl ? commandHelp(declared, decl) : programHelp(declared));
      return exitAfterFlush(EXIT.OK);
    }
    if (parsed.values.version || parsed.command === 'version') {
      process.stdout.write(versionText(program.name));
      return exitAfterFlush(EXIT.OK);
    }
    if (parsed.command === 'completion') {
      process.stdout.write(completionScript(declared, parsed.args[0] as Shell));
      return exitAfterFlush(EXIT.OK);
    }
    const handler = handlers[parsed.command];
    if (!handler) throw new UsageError(parsed.command ? `command ${parsed.command} is not available` : 'a command is required');
    const result = await handler(parsed);
    if (result !== SERVING) exitAfterFlush(result);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (err instanceof UsageError) return usageFailure(program.name, err);
    const classified = options.classify?.(err);
    if (classified) {
      process.stderr.write(`${program.name}: ${classified.message}\n`);
      return exitAfterFlush(classified.code);
    }
    const bug = err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError;
    process.stderr.write(`${program.name}: ${bug ? err.stack : err.message}\n`);
    exitAfterFlush(EXIT.FAILURE);
  }
}
