// Child processes of the benchmark harnesses: every command bounded in
// time, every child tracked by pid so that a signal can end them all.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/** Children this run started and has not yet seen exit: pid -> process. */
export const live = new Map<number, ChildProcess>();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs a command, bounded in time: past timeoutMs the child (by pid) gets SIGKILL. */
export function runCmd(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<CmdResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    if (child.pid) live.set(child.pid, child);
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) killPid(child.pid, 'SIGKILL');
    }, timeoutMs);
    const done = (code: number) => {
      clearTimeout(timer);
      if (child.pid) live.delete(child.pid);
      resolve({ code, stdout, stderr, timedOut, ms: Date.now() - t0 });
    };
    child.on('error', (err) => {
      stderr += String(err);
      done(-1);
    });
    child.on('close', (code) => done(code ?? -1));
  });
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** First line a command prints (a version, say). */
export function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}
