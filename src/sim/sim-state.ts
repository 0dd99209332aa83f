// What a simulated cluster is made of, persisted so that every sluice-sim
// command (and `down` after a crash) knows what exists.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KubeObject } from '../control/kubernetes-objects';
import { writeFileAtomic } from '../files/atomic-write';

export const STATE_ROOT = '/run/sluice-sim';

/**
 * One node: its network namespace, pod CIDR, cgroup, bpffs directory and the
 * files and pids of its agent and listener keeper.
 */
export interface NodeState {
  name: string;
  index: number;
  netns: string;
  podCidr: string;
  /** Gateway of the pod network = the node proxy address. */
  gateway: string;
  fabricAddress: string;
  cgroup: string;
  bpffs: string;
  adminSocket: string;
  podNetnsDir: string;
  stateDir: string;
  nodeTokenFile: string;
  agentLog: string;
  agentPid?: number;
  /** The listener keeper beside the agent (the DaemonSet's listener-keeper container). */
  keeperSocket: string;
  keeperLog: string;
  keeperPid?: number;
}

/** One pod as started: key "Pod/namespace/name", its address, network namespace, cgroup, log and pid. */
export interface PodState {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  node: string;
  ip: string;
  netns: string;
  cgroup: string;
  /** The pod's veth on the node, as the CNI chain reported it. */
  hostVeth: string;
  log: string;
  pid?: number;
  /** JSON of the spec it was started with: a changed spec restarts the pod. */
  specHash: string;
}

/** An object applied to the sim, with its source and the directory relative paths in a pod's command resolve against. */
export interface StoredObject {
  object: KubeObject;
  source: string;
  dir: string;
}

/** The cluster's Kubernetes API: a test stand-in (kube-api-main.ts) in the fabric's network namespace. */
export interface KubeApiState {
  /** Where it listens, in the fabric's network namespace (sluice-control reaches it there). */
  listen: string;
  /** Its kubeconfig, token and unix socket (kubeApiFiles). */
  dir: string;
  log: string;
  pid?: number;
}

/** The control plane (sluice-control) process of the sim. */
export interface ControlState {
  /** Address of the control plane on the fabric (the agents' --control-plane). */
  address: string;
  adminSocket: string;
  caDir: string;
  /** Secret the node credentials derive from (the sim plays the operator who provisions them). */
  nodeSecretFile: string;
  log: string;
  pid?: number;
}

/** Everything one sim made, saved as state.json in its directory (simDir). */
export interface SimState {
  name: string;
  createdAt: string;
  dir: string;
  cgroup: string;
  fabricNetns: string;
  kubeApi: KubeApiState;
  control: ControlState;
  nodes: NodeState[];
  pods: PodState[];
  objects: StoredObject[];
  generation: number;
  /** Set when the agents run from a container image (`up --image`). */
  image?: AgentImageState;
}

/** The image the agents run from, unpacked once at `up`. */
export interface AgentImageState {
  archive: string;
  ref: string;
  rootfs: string;
  /** "KEY=value" environment of the image's config. */
  env: string[];
  /** The agent container's capabilities, read from the DaemonSet manifest. */
  capabilities: string[];
  manifest: string;
}

/** The directory of a sim: /run/sluice-sim/<name>. */
export function simDir(name: string): string {
  return path.join(STATE_ROOT, name);
}

/** The saved state of a sim, or undefined when there is none. */
export function loadState(name: string): SimState | undefined {
  const file = path.join(simDir(name), 'state.json');
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as SimState;
}

/** Writes the sim's state (state.json in its directory) atomically. */
export function saveState(state: SimState): void {
  writeFileAtomic(path.join(state.dir, 'state.json'), JSON.stringify(state, null, 2));
}

/** The name when it is 1-16 lowercase letters, digits or '-' (it prefixes netns and cgroup names); throws otherwise. */
export function validateSimName(name: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/.test(name)) {
    throw new Error(`--name ${JSON.stringify(name)}: must be 1-16 lowercase letters, digits or '-'`);
  }
  return name;
}
