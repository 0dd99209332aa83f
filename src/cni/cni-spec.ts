// The parts of the CNI specification (containernetworking/cni SPEC.md,
// versions 1.0.0 and 1.1.0) that a chained plugin needs: the environment it
// is called with, the network configuration on stdin, the error object and
// codes, and the VERSION answer. Pure: no filesystem, no network.
//
// This folder is loaded by the plugin for every pod on the node: it imports
// node built-ins only, never pino, ajv or grpc.

/** Versions of the spec this plugin accepts in a network configuration (SPEC.md "Version"). */
export const SUPPORTED_VERSIONS = Object.freeze(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
export const LATEST_VERSION = '1.1.0';

/** Error codes of SPEC.md "Error" (1-99 reserved by the spec, 100+ for plugins). */
export const CNI_ERROR = Object.freeze({
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** 1.1.0 STATUS: the plugin cannot service ADD requests. */
  notAvailable: 50,
  /** 1.1.0 STATUS: not available, and existing containers may have limited connectivity. */
  notAvailableLimited: 51,
  /** sluice: the agent answered, and refused the pod's report. */
  agentRefused: 100,
  /** sluice: CHECK found the pod's record missing or different from what ADD left. */
  recordMismatch: 101,
});

/** A failure to report as the spec's error object; `details` is the longer explanation. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
  }

  /** The error object of SPEC.md "Error": {cniVersion, code, msg, details}. */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** The CNI_* variables (SPEC.md "Parameters"). */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** Path of the container's network namespace; '' when the runtime gave none (host network, or DEL of a gone netns). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs. */
  args: Record<string, string>;
  path: string;
}

// SPEC.md: the container ID is alphanumeric plus underscore, period and hyphen, not empty.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Reads the CNI_* variables of one invocation. Throws CniError code 4 (invalid
 * necessary environment variables), naming the variables at fault, when
 * CNI_COMMAND is missing or unknown, or, for ADD/DEL/CHECK, when CNI_CONTAINERID
 * or CNI_IFNAME is missing or malformed, or CNI_ARGS is not `K=V;K=V`.
 * CNI_NETNS may be empty (host-network pods, DEL after the netns is gone).
 */
export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!COMMANDS.includes(command)) {
    throw new CniError(CNI_ERROR.invalidEnvironment, `CNI_COMMAND: must be one of ${COMMANDS.join(', ')} (got ${JSON.stringify(command)})`);
  }
  const result: CniEnv = {
    command: command as CniCommand,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    path: env.CNI_PATH ?? '',
  };
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    const bad: string[] = [];
    if (!CONTAINER_ID.test(result.containerId)) bad.push(`CNI_CONTAINERID (got ${JSON.stringify(result.containerId)})`);
    if (!validIfname(result.ifname)) bad.push(`CNI_IFNAME (got ${JSON.stringify(result.ifname)})`);
    if (result.netns && !result.netns.startsWith('/')) bad.push(`CNI_NETNS: must be an absolute path (got ${JSON.stringify(result.netns)})`);
    if (bad.length) throw new CniError(CNI_ERROR.invalidEnvironment, `invalid ${bad.join(', ')}`);
  }
  return result;
}

