// sluice-sim: a Kubernetes-like cluster on one Linux machine. Nodes and pods
// are network namespaces and cgroups the sim creates; pods' commands run as
// host processes inside them; one sluice agent runs per node. The cluster's
// objects live in a Kubernetes API stand-in (kube-api-main.ts), which
// sluice-control follows with its Kubernetes source, as on a real cluster.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Container, KubeObject, Pod, SourcedObject } from '../control/kubernetes-objects';
import { formatTranslationError, translate, type Translation } from '../control/translate';
import { nodeToken } from '../identity/node-credential';
import { translatePolicies } from '../control/translate-policy';
import { cgroup2Root, ensureBpffs, getJson, isAlive, killCgroup, netnsList, removeCgroup, requireRoot, sleep } from './host';
import { objectKey } from '../control/manifests';
import { runAttached, spawnDetached, stopProcess, tail } from './processes';
import { writeFileAtomic } from '../files/atomic-write';
import { loadState, saveState, simDir, validateSimName, type AgentImageState, type NodeState, type PodState, type SimState, type StoredObject } from './sim-state';
import { agentContainerSpec, agentMounts, containerArgv } from './agent-container';
import { unpackImage } from './oci-image';
import { createFabric, createNode, createPodNetns, deleteNetns, primaryCniConfig, routeBetweenNodes } from './topology';
import { SimKubeApi, kubeApiFiles } from './kube-api-client';
import { CNI_TRY_AGAIN_LATER, CniPluginError, addPodNetwork, addressesOf, hostInterfaceOf, removePodNetwork, type CniRuntime, type PodSandbox } from './cni-runtime';

const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..');
const AGENT_MAIN = path.join(PROJECT_ROOT, 'dist', 'src', 'agent', 'main.js');
const CONTROL_MAIN = path.join(PROJECT_ROOT, 'dist', 'src', 'control', 'main.js');
const KUBE_API_MAIN = path.join(PROJECT_ROOT, 'dist', 'src', 'sim', 'kube-api-main.js');
const CONTROL_IP = '10.250.0.254';
/** The API stand-in's address in the fabric's network namespace: loopback, for sluice-control beside it. */
const KUBE_API_LISTEN = '127.0.0.1:6443';
const XDS_PORT = 15010;
const CLI_MAIN = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');
const CNI_MAIN = path.join(PROJECT_ROOT, 'dist', 'src', 'cni', 'main.js');
/** Where the agent container's capabilities and mounts are read from. */
const AGENT_MANIFEST = path.join(PROJECT_ROOT, 'deploy', 'base', 'sluice-agent.yaml');
/** Debian's containernetworking-plugins: bridge, host-local, loopback. */
const DEBIAN_CNI_PLUGINS = '/usr/lib/cni';
/** How long a pod's sandbox is retried, as a kubelet would, before apply gives up on it. */
const POD_NETWORK_TIMEOUT_MS = 60000;
const POD_NETWORK_RETRY_MS = 1000;
const BPFFS_ROOT = '/sys/fs/bpf';
const SERVICE_CIDR = { base: (10 << 24) | (96 << 16), bits: 12 }; // 10.96.0.0/12
const SYNC_TIMEOUT_MS = 30000;

/** A failure of the simulated cluster; sluice-sim prints its message alone and exits 1. */
export class SimError extends Error {}

/** The manifests given to up, apply or delete were rejected; nothing was changed. */
export class RejectedManifestsError extends SimError {}

function prefix(name: string): string {
  return `sluice-${name}_`;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, p) => (n << 8) + Number(p), 0) >>> 0;
}

function inServiceCidr(ip: string): boolean {
  const mask = (~0 << (32 - SERVICE_CIDR.bits)) >>> 0;
  return net.isIPv4(ip) && ((ipv4ToInt(ip) & mask) >>> 0) === (SERVICE_CIDR.base & mask) >>> 0;
}

function nodeState(name: string, dir: string, cgroup: string, i: number): NodeState {
  const nodeName = `node-${i}`;
  return {
    name: nodeName,
    index: i,
    netns: `${prefix(name)}${nodeName}`,
    podCidr: `10.244.${i}.0/24`,
    gateway: `10.244.${i}.1`,
    fabricAddress: `10.250.0.${i}`,
    cgroup: path.join(cgroup, nodeName),
    bpffs: path.join(BPFFS_ROOT, `${prefix(name)}${nodeName}`),
    adminSocket: path.join(dir, 'nodes', nodeName, 'admin.sock'),
    podNetnsDir: path.join(dir, 'nodes', nodeName, 'pods'),
    stateDir: path.join(dir, 'nodes', nodeName, 'state'),
    nodeTokenFile: path.join(dir, 'nodes', nodeName, 'token'),
    agentLog: path.join(dir, 'logs', `agent-${nodeName}.log`),
    keeperSocket: path.join(dir, 'nodes', nodeName, 'listeners.sock'),
    keeperLog: path.join(dir, 'logs', `listener-keeper-${nodeName}.log`),
  };
}

