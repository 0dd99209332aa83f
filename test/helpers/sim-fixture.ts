// Drives sluice-sim through its command line, as a user or outside test
// would. Every call is bounded in time.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const projectRoot = path.resolve(__dirname, '..', '..', '..');
export const fixtures = path.join(projectRoot, 'test', 'fixtures');
const simBin = path.join(projectRoot, 'bin', 'sluice-sim');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class SimFixture {
  private readonly dir: string;
  private files = 0;

  constructor(readonly name: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-test-${name}-`));
  }

  run(args: string[], timeoutMs = 60000): Result {
    const r = spawnSync(process.execPath, [simBin, '--name', this.name, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  /** Like run(), but throws with the output when the command fails. */
  must(args: string[], timeoutMs = 60000): string {
    const r = this.run(args, timeoutMs);
    if (r.code !== 0) throw new Error(`sluice-sim ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Writes YAML (with {{FIXTURES}} replaced) to a file and returns its path. */
  manifest(yaml: string): string {
    const file = path.join(this.dir, `m${++this.files}.yaml`);
    fs.writeFileSync(file, yaml.replace(/\{\{FIXTURES\}\}/g, fixtures));
    return file;
  }

  /** `sluice-sim up`; with `image`, the agents run from that OCI archive (--image). */
  up(yaml: string, nodes = 1, image?: string): void {
    this.must(['up', '-f', this.manifest(yaml), '--nodes', String(nodes), ...(image ? ['--image', image] : [])], 180000);
  }

  apply(yaml: string): void {
    this.must(['apply', '-f', this.manifest(yaml)]);
  }

  /** Starts `sluice-sim apply` without waiting; resolves with its result when it ends. */
  applyAsync(yaml: string, timeoutMs = 120000): Promise<Result> {
    return this.runAsync(['apply', '-f', this.manifest(yaml)], timeoutMs);
  }

  private runAsync(args: string[], timeoutMs: number): Promise<Result> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [simBin, '--name', this.name, ...args], { timeout: timeoutMs });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  delete(yaml: string): void {
    this.must(['delete', '-f', this.manifest(yaml)]);
  }

  exec(pod: string, argv: string[], timeoutMs = 60000): Result {
    const args = ['exec', pod, '--name', this.name, '--', ...argv];
    const r = spawnSync(process.execPath, [simBin, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  /** Starts a command in a pod without waiting; resolves with its result when it ends. */
  execAsync(pod: string, argv: string[], timeoutMs = 120000): Promise<Result> {
    return this.runAsync(['exec', pod, '--', ...argv], timeoutMs);
  }

  status(): SimStatus {
    return JSON.parse(this.must(['status', '-o', 'json'])) as SimStatus;
  }

  ctlJson<T>(node: string, command: string): T {
    return JSON.parse(this.must(['ctl', node, '--', '-o', 'json', command])) as T;
  }

  down(): void {
    this.run(['down'], 60000);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface SimStatus {
  agents: { node: string; pid: number | null; alive: boolean; ready: boolean }[];
  pods: { namespace: string; name: string; node: string; ip: string; enrolled: boolean; running: boolean; netns: string }[];
  services: { namespace: string; name: string; clusterIPs: string[]; endpoints: string[] }[];
  netns: { fabric: string; nodes: string[]; pods: string[] };
  nodes: { name: string; bpffs: string; cgroup: string }[];
}

/** Retries fn until it returns true, at most `tries` times `delayMs` apart. */
export async function eventually(fn: () => boolean, tries = 50, delayMs = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  return false;
}
