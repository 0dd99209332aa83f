// The command line both data-path benchmarks share (`npm run bench`,
// `npm run bench:cross-node`): round and window lengths, the sim's name and
// where results go. A bench adds its own flags through `extra`.
import * as path from 'node:path';

/** A command-line mistake: the bench prints it with its usage and exits 2. */
export class UsageError extends Error {}

export interface CommonOptions {
  quick: boolean;
  rounds: number;
  duration: number;
  iperfTime: number;
  warmup: number;
  name: string;
  out: string;
}

/**
 * Parses the shared flags; any other flag goes to `extra(flag, value)`, which
 * returns false for a flag it does not know (`value()` takes the next
 * argument). `--help` prints `usage` and exits 0.
 */
export function parseCommonOptions(
  argv: string[],
  defaults: { name: string; root: string; usage: string },
  extra: (flag: string, value: () => string) => boolean = () => false,
): CommonOptions {
  const set: Partial<CommonOptions> = {};
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const num = (lo: number, hi: number) => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < lo || v > hi) throw new UsageError(`${a}: a number from ${lo} to ${hi}`);
      return v;
    };
    if (a === '--quick') quick = true;
    else if (a === '--rounds') set.rounds = Math.round(num(1, 20));
    else if (a === '--duration') set.duration = num(0.5, 60);
    else if (a === '--iperf-time') set.iperfTime = Math.round(num(1, 60));
    else if (a === '--warmup') set.warmup = num(0, 10);
    else if (a === '--name') set.name = value();
    else if (a === '--out') set.out = path.resolve(value());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${defaults.usage}\n`);
      process.exit(0);
    } else if (!extra(a, value)) throw new UsageError(`unknown flag ${a}`);
  }
  const base = quick ? { rounds: 1, duration: 1, iperfTime: 2, warmup: 0.5 } : { rounds: 3, duration: 5, iperfTime: 10, warmup: 1 };
  return {
    quick,
    rounds: set.rounds ?? base.rounds,
    duration: set.duration ?? base.duration,
    iperfTime: set.iperfTime ?? base.iperfTime,
    warmup: set.warmup ?? base.warmup,
    name: set.name ?? defaults.name,
    out: set.out ?? path.join(defaults.root, 'bench-results'),
  };
}

/**
 * Runs a bench's main and exits with its code: 2 with the usage after a
 * UsageError, 1 with the stack after any other failure.
 */
export function runBench(name: string, usage: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`${name}: ${err.message}\n${usage}\n`);
        process.exit(2);
      }
      process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
