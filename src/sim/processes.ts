// Host processes placed in a cgroup and a network namespace: pod commands,
// agents, and `sluice-sim exec`.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isAlive, sleep } from './host';

// Join the cgroup first (so every child stays in it), then enter the netns.
const ENTER = 'cg=$1; ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"';

/**
 * A process to start: the cgroup directory it joins, the network namespace
 * name (under /run/netns) it enters, argv, and the file its stdout and stderr
 * are appended to.
 */
export interface SpawnOptions {
  cgroup: string;
  netns: string;
  argv: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
}

/** Starts a detached process (its own process group); returns its pid. */
export function spawnDetached(opts: SpawnOptions): number {
  const log = fs.openSync(opts.logFile, 'a');
  try {
    const child = spawn('/bin/sh', ['-c', ENTER, 'sh', opts.cgroup, `/run/netns/${opts.netns}`, ...opts.argv], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', log, log],
    });
    child.unref();
    if (!child.pid) throw new Error(`could not start ${opts.argv.join(' ')}`);
    return child.pid;
  } finally {
    fs.closeSync(log);
  }
}

/** Runs a command in the foreground with stdio passed through; returns its exit code. */
export function runAttached(cgroup: string, netns: string, argv: string[], env?: NodeJS.ProcessEnv): number {
  const r = spawnSync('/bin/sh', ['-c', ENTER, 'sh', cgroup, `/run/netns/${netns}`, ...argv], {
    stdio: 'inherit',
    env: env ?? process.env,
  });
  if (r.error) throw r.error;
  return r.status ?? (r.signal ? 128 + os.constants.signals[r.signal] : 1);
}

/** SIGTERM to the process group, then SIGKILL after graceMs. */
export async function stopProcess(pid: number | undefined, graceMs = 3000): Promise<void> {
  if (!pid || !isAlive(pid)) return;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pid, s);
    } catch {
      try {
        process.kill(pid, s);
      } catch {
        // gone
      }
    }
  };
  signal('SIGTERM');
  for (let waited = 0; waited < graceMs; waited += 50) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  signal('SIGKILL');
  for (let i = 0; i < 40 && isAlive(pid); i++) await sleep(50);
}

/** The last `lines` lines of a file, or "" when it cannot be read. */
export function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
