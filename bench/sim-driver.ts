// The simulated cluster as the benchmark harnesses drive it: sluice-sim
// through its command line (every call bounded in time), plus the machine
// readings and namespace settings both harnesses take.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCmd, type CmdResult } from './processes';

export interface SimStatus {
  nodes: { name: string; netns: string; proxyAddress: string; cgroup: string; bpffs: string }[];
  agents: { node: string; pid: number | null; alive: boolean; ready: boolean }[];
  pods: { namespace: string; name: string; node?: string; ip: string; running: boolean; enrolled: boolean; netns: string }[];
  services: { namespace: string; name: string; clusterIPs: string[]; ports: string[]; endpoints: string[] }[];
}

/** What `sluicectl -o json status` says, as far as the harnesses read it. */
export interface AgentStatus {
  proxyCounters?: Record<string, number>;
  tunnels?: { streamsOpened?: number; sessionsOpened?: number; server?: Record<string, number> } | null;
}

export class SimDriver {
  /**
   * simBin: where sluice-sim is (it may be a private copy of the build);
   * namespace: where the benchmark's pods live; agentEnv: SLUICE_* settings
   * for the agents this sim starts (they inherit the CLI's environment).
   */
  constructor(
    readonly name: string,
    private readonly simBin: () => string,
    private readonly namespace: string,
    private readonly agentEnv: Record<string, string> = {},
  ) {}

  run(args: string[], timeoutMs = 60000, extraEnv: Record<string, string> = {}): Promise<CmdResult> {
    return runCmd(process.execPath, [this.simBin(), ...args], timeoutMs, { ...process.env, ...this.agentEnv, ...extraEnv });
  }

  async must(args: string[], timeoutMs = 60000, extraEnv: Record<string, string> = {}): Promise<string> {
    const r = await this.run(args, timeoutMs, extraEnv);
    if (r.code !== 0) throw new Error(`sluice-sim ${args.join(' ')} exited ${r.code}${r.timedOut ? ' (timed out)' : ''}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  up(manifest: string, nodes: number, timeoutMs: number): Promise<string> {
    return this.must(['up', '-f', manifest, '--nodes', String(nodes), '--name', this.name], timeoutMs);
  }

  exec(pod: string, argv: string[], timeoutMs: number): Promise<CmdResult> {
    return this.run(['exec', `${this.namespace}/${pod}`, '--name', this.name, '--', ...argv], timeoutMs);
  }

  async status(): Promise<SimStatus> {
    return JSON.parse(await this.must(['status', '-o', 'json', '--name', this.name])) as SimStatus;
  }

  /** extraEnv: settings for an agent this starts, over the sim's own agentEnv. */
  agent(node: string, action: 'stop' | 'start', extraEnv: Record<string, string> = {}): Promise<string> {
    return this.must(['agent', node, action, '--name', this.name], 60000, extraEnv);
  }

  async agentStatus(node: string): Promise<AgentStatus> {
    return JSON.parse(await this.must(['ctl', node, '--name', this.name, '--', '-o', 'json', 'status'])) as AgentStatus;
  }

  /** Bounded and synchronous, so that it can run from a signal handler too. */
  downSync(): void {
    spawnSync(process.execPath, [this.simBin(), 'down', '--name', this.name], { stdio: 'ignore', timeout: 90000 });
  }
}

/** CPU time a cgroup has used so far, µs (cgroup v2 cpu.stat). */
export function cpuUsec(cgroup: string): number {
  try {
    const m = /^usage_usec (\d+)$/m.exec(fs.readFileSync(path.join(cgroup, 'cpu.stat'), 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Busy CPU time of the whole machine so far, µs (from /proc/stat; idle and iowait excluded). */
export function machineBusyUs(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  const hz = 100; // USER_HZ on Linux
  return ((user + nice + system + irq + softirq + (steal || 0)) * 1e6) / hz;
}

/**
 * Only inside namespaces the sim created: short-lived connections at
 * thousands per second would otherwise run out of ports to TIME_WAIT.
 */
export async function setSysctls(netns: string): Promise<void> {
  for (const [k, v] of [
    ['net.ipv4.tcp_tw_reuse', '1'],
    ['net.ipv4.ip_local_port_range', '20000 60999'],
  ]) {
    const r = await runCmd('nsenter', [`--net=/run/netns/${netns}`, '--', 'sysctl', '-q', '-w', `${k}=${v}`], 5000);
    if (r.code !== 0) throw new Error(`sysctl ${k} in ${netns}: ${r.stderr}`);
  }
}