/** Removes everything a sim of this name made, whether or not its state survived. */
export async function down(name: string): Promise<string[]> {
  validateSimName(name);
  const removed: string[] = [];
  const state = loadState(name);
  for (const n of state?.nodes ?? []) await stopProcess(n.agentPid);
  for (const n of state?.nodes ?? []) await stopProcess(n.keeperPid);
  await stopProcess(state?.control?.pid);
  await stopProcess(state?.kubeApi?.pid);
  for (const p of state?.pods ?? []) await stopProcess(p.pid, 500);
  const cgroup = path.join(cgroup2Root(), `sluice-${name}`);
  if (fs.existsSync(cgroup)) {
    killCgroup(cgroup);
    await removeCgroup(cgroup);
    removed.push(cgroup);
  }
  // Removing the pins drops the last reference to the links: programs detach.
  if (fs.existsSync(BPFFS_ROOT)) {
    for (const e of fs.readdirSync(BPFFS_ROOT)) {
      if (e.startsWith(prefix(name))) {
        fs.rmSync(path.join(BPFFS_ROOT, e), { recursive: true, force: true });
        removed.push(path.join(BPFFS_ROOT, e));
      }
    }
  }
  for (const ns of netnsList()) {
    if (ns.startsWith(prefix(name))) {
      deleteNetns(ns);
      removed.push(`netns ${ns}`);
    }
  }
  fs.rmSync(simDir(name), { recursive: true, force: true });
  return removed;
}

/**
 * A simulated cluster, from its saved state (sim-state.ts): every sluice-sim
 * command opens or starts one, acts, and saves the state again.
 */
export class Cluster {
  private constructor(private state: SimState) {}

  /** The cluster of that name as its saved state describes it; throws a SimError when none is up. */
  static open(name: string): Cluster {
    validateSimName(name);
    const state = loadState(name);
    if (!state) throw new SimError(`no simulated cluster named ${JSON.stringify(name)} is up (start one with "sluice-sim up -f FILE")`);
    return new Cluster(state);
  }

  /**
   * Starts a cluster. With `options.image` (an OCI archive), the agents run
   * from that image as the DaemonSet's container would (agent-container.ts).
   */
  static async up(name: string, nodes: number, objects: SourcedObject[], options: { image?: string; agentManifest?: string } = {}): Promise<Cluster> {
    requireRoot('sluice-sim');
    validateSimName(name);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new SimError(`--nodes ${nodes}: must be 1-16`);
    if (!fs.existsSync(AGENT_MAIN)) throw new SimError(`${AGENT_MAIN} is missing: run "npm run build" first`);
    await down(name); // whatever a crashed run of the same name left
    ensureBpffs();
    const dir = simDir(name);
    const cgroup = path.join(cgroup2Root(), `sluice-${name}`);
    const state: SimState = {
      name,
      createdAt: new Date().toISOString(),
      dir,
      cgroup,
      fabricNetns: `${prefix(name)}fabric`,
      kubeApi: { listen: KUBE_API_LISTEN, dir: path.join(dir, 'kube-api'), log: path.join(dir, 'logs', 'kube-api.log') },
      control: {
        address: `${CONTROL_IP}:${XDS_PORT}`,
        adminSocket: path.join(dir, 'control.sock'),
        caDir: path.join(dir, 'ca'),
        nodeSecretFile: path.join(dir, 'node-secret'),
        log: path.join(dir, 'logs', 'control.log'),
      },
      nodes: [],
      pods: [],
      objects: [],
      generation: 0,
    };
    const cluster = new Cluster(state);
    cluster.validate(objects.map(toStored), nodes);
    if (options.image) state.image = agentImage(path.resolve(options.image), path.join(dir, 'image'), path.resolve(options.agentManifest ?? AGENT_MANIFEST));
    fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
    const secret = randomBytes(32);
    fs.writeFileSync(state.control.nodeSecretFile, secret, { mode: 0o600 });
    fs.mkdirSync(path.join(cgroup, 'control'), { recursive: true });
    fs.mkdirSync(path.join(cgroup, 'kube-api'), { recursive: true });
    try {
      createFabric(state.fabricNetns, CONTROL_IP);
      for (let i = 1; i <= nodes; i++) {
        const n = nodeState(name, dir, cgroup, i);
        fs.mkdirSync(path.join(n.cgroup, 'agent'), { recursive: true });
        fs.mkdirSync(path.join(n.cgroup, 'pods'), { recursive: true });
        fs.mkdirSync(n.podNetnsDir, { recursive: true });
        fs.writeFileSync(n.nodeTokenFile, nodeToken(secret, n.name), { mode: 0o600 });
        createNode(n, state.fabricNetns, 24);
        state.nodes.push(n);
        cluster.installCni(n);
      }
      routeBetweenNodes(state.nodes);
      await cluster.startKubeApi();
      await cluster.publishObjects();
      cluster.startControl();
      saveState(state);
      await cluster.waitForRoot();
      for (const n of state.nodes) {
        cluster.startKeeper(n);
        cluster.startAgent(n);
      }
      await cluster.waitSynced();
      await cluster.applyObjects(objects.map(toStored));
      return cluster;
    } catch (err) {
      saveState(state);
      throw err;
    }
  }

  /** The sim's name (part of the names of its netns, cgroups and bpffs pins). */
  get name(): string {
    return this.state.name;
  }

  /** Adds or replaces objects; pods whose spec changed are restarted. */
  async apply(objects: SourcedObject[]): Promise<void> {
    const incoming = new Map(objects.map((o) => [objectKey(o.object), toStored(o)]));
    const merged = this.state.objects.map((o) => incoming.get(objectKey(o.object)) ?? o);
    const known = new Set(this.state.objects.map((o) => objectKey(o.object)));
    for (const [k, o] of incoming) if (!known.has(k)) merged.push(o);
    await this.applyObjects(merged);
  }