/** SPEC.md: an interface name is at most 15 characters, not `.` or `..`, without `/`, `:` or whitespace. */
export function validIfname(name: string): boolean {
  return name.length > 0 && name.length <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

/**
 * CNI_ARGS: `K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;IgnoreUnknown=1`.
 * Throws CniError code 4 for a pair without `=` or with an empty key.
 */
export function parseCniArgs(text: string): Record<string, string> {
  const args: Record<string, string> = {};
  if (!text) return args;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CNI_ERROR.invalidEnvironment, `CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return args;
}

/** The Kubernetes pod a container belongs to, from CNI_ARGS (set by containerd and CRI-O). */
export interface PodRef {
  namespace: string;
  name: string;
  /** '' when the runtime did not pass K8S_POD_UID. */
  uid: string;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
// Used as a file name: no path separators, no dots.
const POD_UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;

/**
 * The pod named by K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID, or
 * undefined when the container is not a Kubernetes pod (no K8S_POD_NAMESPACE).
 * Throws CniError code 4 when a value is not a valid Kubernetes name or uid.
 */
export function podFromArgs(args: Record<string, string>): PodRef | undefined {
  const namespace = args.K8S_POD_NAMESPACE;
  if (namespace === undefined) return undefined;
  const name = args.K8S_POD_NAME ?? '';
  const uid = args.K8S_POD_UID ?? '';
  const bad: string[] = [];
  if (!DNS1123_LABEL.test(namespace) || namespace.length > 63) bad.push(`K8S_POD_NAMESPACE (got ${JSON.stringify(namespace)})`);
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) bad.push(`K8S_POD_NAME (got ${JSON.stringify(name)})`);
  if (uid !== '' && !POD_UID.test(uid)) bad.push(`K8S_POD_UID (got ${JSON.stringify(uid)})`);
  if (bad.length) throw new CniError(CNI_ERROR.invalidEnvironment, `CNI_ARGS: invalid ${bad.join(', ')}`);
  return { namespace, name, uid };
}

/** The fields of a network configuration this plugin reads (SPEC.md "Network configuration"). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** The previous plugin's result, for chained plugins; undefined if absent. */
  prevResult?: Record<string, unknown>;
  /** Everything else, the plugin's own keys included. */
  raw: Record<string, unknown>;
}

/**
 * Parses stdin. Throws CniError code 6 (cannot decode) for text that is not a
 * JSON object, code 7 (invalid network config) for a missing or mistyped
 * `cniVersion`, `name`, `type` or `prevResult`, and code 1 for a cniVersion
 * this plugin does not support.
 */
export function parseNetConf(text: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI_ERROR.decodeFailure, 'network configuration on stdin is not JSON', (err as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(CNI_ERROR.decodeFailure, 'network configuration on stdin must be a JSON object');
  }
  const o = raw as Record<string, unknown>;
  const bad: string[] = [];
  for (const key of ['cniVersion', 'name', 'type']) {
    if (typeof o[key] !== 'string' || o[key] === '') bad.push(`${key} must be a non-empty string (got ${JSON.stringify(o[key])})`);
  }
  if (o.prevResult !== undefined && (typeof o.prevResult !== 'object' || o.prevResult === null || Array.isArray(o.prevResult))) {
    bad.push('prevResult must be an object');
  }
  if (bad.length) throw new CniError(CNI_ERROR.invalidConfig, `invalid network configuration: ${bad.join('; ')}`);
  const cniVersion = o.cniVersion as string;
  if (!SUPPORTED_VERSIONS.includes(cniVersion)) {
    throw new CniError(CNI_ERROR.incompatibleVersion, `cniVersion ${cniVersion} is not supported`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return { cniVersion, name: o.name as string, type: o.type as string, prevResult: o.prevResult as Record<string, unknown> | undefined, raw: o };
}

/** Compares dotted versions: negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * The VERSION answer (SPEC.md "VERSION"): the version the runtime asked in,
 * when it is a valid one, else the latest, and every supported version.
 */
export function versionAnswer(stdin: string): { cniVersion: string; supportedVersions: string[] } {
  let asked = LATEST_VERSION;
  try {
    const o = JSON.parse(stdin) as { cniVersion?: unknown };
    if (typeof o?.cniVersion === 'string' && /^\d+\.\d+\.\d+$/.test(o.cniVersion)) asked = o.cniVersion;
  } catch {
    // The runtime asks with {"cniVersion": ...}; anything else gets the latest.
  }
  return { cniVersion: asked, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The pod's addresses in a result (`ips[].address`, CIDR form), without the prefix length. */
export function resultIps(result: Record<string, unknown> | undefined): string[] {
  const ips = result?.ips;
  if (!Array.isArray(ips)) return [];
  return ips.flatMap((ip) => {
    const address = (ip as { address?: unknown })?.address;
    return typeof address === 'string' && address.includes('/') ? [address.slice(0, address.indexOf('/'))] : [];
  });
}

/**
 * The pod's interface on the node side: in a result, the interface without a
 * `sandbox` listed just before the container's own interface (`ifname` with a
 * sandbox). That is the veth peer for bridge and ptp, and the host-side veth
 * for Calico and Cilium; undefined when the result does not say.
 */
export function hostInterfaceOf(result: Record<string, unknown> | undefined, ifname: string): string | undefined {
  const list = result?.interfaces;
  if (!Array.isArray(list)) return undefined;
  const at = list.findIndex((i) => (i as { name?: unknown })?.name === ifname && typeof (i as { sandbox?: unknown }).sandbox === 'string' && (i as { sandbox: string }).sandbox !== '');
  if (at <= 0) return undefined;
  const before = list[at - 1] as { name?: unknown; sandbox?: unknown };
  return typeof before?.name === 'string' && !before.sandbox ? before.name : undefined;
}
