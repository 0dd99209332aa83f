// The only importer of the compiled addon. Everything else goes through the
// typed surface below (kernel/ is its only user).
import * as path from 'node:path';

export interface MapInfo {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface LoadedBpfObject {
  readonly programs: string[];
  readonly maps: MapInfo[];
  attachCgroup(program: string, cgroupPath: string, linkPin: string): Promise<{ reused: boolean }>;
  /**
   * tc program on an interface of this process's netns (egress: towards
   * what is behind it), attached on a worker thread. Rejects with a
   * NativeError naming the program and the ifindex.
   */
  attachTc(program: string, ifindex: number, egress?: boolean): Promise<void>;
  /**
   * Inside the netns at netnsPath: a TCP listener on 0.0.0.0:port
   * (backlog 4096), and `program` attached at tc ingress of
   * `iface`. Resolves with the listener's descriptor (the caller owns it) and
   * the interface's index in that netns; rejects with a NativeError naming
   * the netns, and leaves nothing open, on failure.
   */
  captureInbound(program: string, netnsPath: string, iface: string, port: number): Promise<{ fd: number; ifindex: number }>;
  close(): void;
}

export interface StructLayout {
  size: number;
  members: { name: string; offset: number; size: number }[];
}

/** Error thrown by the addon: stable code (errno name), errno, operation and target. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  op: string;
  target: string;
  /** libbpf's own words, including the verifier log on a load failure. */
  details?: string;
}

interface Addon {
  loadObject(objectPath: string, pinRoot: string): Promise<LoadedBpfObject>;
  detachPinnedLink(linkPin: string): boolean;
  /** Removes sluice's tc filter (handle 0x5e, priority 1) from an interface of this netns; false if there was none. */
  detachTc(ifindex: number, egress: boolean): boolean;
  /** The descriptor of a pinned map, program or link (BPF_OBJ_GET); close it with closeFd. */
  openPinned(pin: string): number;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapEntries(fd: number, keySize: number, valueSize: number): { keys: Buffer; values: Buffer; count: number };
  /** Counts a map's keys on a worker thread (values are not read). */
  mapCount(fd: number, keySize: number): Promise<number>;
  possibleCpus(): number;
  /** Index of a network interface in this process's netns (if_nametoindex). */
  ifIndex(name: string): number;
  netnsCookie(netnsPath: string): Promise<bigint>;
  netnsEstablishedTcp(netnsPath: string): Promise<number>;
  originalDstByFd(tupleMapFd: number, socketFd: number, remove: boolean): Buffer | null;
  btfStructLayout(objectPath: string, structName: string): StructLayout;
  relayStart(threads: number, onDone: (id: number, bytesAToB: number, bytesBToA: number, error: string) => void): void;
  relayAdd(id: number, fdA: number, fdB: number, initialBToA?: Buffer): void;
  relayStats(): [id: number, bytesAToB: number, bytesBToA: number][];
  relayStop(): void;
  /** Ends a relayed pair with a reset on both sockets; its done callback reports ECONNABORTED. */
  relayReset(id: number): void;
  /** SO_KEEPALIVE with idle/interval (seconds), probe count, and TCP_USER_TIMEOUT (ms). */
  /** The errno pending on a socket (SO_ERROR, cleared by reading it); 0 when none. */
  socketError(fd: number): number;
  /** SO_LINGER {1,0} (on: a close or a crash resets the peer) or {0,0} (off: a normal close). */
  resetOnClose(fd: number, on: boolean): void;
  tcpKeepalive(fd: number, idleSeconds: number, intervalSeconds: number, probes: number, userTimeoutMs: number): void;
  /** Writes payload on a connected unix socket with the descriptors attached (SCM_RIGHTS), within timeoutMs. */
  sendFds(socketFd: number, payload: Buffer, fds: number[], timeoutMs: number): void;
  /** Connects to a unix socket, writes request, reads one reply line (the connection stays open in `socket`): null when nothing listens there. */
  receiveFds(path: string, request: Buffer, timeoutMs: number): { payload: Buffer; fds: number[]; socket: number } | null;
  closeFd(fd: number): void;
  schemaVersion: number;
}

export const projectRoot = path.resolve(__dirname, '..', '..', '..');
export const addonPath = path.join(projectRoot, 'build', 'native', 'Release', 'sluice.node');
export const bpfObjectPath = path.join(projectRoot, 'build', 'bpf', 'sluice.bpf.o');

let cached: Addon | undefined;

/**
 * The compiled addon, loaded once. Throws with the path and the build
 * command when it is missing or cannot be loaded.
 */
export function addon(): Addon {
  if (!cached) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(addonPath) as Addon;
    } catch (err) {
      throw new Error(`cannot load the native addon ${addonPath} (run "npm run build"): ${(err as Error).message}`);
    }
  }
  return cached;
}

/** Whether err came from the addon (it carries errno, code, op and target). */
export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as NativeError).errno === 'number';
}