  /** Removes the objects (matched by kind, namespace and name); their pods are stopped after the agents stop serving them. */
  async delete(objects: SourcedObject[]): Promise<void> {
    const gone = new Set(objects.map((o) => objectKey(o.object)));
    await this.applyObjects(this.state.objects.filter((o) => !gone.has(objectKey(o.object))));
  }

  /**
   * Runs argv in the foreground in a pod's network namespace and cgroup, with
   * POD_NAME, POD_NAMESPACE, POD_IP and NODE_NAME set; `target` is
   * "namespace/name" or a name in "default". Returns its exit code.
   */
  exec(target: string, argv: string[]): number {
    const pod = this.findPod(target);
    return runAttached(pod.cgroup, pod.netns, argv, { ...process.env, ...this.podEnv(pod) });
  }

  /** Runs sluicectl with `args` against the admin socket of a node's agent; returns its exit code. */
  ctl(nodeName: string, args: string[]): number {
    const node = this.findNode(nodeName);
    const r = spawnSync(process.execPath, [CLI_MAIN, '--admin', node.adminSocket, ...args], { stdio: 'inherit' });
    return r.status ?? 1;
  }

  /**
   * Stops, starts, restarts or upgrades (see upgradeAgent) a node's agent;
   * all but stop then wait until the agents are in sync. Throws a SimError
   * for an unknown node or action, or on start while the agent runs.
   */
  async agent(nodeName: string, action: string): Promise<void> {
    const node = this.findNode(nodeName);
    if (action === 'stop' || action === 'restart') {
      await stopProcess(node.agentPid, 10000);
      node.agentPid = undefined;
      this.saveAgentPid(node);
    }
    if (action === 'start' || action === 'restart') {
      if (isAlive(node.agentPid)) throw new SimError(`agent on ${nodeName} is already running (pid ${node.agentPid})`);
      this.startAgent(node);
      this.saveAgentPid(node);
      await this.waitSynced();
    }
    if (action === 'upgrade') await this.upgradeAgent(node);
    if (!['stop', 'start', 'restart', 'upgrade'].includes(action)) throw new SimError(`agent ${nodeName} ${action}: expected stop, start, restart or upgrade`);
  }

