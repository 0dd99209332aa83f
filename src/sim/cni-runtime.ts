// The container runtime's CNI step, as containerd and CRI-O run it through
// libcni (CNI specification 1.0.0, "Execution of Network Configurations"):
// the node's primary network configuration is the first *.conflist / *.conf
// of its CNI config directory in lexical order; its plugins run in order for
// ADD and CHECK, each given the previous one's result as prevResult, and in
// reverse order for DEL. The loopback interface is brought up by the
// `loopback` plugin first, as containerd does. Plugins are found on CNI_PATH
// and run in the node's network namespace, where a runtime would run them.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where the runtime of one node finds its CNI configuration and plugins. */
export interface CniRuntime {
  /** The node's network namespace path: plugins run there. */
  nodeNetns: string;
  confDir: string;
  /** CNI_PATH: directories searched for plugin binaries, in order. */
  binDirs: string[];
  /** Bound on one plugin run, in ms: a runtime's own timeout. */
  pluginTimeoutMs: number;
}

/** One pod sandbox as the runtime describes it to the plugins. */
export interface PodSandbox {
  containerId: string;
  /** The pod's network namespace path (CNI_NETNS). */
  netns: string;
  ifName: string;
  namespace: string;
  name: string;
  uid: string;
  /** An address asked of host-local through CNI_ARGS IP= (the sim keeps pod IPs stable). */
  ip?: string;
}

/** The spec's result of an ADD, the parts the runtime reads. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
}

/** A plugin failed: the spec's error object (code, msg, details) when it printed one. */
export class CniPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly code: number,
    readonly msg: string,
    readonly details = '',
  ) {
    super(`CNI ${command} ${plugin}: code ${code}: ${msg}${details ? ` (${details})` : ''}`);
  }
}

interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: ({ type: string } & Record<string, unknown>)[];
}

/** Code 11 of the spec: "Try again later", the plugin expects a retry to succeed. */
export const CNI_TRY_AGAIN_LATER = 11;

/** Reads the primary network configuration of confDir (a .conf becomes a one-plugin list). Throws when none is there. */
export function primaryNetworkConfig(confDir: string): { file: string; list: NetworkConfigList } {
  const files = fs.existsSync(confDir) ? fs.readdirSync(confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort() : [];
  if (files.length === 0) throw new Error(`no CNI network configuration in ${confDir}`);
  const file = path.join(confDir, files[0]);
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (Array.isArray(parsed.plugins)) return { file, list: parsed as unknown as NetworkConfigList };
  const { cniVersion, name, ...plugin } = parsed as { cniVersion: string; name: string; type: string };
  return { file, list: { cniVersion, name, plugins: [plugin] } };
}

function cniArgs(pod: PodSandbox): string {
  const args = ['IgnoreUnknown=1', `K8S_POD_NAMESPACE=${pod.namespace}`, `K8S_POD_NAME=${pod.name}`, `K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`, `K8S_POD_UID=${pod.uid}`];
  if (pod.ip) args.push(`IP=${pod.ip}`);
  return args.join(';');
}

function findPlugin(rt: CniRuntime, type: string): string {
  for (const dir of rt.binDirs) {
    const candidate = path.join(dir, type);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new CniPluginError(type, 'find', 0, `failed to find plugin "${type}" in path [${rt.binDirs.join(' ')}]`);
}

/** Runs one plugin binary with the spec's environment and stdin; resolves with its parsed stdout. */
function runPlugin(rt: CniRuntime, type: string, command: string, pod: PodSandbox, ifName: string, netconf: object): Promise<unknown> {
  const binary = findPlugin(rt, type);
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${rt.nodeNetns}`, '--', binary], {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.containerId,
        CNI_NETNS: pod.netns,
        CNI_IFNAME: ifName,
        CNI_ARGS: cniArgs(pod),
        CNI_PATH: rt.binDirs.join(':'),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: rt.pluginTimeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', (err) => reject(new CniPluginError(type, command, 0, err.message)));
    child.on('close', (code, signal) => {
      let out: unknown;
      try {
        out = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        out = undefined;
      }
      if (code === 0) return resolve(out);
      const e = (out ?? {}) as { code?: number; msg?: string; details?: string };
      const why = signal ? `killed by ${signal} after ${rt.pluginTimeoutMs} ms` : `exit ${code}`;
      reject(new CniPluginError(type, command, typeof e.code === 'number' ? e.code : 0, e.msg ?? `${why}: ${(stderr || stdout).trim().slice(0, 500)}`, e.details ?? ''));
    });
    child.stdin.end(JSON.stringify(netconf));
  });
}

const LOOPBACK = { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' };

/**
 * Networks one pod: loopback, then every plugin of the primary configuration
 * with prevResult chained. Resolves with the last plugin's result; rejects
 * with the first CniPluginError (the caller then runs `removePodNetwork`, as
 * a runtime cleans up a failed sandbox).
 */
export async function addPodNetwork(rt: CniRuntime, pod: PodSandbox): Promise<CniResult> {
  await runPlugin(rt, 'loopback', 'ADD', pod, 'lo', LOOPBACK);
  const { list } = primaryNetworkConfig(rt.confDir);
  let prev: unknown;
  for (const plugin of list.plugins) {
    const netconf = { cniVersion: list.cniVersion, name: list.name, ...plugin, ...(prev ? { prevResult: prev } : {}) };
    prev = await runPlugin(rt, plugin.type, 'ADD', pod, pod.ifName, netconf);
  }
  return prev as CniResult;
}

/**
 * Tears one pod's network down: every plugin in reverse order, then loopback.
 * DEL must succeed for what is already gone (spec), so every plugin runs even
 * when one fails; the first failure is thrown at the end.
 */
export async function removePodNetwork(rt: CniRuntime, pod: PodSandbox): Promise<void> {
  let list: NetworkConfigList;
  try {
    list = primaryNetworkConfig(rt.confDir).list;
  } catch {
    return; // no configuration: nothing was set up through it
  }
  let first: Error | undefined;
  for (const plugin of [...list.plugins].reverse()) {
    const netconf = { cniVersion: list.cniVersion, name: list.name, ...plugin };
    await runPlugin(rt, plugin.type, 'DEL', pod, pod.ifName, netconf).catch((err: Error) => (first ??= err));
  }
  await runPlugin(rt, 'loopback', 'DEL', pod, 'lo', LOOPBACK).catch((err: Error) => (first ??= err));
  if (first) throw first;
}

/** The IPv4 addresses of a result, without prefix length. */
export function addressesOf(result: CniResult | undefined): string[] {
  return (result?.ips ?? []).map((i) => i.address.split('/')[0]);
}

/** The node-side interface of a result (the veth peer), if a plugin reported one. */
export function hostInterfaceOf(result: CniResult | undefined): string | undefined {
  return result?.interfaces?.find((i) => !i.sandbox)?.name;
}
