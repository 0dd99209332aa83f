// Small helpers over host tools (ip, nsenter) and kernel interfaces (cgroup2),
// each failing with the command and what it said.
import { execFileSync } from 'node:child_process';
import { cgroup2MountPoint } from '../kernel/kubepods-cgroup';
import * as fs from 'node:fs';
import * as http from 'node:http';

/** A host command (ip, nsenter, ...) that failed; the message has the command line and its stderr. */
export class HostCommandError extends Error {}

/** Runs a command and returns its stdout; throws HostCommandError with the command line and stderr. */
export function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new HostCommandError(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** Runs a command whose failure only means "already gone". */
export function runIgnoringFailure(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // already absent
  }
}

/** The cgroup v2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts). */
export function cgroup2Root(): string {
  const root = cgroup2MountPoint(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!root) throw new Error('no cgroup v2 hierarchy is mounted (sluice needs cgroup v2)');
  return root;
}

/** Throws, naming the tool, unless the process runs as root. */
export function requireRoot(tool: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`${tool} needs root: it creates network namespaces, cgroups and BPF pins (run it with sudo)`);
  }
}

/** Mounts a bpf filesystem at `dir` unless one is mounted there. */
export function ensureBpffs(dir = '/sys/fs/bpf'): void {
  const mounted = fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'bpf');
  if (!mounted) {
    fs.mkdirSync(dir, { recursive: true });
    run('mount', ['-t', 'bpf', 'bpf', dir]);
  }
}

/** The names of the named network namespaces (ip netns list). */
export function netnsList(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

/** Whether the process exists and is not a zombie. */
export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie is not alive
  } catch {
    return false;
  }
}

/** Kills every process in a cgroup subtree (cgroup.kill, falling back to cgroup.procs). */
export function killCgroup(dir: string): void {
  if (!fs.existsSync(dir)) return;
  try {
    fs.writeFileSync(`${dir}/cgroup.kill`, '1');
    return;
  } catch {
    // older kernels: kill one by one
  }
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    for (const pid of fs.readFileSync(`${d}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  walk(dir);
}

/** Removes a cgroup subtree, deepest first. Waits briefly for killed processes to leave. */
export async function removeCgroup(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    dirs.push(d);
  };
  walk(dir);
  for (const d of dirs) {
    for (let i = 0; i < 50; i++) {
      try {
        fs.rmdirSync(d);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        if (i === 49) throw new Error(`remove cgroup ${d}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  }
}

/** Resolves after ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** GET over a unix socket; resolves with status and parsed JSON body. */
export function getJson(socketPath: string, path: string, timeoutMs = 3000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path, timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : null });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: data });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${socketPath}: timed out`)));
    req.on('error', reject);
  });
}