  /**
   * A DaemonSet rolling update with maxSurge: the new agent starts while the
   * old one runs, takes over its listening sockets (src/agent/handover.ts),
   * and once it is ready the old one gets SIGTERM, as the kubelet would send
   * when it deletes the old pod; the old one exits when drained.
   */
  private async upgradeAgent(node: NodeState): Promise<void> {
    const old = node.agentPid;
    if (!old || !isAlive(old)) throw new SimError(`no agent is running on ${node.name} to upgrade; use start`);
    this.startAgent(node);
    this.saveAgentPid(node);
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    let last = 'no answer yet';
    for (;;) {
      if (!isAlive(node.agentPid)) throw new SimError(`the new agent on ${node.name} exited:\n${tail(`${node.agentLog}.stderr`)}\n${tail(node.agentLog, 10)}`);
      try {
        const { body } = await getJson(node.adminSocket, '/status', 2000);
        const s = body as { pid: number; ready: boolean };
        if (s.pid === node.agentPid && s.ready) break;
        last = s.pid === node.agentPid ? 'the new agent is not ready yet' : `the admin socket is still the old agent's (pid ${s.pid})`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new SimError(`the new agent on ${node.name} did not take over within ${SYNC_TIMEOUT_MS} ms: ${last}\n${tail(node.agentLog, 10)}`);
      await sleep(50);
    }
    try {
      process.kill(old, 'SIGTERM');
    } catch {
      // it exited already: drained
    }
    await this.waitSynced();
  }

  /**
   * Saves the state after a change of objects and pods. The agents' and the
   * control plane's pids are taken from disk first: `agent` and `control`
   * commands own them and may have run meanwhile (a pod waiting for its
   * node's agent is networked only once `agent start` has run).
   */
  private saveObjects(): void {
    const disk = loadState(this.state.name);
    if (disk) {
      for (const n of this.state.nodes) n.agentPid = disk.nodes.find((d) => d.name === n.name)?.agentPid ?? n.agentPid;
      this.state.control.pid = disk.control.pid;
      this.state.kubeApi.pid = disk.kubeApi.pid;
    }
    saveState(this.state);
  }

  /**
   * Records this node's agent pid on the state as it is on disk now: agent
   * commands for different nodes may run at once, and each writes only its
   * own node.
   */
  private saveAgentPid(node: NodeState): void {
    const fresh = loadState(this.state.name) ?? this.state;
    const stored = fresh.nodes.find((n) => n.name === node.name);
    if (stored) stored.agentPid = node.agentPid;
    saveState(fresh);
    // And learn the other nodes' agents as they are now (waitSynced checks them).
    for (const n of this.state.nodes) if (n !== node) n.agentPid = fresh.nodes.find((f) => f.name === n.name)?.agentPid ?? n.agentPid;
  }

  /**
   * A failure injected into the cluster's Kubernetes API stand-in
   * (KubeApiStandIn's /sim/ routes): `watch RESOURCE FAULT`, `compact` or
   * `delay MS`. Returns the stand-in's answer; throws a SimError with its
   * message when it refuses.
   */
  async apiFault(kind: string, args: string[]): Promise<object> {
    const usage = 'expected: watch RESOURCE FAULT | compact | delay MS';
    let request: { path: string; body: object };
    if (kind === 'watch' && args.length === 2) request = { path: '/sim/watch-fault', body: { resource: args[0], fault: args[1] } };
    else if (kind === 'compact' && args.length === 0) request = { path: '/sim/compact', body: {} };
    else if (kind === 'delay' && args.length === 1) request = { path: '/sim/delay', body: { ms: Number(args[0]) } };
    else throw new SimError(`api-fault ${[kind, ...args].join(' ')}: ${usage}`);
    const answer = await this.kubeApiClient().request('POST', request.path, request.body);
    if (answer.status !== 200) throw new SimError(`api-fault ${[kind, ...args].join(' ')}: ${answer.body.message ?? `HTTP ${answer.status}`}`);
    return answer.body;
  }

  /**
   * Stops, starts or restarts sluice-control; start and restart then wait
   * until the agents are in sync. Throws a SimError for an unknown action,
   * or on start while it runs.
   */
  async control(action: string): Promise<void> {
    if (!['stop', 'start', 'restart'].includes(action)) throw new SimError(`control ${action}: expected stop, start or restart`);
    const c = this.state.control;
    if (action === 'stop' || action === 'restart') {
      await stopProcess(c.pid, 10000);
      c.pid = undefined;
      saveState(this.state);
    }
    if (action === 'start' || action === 'restart') {
      if (isAlive(c.pid)) throw new SimError(`the control plane is already running (pid ${c.pid})`);
      this.startControl();
      saveState(this.state);
      await this.waitSynced();
    }
  }

  /**
   * What `sluice-sim status` prints: the API stand-in, control plane, nodes,
   * agents (asked over their admin sockets), pods, the Services as translated,
   * and every network namespace.
   */
  async status(): Promise<object> {
    const { state } = this;
    const enrolledBy = new Map<string, Set<string>>();
    const agents = await Promise.all(
      state.nodes.map(async (n) => {
        const alive = isAlive(n.agentPid);
        let ready = false;
        let error = '';
        if (alive) {
          try {
            const s = (await getJson(n.adminSocket, '/status')).body as { ready: boolean; enrolled: { workload: string }[] };
            ready = s.ready;
            enrolledBy.set(n.name, new Set(s.enrolled.map((e) => e.workload)));
          } catch (err) {
            error = (err as Error).message;
          }
        }
        return { node: n.name, pid: n.agentPid ?? null, alive, ready, adminSocket: n.adminSocket, log: n.agentLog, ...(error ? { error } : {}) };
      }),
    );
    const translation = this.translation();
    let controlVersion = '';
    if (isAlive(state.control.pid)) {
      try {
        controlVersion = ((await getJson(state.control.adminSocket, '/status')).body as { version: string }).version;
      } catch {
        // not answering
      }
    }
    return {
      name: state.name,
      createdAt: state.createdAt,
      kubeApi: { server: `https://${state.kubeApi.listen} (in netns ${state.fabricNetns})`, kubeconfig: kubeApiFiles(state.kubeApi.dir).kubeconfig, pid: state.kubeApi.pid ?? null, alive: isAlive(state.kubeApi.pid), log: state.kubeApi.log },
      control: { address: state.control.address, pid: state.control.pid ?? null, alive: isAlive(state.control.pid), version: controlVersion, log: state.control.log },
      nodes: state.nodes.map((n) => ({ name: n.name, netns: n.netns, podCidr: n.podCidr, proxyAddress: n.gateway, fabricAddress: n.fabricAddress, cgroup: n.cgroup, bpffs: n.bpffs })),
      agents,
      pods: state.pods.map((p) => ({
        namespace: p.namespace,
        name: p.name,
        node: p.node,
        ip: p.ip,
        enrolled: enrolledBy.get(p.node)?.has(`${p.namespace}/${p.name}`) ?? false,
        pid: p.pid ?? null,
        running: isAlive(p.pid),
        netns: p.netns,
        log: p.log,
      })),
      services: translation.snapshot.services.map((s) => ({
        namespace: s.namespace,
        name: s.name,
        clusterIPs: s.clusterIPs,
        ports: s.ports.map((p) => `${p.port}->${p.targetPort}`),
        endpoints: s.endpoints.map((e) => e.address),
      })),
      netns: { fabric: state.fabricNetns, nodes: state.nodes.map((n) => n.netns), pods: state.pods.map((p) => p.netns) },
    };
  }

  // ---- internals ----

  private findPod(target: string): PodState {
    const [ns, name] = target.includes('/') ? target.split('/', 2) : ['default', target];
    const pod = this.state.pods.find((p) => p.namespace === ns && p.name === name);
    if (!pod) throw new SimError(`no pod ${ns}/${name} (pods: ${this.state.pods.map((p) => `${p.namespace}/${p.name}`).join(', ') || 'none'})`);
    return pod;
  }

  private findNode(nodeName: string): NodeState {
    const node = this.state.nodes.find((n) => n.name === nodeName);
    if (!node) throw new SimError(`no node ${nodeName} (nodes: ${this.state.nodes.map((n) => n.name).join(', ')})`);
    return node;
  }

  /** Checks what the sim itself needs beyond what translation checks. Throws on the first problem set. */
  private validate(objects: StoredObject[], nodeCount = this.state.nodes.length): void {
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const { object: o, source } of objects) {
      const key = objectKey(o);
      if (seen.has(key)) problems.push(`${source}: ${o.kind} ${o.metadata.name}: defined twice`);
      seen.add(key);
      if (o.kind === 'Pod') {
        const pod = o as Pod;
        const node = pod.spec?.nodeName;
        const m = /^node-(\d+)$/.exec(node ?? '');
        if (!m || Number(m[1]) < 1 || Number(m[1]) > nodeCount) {
          problems.push(`${source}: Pod ${pod.metadata.name}: spec.nodeName: must be one of node-1..node-${nodeCount} (got ${JSON.stringify(node)})`);
        }
        const c = pod.spec?.containers?.[0];
        if (!c || !(c.command?.length || c.args?.length)) {
          problems.push(`${source}: Pod ${pod.metadata.name}: spec.containers[0].command: required (the sim runs host commands, not images)`);
        }
      }
      if (o.kind === 'Service') {
        const spec = (o.spec ?? {}) as { clusterIP?: string };
        if (spec.clusterIP && spec.clusterIP !== 'None' && !inServiceCidr(spec.clusterIP)) {
          problems.push(`${source}: Service ${o.metadata.name}: spec.clusterIP: must lie in 10.96.0.0/12 (got ${JSON.stringify(spec.clusterIP)})`);
        }
      }
    }
    const t = translate(
      objects.map((o) => ({ ...o, object: o.object.kind === 'Pod' ? withStatus(o.object as Pod, '10.244.0.2') : o.object })),
      'validate',
    );
    problems.push(...t.errors.map(formatTranslationError));
    problems.push(...translatePolicies(objects).errors.map(formatTranslationError));
    if (problems.length) throw new RejectedManifestsError(`rejected, nothing was changed:\n  ${problems.join('\n  ')}`);
  }

