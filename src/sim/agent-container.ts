// A node's agent run the way the kubelet runs the DaemonSet's `agent`
// container (deploy/base/sluice-agent.yaml): from the image's root filesystem,
// with exactly the Linux capabilities the manifest's securityContext gives
// it (runc gives a root container's process that list as its bounding,
// permitted and effective sets, and no inheritable or ambient ones), and
// only the host paths its volumes mount. What differs from a node: no pid,
// UTS or IPC namespace of its own, and the sim's per-node directories stand
// for /run/sluice and /var/lib/sluice (the flags name them).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** The DaemonSet's agent container, the parts the sim reproduces. */
export interface AgentContainerSpec {
  /** Capability names as the manifest writes them (Kubernetes: without CAP_). */
  capabilities: string[];
  privileged: boolean;
}

/**
 * Reads the `agent` container of DaemonSet `sluice-agent` in a manifest
 * file. Throws an Error naming the file and the field when it is not there
 * or not what the sim can reproduce (a privileged container, capabilities
 * not dropped to ALL first).
 */
export function agentContainerSpec(manifestFile: string): AgentContainerSpec {
  const docs = parseAllDocuments(fs.readFileSync(manifestFile, 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const ds = docs.find((d) => d?.kind === 'DaemonSet' && d?.metadata?.name === 'sluice-agent');
  if (!ds) throw new Error(`${manifestFile}: no DaemonSet sluice-agent`);
  const containers = (ds.spec?.template?.spec?.containers ?? []) as Record<string, any>[];
  const agent = containers.find((c) => c.name === 'agent');
  if (!agent) throw new Error(`${manifestFile}: DaemonSet sluice-agent: spec.template.spec.containers: no container "agent"`);
  const sc = agent.securityContext ?? {};
  const where = `${manifestFile}: DaemonSet sluice-agent: container agent: securityContext`;
  const drop = (sc.capabilities?.drop ?? []) as string[];
  if (!drop.includes('ALL')) throw new Error(`${where}.capabilities.drop: must include ALL (got ${JSON.stringify(drop)})`);
  const add = (sc.capabilities?.add ?? []) as unknown[];
  for (const c of add) if (typeof c !== 'string' || !/^[A-Z_]+$/.test(c)) throw new Error(`${where}.capabilities.add: ${JSON.stringify(c)} is not a capability name`);
  return { capabilities: add as string[], privileged: sc.privileged === true };
}

/** A host path made visible inside the container at the same path. */
export interface ContainerMount {
  path: string;
  readOnly: boolean;
}

/**
 * The mounts of the agent container, in mount order: what a runtime gives
 * every container (/proc, /dev, /sys read-only), then the DaemonSet's
 * volumes (bpffs; the cgroup tree and the node's network namespaces
 * read-only), then the sim's stand-ins for the agent's hostPath directories.
 */
export function agentMounts(nodeDir: string, extra: ContainerMount[]): ContainerMount[] {
  return [
    { path: '/proc', readOnly: false },
    { path: '/dev', readOnly: false },
    { path: '/sys', readOnly: true },
    { path: '/sys/fs/bpf', readOnly: false },
    { path: '/sys/fs/cgroup', readOnly: true },
    { path: '/run/netns', readOnly: true },
    { path: nodeDir, readOnly: false },
    ...extra,
  ];
}

// Run by /bin/sh in a new mount namespace whose mounts are slaves of the
// host's (HostToContainer: pod netns mounts made later still appear). Binds
// each mount into the root filesystem at the same path, then chroots and
// drops to the capability set with the image's own setpriv.
const LAUNCH = `set -e
root=$1; caps=$2; shift 2
while [ "$1" != "--" ]; do
  src=$1; mode=$2; shift 2
  if [ -d "$src" ]; then mkdir -p "$root$src"; else mkdir -p "$(dirname "$root$src")"; [ -e "$root$src" ] || : > "$root$src"; fi
  mount --rbind "$src" "$root$src"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$src"; fi
done
shift
exec chroot "$root" setpriv --bounding-set "$caps" --inh-caps -all --ambient-caps -all -- "$@"`;

/**
 * The argv that runs `argv` as the agent container: unshare's mount
 * namespace, the binds, chroot into `rootfs`, and setpriv to `capabilities`
 * (Kubernetes names, e.g. NET_ADMIN). To be run as root, already inside the
 * node's network namespace and cgroup.
 */
export function containerArgv(rootfs: string, capabilities: string[], mounts: ContainerMount[], argv: string[]): string[] {
  const caps = ['-all', ...capabilities.map((c) => `+${c.toLowerCase()}`)].join(',');
  const binds = mounts.flatMap((m) => [path.resolve(m.path), m.readOnly ? 'ro' : 'rw']);
  return ['unshare', '--mount', '--propagation', 'slave', '--', '/bin/sh', '-c', LAUNCH, 'sh', rootfs, caps, ...binds, '--', ...argv];
}

/** Linux capability numbers (include/uapi/linux/capability.h) of the names a manifest may use. */
export const CAPABILITY_NUMBERS: Readonly<Record<string, number>> = Object.freeze({
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8,
  LINUX_IMMUTABLE: 9, NET_BIND_SERVICE: 10, NET_BROADCAST: 11, NET_ADMIN: 12, NET_RAW: 13, IPC_LOCK: 14, IPC_OWNER: 15,
  SYS_MODULE: 16, SYS_RAWIO: 17, SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_PACCT: 20, SYS_ADMIN: 21, SYS_BOOT: 22, SYS_NICE: 23,
  SYS_RESOURCE: 24, SYS_TIME: 25, SYS_TTY_CONFIG: 26, MKNOD: 27, LEASE: 28, AUDIT_WRITE: 29, AUDIT_CONTROL: 30,
  SETFCAP: 31, MAC_OVERRIDE: 32, MAC_ADMIN: 33, SYSLOG: 34, WAKE_ALARM: 35, BLOCK_SUSPEND: 36, AUDIT_READ: 37,
  PERFMON: 38, BPF: 39, CHECKPOINT_RESTORE: 40,
});

/** The capability mask (as /proc/PID/status prints CapEff, 16 hex digits) of a list of names. Throws on an unknown name. */
export function capabilityMask(names: string[]): string {
  let mask = 0n;
  for (const n of names) {
    const bit = CAPABILITY_NUMBERS[n];
    if (bit === undefined) throw new Error(`unknown capability ${JSON.stringify(n)}`);
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16).padStart(16, '0');
}
