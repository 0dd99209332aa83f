// HAProxy as the benchmarks' peer: one process in a node's netns and a
// cgroup of that node (placed like the agent), one thread, no logging, a
// single frontend and backend, a stats socket to check traffic went through it.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { alive, killPid, live, sleep } from './processes';

export class Haproxy {
  private child?: ChildProcess;
  /** The "bind" and "server" lines it runs with now ('' when stopped). */
  running = { bind: '', server: '' };

  /** extraDefaults: lines for the defaults section (say "option splice-auto"). */
  constructor(
    readonly id: string,
    private readonly dir: string,
    private readonly netns: string,
    readonly cgroup: string,
    private readonly extraDefaults: string[] = [],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return alive(this.pid);
  }

  get statsSocket(): string {
    return path.join(this.dir, `haproxy-${this.id}.sock`);
  }

  private get logFile(): string {
    return path.join(this.dir, `haproxy-${this.id}.log`);
  }

  /** bind / server: the rest of the "bind" and "server" config lines (TLS options included). */
  async start(bind: string, server: string): Promise<void> {
    await this.stop();
    const cfg = path.join(this.dir, `haproxy-${this.id}.cfg`);
    fs.writeFileSync(
      cfg,
      [
        'global',
        '  nbthread 1',
        '  maxconn 4000',
        `  stats socket ${this.statsSocket} mode 600 level user`,
        '  ssl-default-bind-options ssl-min-ver TLSv1.3',
        '  ssl-default-server-options ssl-min-ver TLSv1.3',
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 60s',
        '  timeout server 60s',
        ...this.extraDefaults.map((l) => `  ${l}`),
        'frontend in',
        `  bind ${bind}`,
        '  default_backend out',
        'backend out',
        `  server s1 ${server}`,
        '',
      ].join('\n'),
    );
    fs.rmSync(this.statsSocket, { force: true });
    fs.mkdirSync(this.cgroup, { recursive: true });
    const logFd = fs.openSync(this.logFile, 'a');
    const enter = 'cg=$1; ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"';
    this.child = spawn('/bin/sh', ['-c', enter, 'sh', this.cgroup, `/run/netns/${this.netns}`, 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    const pid = this.child.pid;
    if (pid) live.set(pid, this.child);
    this.child.on('exit', () => pid && live.delete(pid));
    this.running = { bind, server };
    const deadline = Date.now() + 5000;
    for (;;) {
      if (!this.alive) throw new Error(`haproxy ${this.id} exited at start:\n${fs.readFileSync(this.logFile, 'utf8').slice(-2000)}`);
      try {
        await this.stats('show info');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`haproxy ${this.id} did not come up within 5 s`);
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    const pid = this.pid;
    this.child = undefined;
    this.running = { bind: '', server: '' };
    if (!alive(pid)) return;
    killPid(pid!, 'SIGTERM');
    for (let i = 0; i < 60 && alive(pid); i++) await sleep(50);
    if (alive(pid)) killPid(pid!, 'SIGKILL');
    for (let i = 0; i < 40 && alive(pid); i++) await sleep(50);
  }

  stopSync(): void {
    if (alive(this.pid)) killPid(this.pid!, 'SIGKILL');
  }

  stats(command: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path: this.statsSocket });
      let out = '';
      s.setTimeout(2000, () => s.destroy(new Error('stats socket timed out')));
      s.on('connect', () => s.write(`${command}\n`));
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
  }

  /** Connections it has taken so far (the stats socket's own count too), and TLS ones. */
  async info(): Promise<{ cumConns: number; cumSslConns: number }> {
    const out = await this.stats('show info');
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(out)?.[1] ?? NaN);
    return { cumConns: n('CumConns'), cumSslConns: n('CumSslConns') };
  }
}