  private async applyObjects(desired: StoredObject[]): Promise<void> {
    this.validate(desired);
    const { state } = this;
    const desiredPods = new Map<string, StoredObject>();
    for (const o of desired) if (o.object.kind === 'Pod') desiredPods.set(objectKey(o.object), o);

    // 1. Pods that go away (or change) leave the configuration first, so no new
    //    connection is sent to them, then they are stopped.
    const leaving = state.pods.filter((p) => {
      const d = desiredPods.get(p.key);
      return !d || specHash(d.object as Pod) !== p.specHash;
    });
    state.objects = desired;
    if (leaving.length) {
      state.pods = state.pods.filter((p) => !leaving.includes(p));
      await this.publishObjects();
      this.saveObjects();
      await this.waitSynced();
      for (const p of leaving) await this.removePod(p);
    }

    // 2. New pods get their network from the node's CNI chain, sluice-cni last,
    //    which answers only once the agent has enrolled the pod: their command
    //    starts after that, so no connection of theirs escapes capture.
    const arriving: PodState[] = [];
    for (const [key, o] of desiredPods) {
      if (state.pods.some((p) => p.key === key)) continue;
      arriving.push(this.createPod(key, o));
    }
    await this.publishObjects();
    this.saveObjects();
    const networked = await Promise.allSettled(arriving.map((p) => this.networkPod(p)));
    const failed = arriving.filter((_, i) => networked[i].status === 'rejected');
    if (failed.length) {
      for (const p of failed) await this.removePod(p);
      state.pods = state.pods.filter((p) => !failed.includes(p));
      state.objects = state.objects.filter((o) => !failed.some((p) => p.key === objectKey(o.object)));
      await this.publishObjects();
      this.saveObjects();
      const why = networked.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
      throw new SimError(`pods not started, their network could not be set up:\n  ${why.join('\n  ')}`);
    }
    this.saveObjects();
    await this.waitSynced();
    for (const p of arriving) this.startPod(p);
    this.saveObjects();
  }

  private createPod(key: string, stored: StoredObject): PodState {
    const { state } = this;
    const pod = stored.object as Pod;
    const namespace = pod.metadata.namespace || 'default';
    const node = this.findNode(pod.spec.nodeName!);
    const used = new Set(state.pods.filter((p) => p.node === node.name).map((p) => p.ip));
    let ip = '';
    for (let host = 2; host < 255 && !ip; host++) {
      const candidate = `10.244.${node.index}.${host}`;
      if (!used.has(candidate)) ip = candidate;
    }
    if (!ip) throw new SimError(`${node.name}: pod network ${node.podCidr} is full`);
    state.generation++;
    const p: PodState = {
      key,
      namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid || `${namespace}-${pod.metadata.name}-${state.generation}`,
      node: node.name,
      ip,
      netns: `${prefix(state.name)}${namespace}_${pod.metadata.name}`,
      cgroup: path.join(node.cgroup, 'pods', `${namespace}_${pod.metadata.name}`),
      hostVeth: '',
      log: path.join(state.dir, 'logs', `pod-${namespace}_${pod.metadata.name}.log`),
      specHash: specHash(pod),
    };
    state.pods.push(p);
    createPodNetns(p.netns);
    fs.mkdirSync(p.cgroup, { recursive: true });
    return p;
  }

  private startPod(p: PodState): void {
    const stored = this.state.objects.find((o) => objectKey(o.object) === p.key);
    if (!stored) return;
    const c = (stored.object as Pod).spec.containers![0] as Container;
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.podEnv(p) };
    for (const e of c.env ?? []) env[e.name] = e.value ?? '';
    p.pid = spawnDetached({
      cgroup: p.cgroup,
      netns: p.netns,
      argv,
      cwd: c.workingDir ? path.resolve(stored.dir, c.workingDir) : stored.dir,
      env,
      logFile: p.log,
    });
  }

  private async removePod(p: PodState): Promise<void> {
    await stopProcess(p.pid, 2000);
    killCgroup(p.cgroup);
    await removeCgroup(p.cgroup);
    await removePodNetwork(this.cniRuntime(this.findNode(p.node)), this.sandbox(p)).catch((err: Error) => {
      process.stderr.write(`sluice-sim: CNI DEL of ${p.namespace}/${p.name}: ${err.message}\n`);
    });
    deleteNetns(p.netns);
  }

  /** Where one node's CNI configuration lives; the plugin binaries are shared by the sim's nodes. */
  private cniPaths(n: NodeState): { binDir: string; confDir: string; ipamDir: string; socket: string } {
    const nodeDir = path.join(this.state.dir, 'nodes', n.name);
    return {
      binDir: path.join(this.state.dir, 'cni', 'bin'),
      confDir: path.join(nodeDir, 'cni', 'net.d'),
      ipamDir: path.join(nodeDir, 'cni', 'ipam'),
      socket: path.join(nodeDir, 'cni.sock'),
    };
  }

  private cniRuntime(n: NodeState): CniRuntime {
    const { binDir, confDir } = this.cniPaths(n);
    return { nodeNetns: `/run/netns/${n.netns}`, confDir, binDirs: [binDir, DEBIAN_CNI_PLUGINS], pluginTimeoutMs: 30000 };
  }

  private sandbox(p: PodState): PodSandbox {
    const containerId = createHash('sha256').update(`${p.uid}/${p.netns}`).digest('hex');
    return { containerId, netns: `/run/netns/${p.netns}`, ifName: 'eth0', namespace: p.namespace, name: p.name, uid: p.uid, ip: p.ip };
  }

  /**
   * The node's network add-on and sluice's DaemonSet, done once per node at
   * `up`: the primary conflist (bridge + host-local) in the node's CNI config
   * directory, then `sluice-cni install`, the command the DaemonSet's
   * cni-install container runs, pointed at this node's agent.
   */
  private installCni(n: NodeState): void {
    for (const plugin of ['bridge', 'host-local', 'loopback']) {
      if (!fs.existsSync(path.join(DEBIAN_CNI_PLUGINS, plugin))) {
        throw new SimError(`${path.join(DEBIAN_CNI_PLUGINS, plugin)} is missing: the sim networks pods with Debian's CNI plugins (apt-get install containernetworking-plugins)`);
      }
    }
    const c = this.cniPaths(n);
    fs.mkdirSync(c.confDir, { recursive: true });
    writeFileAtomic(path.join(c.confDir, '10-sim-pods.conflist'), `${JSON.stringify(primaryCniConfig(n, c.ipamDir), null, 2)}\n`);
    const r = spawnSync(process.execPath, [
      CNI_MAIN, 'install',
      '--cni-bin-dir', c.binDir,
      '--cni-conf-dir', c.confDir,
      '--agent-socket', c.socket,
      '--pod-netns-dir', n.podNetnsDir,
      '--mesh-record', path.join(n.stateDir, 'meshed-namespaces.json'),
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new SimError(`sluice-cni install on ${n.name} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }

  /**
   * Runs the node's CNI chain for a new pod, as the kubelet's runtime does,
   * and like the kubelet retries a failed sandbox (cleaned up with DEL first)
   * until POD_NETWORK_TIMEOUT_MS: sluice-cni refuses a meshed pod while the
   * node's agent cannot enroll it (code 11, try again later).
   */
  private async networkPod(p: PodState): Promise<void> {
    const node = this.findNode(p.node);
    const rt = this.cniRuntime(node);
    const sandbox = this.sandbox(p);
    const deadline = Date.now() + POD_NETWORK_TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await addPodNetwork(rt, sandbox);
        const got = addressesOf(result);
        // The manifests already carry the address the sim asked host-local for.
        if (!got.includes(p.ip)) throw new SimError(`the CNI chain gave ${p.namespace}/${p.name} ${got.join(', ') || 'no address'}, not the ${p.ip} asked for`);
        p.hostVeth = hostInterfaceOf(result) ?? '';
        return;
      } catch (err) {
        await removePodNetwork(rt, sandbox).catch(() => undefined);
        const retry = err instanceof CniPluginError && err.code === CNI_TRY_AGAIN_LATER;
        if (!retry || Date.now() + POD_NETWORK_RETRY_MS > deadline) {
          throw new SimError(`${p.namespace}/${p.name} on ${node.name}, attempt ${attempt}: ${(err as Error).message}`);
        }
        await sleep(POD_NETWORK_RETRY_MS);
      }
    }
  }

  private podEnv(p: PodState): Record<string, string> {
    return { POD_NAME: p.name, POD_NAMESPACE: p.namespace, POD_IP: p.ip, NODE_NAME: p.node };
  }

  private translation(): Translation {
    const { state } = this;
    const objects: SourcedObject[] = [];
    for (const o of state.objects) {
      if (o.object.kind !== 'Pod') {
        objects.push(o);
        continue;
      }
      const pod = state.pods.find((p) => p.key === objectKey(o.object));
      if (!pod) continue; // leaving or not yet created
      const withUid = { ...o.object, metadata: { ...o.object.metadata, uid: pod.uid } } as Pod;
      objects.push({ ...o, object: withStatus(withUid, pod.ip, this.findNode(pod.node).gateway) });
    }
    return translate(objects, `sim-${state.generation}-${Date.now()}`);
  }

  /**
   * Writes the cluster's objects into its Kubernetes API, pods with their uid
   * and status as the kubelet would have reported them, and notes the API's
   * resourceVersion that the control plane must serve through (waitSynced).
   * The API process is started again first if it is not running (it keeps
   * objects in memory only).
   */
  private async publishObjects(): Promise<void> {
    const { state } = this;
    if (!isAlive(state.kubeApi.pid)) await this.startKubeApi();
    const items: KubeObject[] = [];
    for (const o of state.objects) {
      if (o.object.kind !== 'Pod') {
        items.push(o.object);
        continue;
      }
      const pod = state.pods.find((p) => p.key === objectKey(o.object));
      if (!pod) continue; // leaving, or not created yet
      // hostIP: the node's pod gateway, where its agent listens for tunnels.
      items.push(withStatus({ ...o.object, metadata: { ...o.object.metadata, uid: pod.uid } } as Pod, pod.ip, this.findNode(pod.node).gateway));
    }
    const api = this.kubeApiClient();
    try {
      await api.sync(items);
      this.expectedRevision = await api.revision();
    } catch (err) {
      throw new SimError(`the cluster's Kubernetes API refused a write: ${(err as Error).message}\n${tail(state.kubeApi.log, 10)}`);
    }
    const t = this.translation();
    this.expectedEnrolled = new Map(
      state.nodes.map((n) => [n.name, t.snapshot.workloads.filter((w) => w.node === n.name && w.captured).map((w) => `${w.namespace}/${w.name}`)]),
    );
  }

  /** The API's resourceVersion after the last publishObjects: what the control plane must serve through. */
  private expectedRevision?: number;
  private expectedEnrolled = new Map<string, string[]>();

  private kubeApiClient(): SimKubeApi {
    const files = kubeApiFiles(this.state.kubeApi.dir);
    return new SimKubeApi(files.socket, fs.readFileSync(files.token, 'utf8'));
  }

  /**
   * Starts the cluster's Kubernetes API stand-in in the fabric's network
   * namespace and waits until it serves (its kubeconfig is written last).
   */
  private async startKubeApi(): Promise<void> {
    const a = this.state.kubeApi;
    const files = kubeApiFiles(a.dir);
    fs.rmSync(files.kubeconfig, { force: true });
    a.pid = spawnDetached({
      cgroup: path.join(this.state.cgroup, 'kube-api'),
      netns: this.state.fabricNetns,
      argv: [process.execPath, KUBE_API_MAIN, '--dir', a.dir, '--listen', a.listen],
      logFile: a.log,
    });
    // Only this pid: agent and control commands may have written theirs meanwhile.
    const fresh = loadState(this.state.name);
    if (fresh) {
      fresh.kubeApi.pid = a.pid;
      saveState(fresh);
    } else saveState(this.state);
    for (let i = 0; i < 200 && !fs.existsSync(files.kubeconfig); i++) {
      if (!isAlive(a.pid)) throw new SimError(`the Kubernetes API stand-in exited:\n${tail(a.log)}`);
      await sleep(50);
    }
    if (!fs.existsSync(files.kubeconfig)) throw new SimError(`the Kubernetes API stand-in did not start within 10 s:\n${tail(a.log)}`);
  }

  private startControl(): void {
    const c = this.state.control;
    c.pid = spawnDetached({
      cgroup: path.join(this.state.cgroup, 'control'),
      netns: this.state.fabricNetns,
      argv: [
        process.execPath, CONTROL_MAIN,
        '--kubeconfig', kubeApiFiles(this.state.kubeApi.dir).kubeconfig,
        '--listen', c.address,
        '--admin-socket', c.adminSocket,
        '--ca-dir', c.caDir,
        '--node-secret-file', c.nodeSecretFile,
        '--log-file', c.log,
      ],
      logFile: `${c.log}.stderr`,
    });
  }

  /** The mesh root the control plane creates on first start: agents verify the control plane with it. */
  private async waitForRoot(): Promise<void> {
    const c = this.state.control;
    const root = path.join(c.caDir, 'root-cert.pem');
    for (let i = 0; i < 200 && !fs.existsSync(root); i++) {
      if (!isAlive(c.pid)) throw new SimError(`the control plane exited:\n${tail(`${c.log}.stderr`)}\n${tail(c.log, 10)}`);
      await sleep(50);
    }
    if (!fs.existsSync(root)) throw new SimError(`the control plane created no CA root in ${c.caDir} within 10 s`);
  }

  private startAgent(n: NodeState): void {
    const flags = [
      '--node-name', n.name,
      '--control-plane', this.state.control.address,
      '--state-dir', n.stateDir,
      '--credentials-dir', path.join(path.dirname(n.stateDir), 'credentials'),
      '--node-token-file', n.nodeTokenFile,
      '--control-plane-ca', path.join(this.state.control.caDir, 'root-cert.pem'),
      '--pod-netns-dir', n.podNetnsDir,
      '--bpffs', n.bpffs,
      '--cgroup', n.cgroup,
      '--proxy-address', n.gateway,
      '--admin-socket', n.adminSocket,
      '--cni-socket', this.cniPaths(n).socket,
      '--listener-keeper-socket', n.keeperSocket,
      '--log-file', n.agentLog,
    ];
    const image = this.state.image;
    n.agentPid = spawnDetached({
      cgroup: path.join(n.cgroup, 'agent'),
      netns: n.netns,
      argv: image
        ? containerArgv(image.rootfs, image.capabilities, this.agentContainerMounts(n), ['sluice-agent', ...flags])
        : [process.execPath, AGENT_MAIN, ...flags],
      env: image ? Object.fromEntries(image.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) : undefined,
      logFile: `${n.agentLog}.stderr`,
    });
  }

  /**
   * The listener keeper of a node (the DaemonSet's listener-keeper
   * container, without capabilities): it holds the agent's listening
   * sockets while `agent stop|restart` or a crash leaves the node without an
   * agent. `agent` commands leave it running, as a container restart leaves
   * the pod's other containers.
   */
  private startKeeper(n: NodeState): void {
    const argv = ['keep-listeners', '--node-name', n.name, '--handover-socket', path.join(n.stateDir, 'handover.sock'), '--keeper-socket', n.keeperSocket];
    const image = this.state.image;
    n.keeperPid = spawnDetached({
      cgroup: path.join(n.cgroup, 'agent'),
      netns: n.netns,
      argv: image ? containerArgv(image.rootfs, [], this.agentContainerMounts(n), ['sluice-agent', ...argv]) : [process.execPath, AGENT_MAIN, ...argv],
      env: image ? Object.fromEntries(image.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) : undefined,
      logFile: n.keeperLog,
    });
  }

  /** The host paths the agent container sees: the node's own directory, its log, the mesh root certificate. */
  private agentContainerMounts(n: NodeState) {
    return agentMounts(path.join(this.state.dir, 'nodes', n.name), [
      { path: path.dirname(n.agentLog), readOnly: false },
      { path: path.join(this.state.control.caDir, 'root-cert.pem'), readOnly: true },
    ]);
  }

  /**
   * Waits until the control plane serves what was last written and every
   * running agent has it, with every captured pod of its node enrolled. While
   * the control plane is stopped, agents are only checked to serve something.
   */
  private async waitSynced(): Promise<void> {
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    if (this.expectedRevision === undefined) await this.publishObjects();
    const expected = this.expectedRevision!;
    const c = this.state.control;
    let version: string | undefined;
    if (c.pid) {
      let last = 'no answer yet';
      for (;;) {
        if (!isAlive(c.pid)) throw new SimError(`the control plane exited:\n${tail(`${c.log}.stderr`)}\n${tail(c.log, 10)}`);
        try {
          const s = (await getJson(c.adminSocket, '/status', 2000)).body as { version: string; kubernetes: { synced: boolean; resources: { resource: string; servedResourceVersion: string }[] } | null };
          // The stand-in's resourceVersions are numbers (sluice-control itself never compares them).
          const behind = (s.kubernetes?.resources ?? []).filter((r) => !(Number(r.servedResourceVersion) >= expected));
          if (s.kubernetes?.synced && behind.length === 0) {
            version = s.version;
            break;
          }
          last = s.kubernetes?.synced ? `serving ${behind.map((r) => `${r.resource} through ${r.servedResourceVersion || '(nothing)'}`).join(', ')}; the API is at ${expected}` : 'not synced with the API yet';
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw new SimError(`the control plane did not pick up the cluster's objects within ${SYNC_TIMEOUT_MS} ms: ${last}\n${tail(c.log, 10)}`);
        await sleep(50);
      }
    }
    for (const n of this.state.nodes) {
      if (!n.agentPid) continue;
      const want = c.pid ? this.expectedEnrolled.get(n.name) ?? [] : [];
      let last = 'no answer yet';
      for (;;) {
        if (!isAlive(n.agentPid)) {
          throw new SimError(`agent on ${n.name} exited:\n${tail(`${n.agentLog}.stderr`)}\n${tail(n.agentLog, 10)}`);
        }
        try {
          const { body } = await getJson(n.adminSocket, '/status', 2000);
          const s = body as { ready: boolean; pending: string[]; config: { version: string }; enrolled: { workload: string }[] };
          const enrolled = new Set(s.enrolled.map((e) => e.workload));
          const missing = want.filter((w) => !enrolled.has(w));
          if (s.ready && (version === undefined || s.config.version === version) && missing.length === 0) break;
          last = !s.ready ? `waiting for ${s.pending.join(', ')}` : missing.length ? `not yet enrolled: ${missing.join(', ')}` : `serving version ${s.config.version}, control plane has ${version}`;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw new SimError(`agent on ${n.name} not in sync after ${SYNC_TIMEOUT_MS} ms: ${last}\n${tail(n.agentLog, 10)}`);
        await sleep(50);
      }
    }
  }
}

function toStored(o: SourcedObject): StoredObject {
  return { object: o.object, source: o.source, dir: o.dir ?? process.cwd() };
}

/** A pod's status as the kubelet reports a started, ready pod. */
function withStatus(pod: Pod, ip: string, hostIP?: string): KubeObject {
  return { ...pod, status: { podIP: ip, podIPs: [{ ip }], ...(hostIP ? { hostIP } : {}), phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
}

/** Only the spec restarts a pod; a label change (say, opting out of the mesh) applies live. */
function specHash(pod: Pod): string {
  return JSON.stringify(pod.spec);
}

/**
 * Unpacks the image the agents run from and reads the agent container's
 * capabilities from the DaemonSet manifest (deploy/base/sluice-agent.yaml
 * by default). Throws a SimError naming the archive or the manifest field
 * that is wrong.
 */
function agentImage(archive: string, dir: string, manifest: string): AgentImageState {
  try {
    const spec = agentContainerSpec(manifest);
    if (spec.privileged) throw new Error(`${manifest}: the agent container is privileged; the sim reproduces capability sets only`);
    const image = unpackImage(archive, dir);
    return { archive, ref: image.ref, rootfs: image.rootfs, env: image.config.env, capabilities: spec.capabilities, manifest };
  } catch (err) {
    throw new SimError(`--image ${archive}: ${(err as Error).message}`);
  }
}
