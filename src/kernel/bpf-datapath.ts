// Owns the kernel side of one agent: loads the programs, pins maps and links
// under <bpffs>/v<schema>/, attaches to the node's cgroup subtree and keeps
// the maps in line with the desired state. Closing it leaves links and maps
// pinned, so capture goes on while the agent is away (restart, upgrade).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addon, bpfObjectPath, type LoadedBpfObject, type MapInfo } from '../native/bpf-addon';
import { BpfMap } from './bpf-map';
import type { DesiredState, VipEntry } from '../datapath/desired-state';
import {
  configCodec,
  counterNames,
  enrollmentCodec,
  inboundCodec,
  ipv4KeyCodec,
  netnsCookieCodec,
  originalDestinationCodec,
  strictCodec,
  tupleKeyCodec,
  u32KeyCodec,
  vipKeyCodec,
  vipValueCodec,
  type CounterName,
  type Enrollment,
  type InboundEntry,
  type OriginalDestinationRecord,
  type StrictEntry,
  type TupleKey,
  type VipKey,
  type VipValue,
} from '../datapath/map-codecs';
import { reconcileMap, type KeyFailure, type ReconcileResult } from '../datapath/reconciler';

export { isNativeError } from '../native/bpf-addon';

export const PROGRAMS = [
  'sluice_connect4',
  'sluice_connect6',
  'sluice_sockops',
  'sluice_getpeername4',
  'sluice_getpeername6',
] as const;

export interface DatapathOptions {
  bpffsDir: string;
  cgroupPath: string;
  proxyAddress: string;
  proxyPort: number;
  objectPath?: string;
}

export interface AttachReport {
  program: string;
  reused: boolean;
}

/** Where this build's pins live under a bpffs directory: `<bpffsDir>/v<SLUICE_SCHEMA_VERSION>`. */
export function schemaDir(bpffsDir: string): string {
  return path.join(bpffsDir, `v${addon().schemaVersion}`);
}

/** Throws with a clear message unless dir lies on a mounted bpf filesystem. */
export function assertOnBpffs(dir: string): void {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  const best = mounts
    .filter((m) => m.length > 2 && (dir === m[1] || dir.startsWith(m[1].endsWith('/') ? m[1] : m[1] + '/')))
    .sort((a, b) => b[1].length - a[1].length)[0];
  if (!best || best[2] !== 'bpf') {
    throw new Error(`--bpffs ${dir}: not on a bpf filesystem (mount one with "mount -t bpf bpf /sys/fs/bpf")`);
  }
}

const ifindexCodec = {
  size: 4,
  encode: (i: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(i);
    return b;
  },
  decode: (b: Buffer, o = 0) => b.readUInt32LE(o),
};

/** How a STRICT filter attach is to be run. */
export interface StrictAttachOptions {
  /** Try again the interfaces whose last attempt failed (the map sync's passes); otherwise they are only reported. */
  retryFailed?: boolean;
}

/** Where the STRICT filter of one interface stands (BpfDatapath.strictFilter). */
export type StrictFilterState = { state: 'attached' } | { state: 'attaching' } | { state: 'failed' | 'absent'; error: string };

/** A VIP map key as operators write it: "10.96.0.10:80", or "10.244.1.5:*" for a pod's own address (port 0). */
function describeVipKey(key: Buffer): string {
  const k = vipKeyCodec.decode(key);
  return `${k.address}:${k.port === 0 ? '*' : k.port}`;
}

/** Index of a network interface in this process's netns. */
export function interfaceIndex(name: string): number {
  return addon().ifIndex(name);
}

/** Detaches and removes the pins of other schema versions (an upgrade or a downgrade). */
function removeOtherSchemas(bpffsDir: string, keep: string): void {
  for (const entry of fs.readdirSync(bpffsDir)) {
    const dir = path.join(bpffsDir, entry);
    if (!/^v\d+$/.test(entry) || dir === keep) continue;
    const links = path.join(dir, 'links');
    if (fs.existsSync(links)) for (const l of fs.readdirSync(links)) addon().detachPinnedLink(path.join(links, l));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const codecFor = { size: 8, encode: (v: bigint) => netnsCookieCodec.encode(v), decode: (b: Buffer, o?: number) => netnsCookieCodec.decode(b, o) };

/**
 * The kernel side of one agent: the loaded object, its pinned maps (typed
 * with the codecs of map-codecs.ts) and attachments. Errors name the map,
 * program, interface or netns they concern.
 */
export class BpfDatapath {
  readonly enroll: BpfMap<bigint, Enrollment>;
  readonly vips: BpfMap<VipKey, VipValue>;
  readonly tuples: BpfMap<TupleKey, OriginalDestinationRecord>;
  readonly strict: BpfMap<number, StrictEntry>;
  readonly inbound: BpfMap<string, InboundEntry>;
  /** Interfaces whose tc filter this agent run has (re)attached. */
  private readonly strictAttached = new Set<number>();
  /** ifindex → why its STRICT filter could not be attached on the last try. */
  private readonly strictAttachErrors = new Map<number, string>();
  /** Interfaces whose filter a worker thread is attaching now. */
  private readonly strictAttaching = new Set<number>();
  /** Attaches under way; close() waits for them before it frees the object they use. */
  private readonly attachesInFlight = new Set<Promise<void>>();
  /**
   * Called when a STRICT filter attach ended (attached or failed), so that
   * the caller runs a pass: the pod's enforcement state follows, and a
   * failure is retried by the map sync.
   */
  onStrictFilterSettled?: (ifindex: number) => void;
  private readonly counterMap: MapInfo;
  /** service key -> its VIP entries as written (key hex -> value), for one-service updates. */
  private readonly vipsByService = new Map<string, Map<string, Buffer>>();
  /** Sum of the sizes of vipsByService's maps, kept as they change: counting them per update made a full sync quadratic. */
  private vipEntryCount = 0;
  /**
   * How many owners (services, workloads) hold each VIP map key: a pod IP
   * reused by a new pod while the old one's removal is still on its way
   * must not lose the new pod's entry.
   */
  private readonly vipKeyOwners = new Map<string, number>();
  private readonly ncpus: number;
  private closed = false;

  private constructor(
    private readonly object: LoadedBpfObject,
    readonly pinRoot: string,
    readonly attached: AttachReport[],
  ) {
    const byName = new Map(object.maps.map((m) => [m.name, m]));
    const need = (n: string): MapInfo => {
      const m = byName.get(n);
      if (!m) throw new Error(`object has no map ${n}`);
      return m;
    };
    this.enroll = new BpfMap(need('sluice_enroll'), codecFor, enrollmentCodec);
    this.vips = new BpfMap(need('sluice_vips'), vipKeyCodec, vipValueCodec);
    this.tuples = new BpfMap(need('sluice_tuples'), tupleKeyCodec, originalDestinationCodec);
    this.strict = new BpfMap(need('sluice_strict'), ifindexCodec, strictCodec);
    this.inbound = new BpfMap(need('sluice_inbound'), ipv4KeyCodec, inboundCodec);
    this.counterMap = need('sluice_counters');
    this.ncpus = addon().possibleCpus();
  }

  /** Loads (re-using compatible pins), configures and attaches; starts the first fill count, so the first scrape finds one. */
  static async open(opts: DatapathOptions): Promise<BpfDatapath> {
    const datapath = await BpfDatapath.load(opts);
    datapath.countFill().catch(() => undefined);
    return datapath;
  }

  private static async load(opts: DatapathOptions): Promise<BpfDatapath> {
    assertOnBpffs(opts.bpffsDir);
    if (!fs.statSync(opts.cgroupPath, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(`--cgroup ${opts.cgroupPath}: no such cgroup directory`);
    }
    const pinRoot = schemaDir(opts.bpffsDir);
    fs.mkdirSync(path.join(pinRoot, 'links'), { recursive: true });
    const object = await addon().loadObject(opts.objectPath ?? bpfObjectPath, pinRoot);
    try {
      const config = object.maps.find((m) => m.name === 'sluice_config');
      if (!config) throw new Error('object has no map sluice_config');
      // Configure before attaching: connect4 leaves sockets alone until the proxy address is set.
      addon().mapUpdate(config.fd, u32KeyCodec.encode(0), configCodec.encode({ proxyAddress: opts.proxyAddress, proxyPort: opts.proxyPort }));
      const attached: AttachReport[] = [];
      for (const program of PROGRAMS) {
        const { reused } = await object.attachCgroup(program, opts.cgroupPath, path.join(pinRoot, 'links', program));
        attached.push({ program, reused });
      }
      // The new programs capture now; only then let go of an older schema's.
      removeOtherSchemas(opts.bpffsDir, pinRoot);
      return new BpfDatapath(object, pinRoot, attached);
    } catch (err) {
      object.close();
      throw err;
    }
  }

  /**
   * Takes sluice off the node: removes the STRICT tc filter from every
   * interface the STRICT map names (a filter's program holds the map, so
   * unpinning alone would keep it dropping), empties the inbound map (the
   * program in each pod's netns holds it, and with an entry but no listener
   * it drops), detaches every pinned link,
   * and removes every pin under bpffsDir, of every schema version. Returns
   * what it removed. Must run in the node's network namespace (the map's
   * ifindexes are that netns's). Throws a NativeError when a filter or link
   * is there but cannot be removed (e.g. EPERM without CAP_NET_ADMIN).
   */
  static uninstall(bpffsDir: string): { strictFilters: number[]; links: string[] } {
    const removed = { strictFilters: [] as number[], links: [] as string[] };
    if (!fs.existsSync(bpffsDir)) return removed;
    for (const entry of fs.readdirSync(bpffsDir)) {
      const dir = path.join(bpffsDir, entry);
      if (!/^v\d+$/.test(entry)) continue;
      const strictPin = path.join(dir, 'sluice_strict');
      if (fs.existsSync(strictPin)) {
        const fd = addon().openPinned(strictPin);
        try {
          const { keys, count } = addon().mapEntries(fd, ifindexCodec.size, strictCodec.size);
          for (let i = 0; i < count; i++) {
            const ifindex = ifindexCodec.decode(keys, i * ifindexCodec.size);
            if (addon().detachTc(ifindex, true)) removed.strictFilters.push(ifindex);
          }
        } finally {
          addon().closeFd(fd);
        }
      }
      const inboundPin = path.join(dir, 'sluice_inbound');
      if (fs.existsSync(inboundPin)) {
        const fd = addon().openPinned(inboundPin);
        try {
          const { keys, count } = addon().mapEntries(fd, ipv4KeyCodec.size, inboundCodec.size);
          for (let i = 0; i < count; i++) addon().mapDelete(fd, keys.subarray(i * ipv4KeyCodec.size, (i + 1) * ipv4KeyCodec.size));
        } finally {
          addon().closeFd(fd);
        }
      }
      const links = path.join(dir, 'links');
      if (fs.existsSync(links)) {
        for (const l of fs.readdirSync(links)) if (addon().detachPinnedLink(path.join(links, l))) removed.links.push(l);
      }
    }
    fs.rmSync(bpffsDir, { recursive: true, force: true });
    return removed;
  }

  /** Makes both maps hold exactly the desired state (start-up, restart replay, periodic repair). */
  apply(desired: DesiredState): ReconcileResult[] {
    this.assertOpen();
    this.vipsByService.clear();
    this.vipEntryCount = 0;
    this.vipKeyOwners.clear();
    const vips: { key: Buffer; value: Buffer }[] = [];
    for (const [service, entries] of desired.vips) {
      const encoded = this.encodeVips(entries);
      this.vipsByService.set(service, encoded);
      this.vipEntryCount += encoded.size;
      for (const [hex, value] of encoded) {
        vips.push({ key: Buffer.from(hex, 'hex'), value });
        this.vipKeyOwners.set(hex, (this.vipKeyOwners.get(hex) ?? 0) + 1);
      }
    }
    return [this.applyEnrollments(desired.enrollments), reconcileMap(this.vips, vips, describeVipKey)];
  }

  applyEnrollments(enrollments: DesiredState['enrollments']): ReconcileResult {
    this.assertOpen();
    return reconcileMap(
      this.enroll,
      [...enrollments].map(([cookie, e]) => ({ key: netnsCookieCodec.encode(cookie), value: enrollmentCodec.encode(e) })),
      (key) => `netns cookie ${netnsCookieCodec.decode(key)}`,
    );
  }

  /** Entries the agent holds in the VIP map now, and the map's capacity. */
  vipFill(): { entries: number; capacity: number } {
    return { entries: this.vipEntryCount, capacity: this.vips.info.maxEntries };
  }

  /**
   * Writes one service's VIP entries (undefined: the service is gone),
   * touching nothing else. All or nothing: when the map cannot take them
   * (full) or a write fails, what was written is undone, the service keeps
   * its previous entries, and the error names the map and the service.
   */
  updateServiceVips(service: string, entries: VipEntry[] | undefined): { updated: number; deleted: number } {
    this.assertOpen();
    const before = this.vipsByService.get(service) ?? new Map<string, Buffer>();
    const after = entries ? this.encodeVips(entries) : new Map<string, Buffer>();
    const { entries: used, capacity } = this.vipFill();
    const adding = [...after.keys()].filter((hex) => !before.has(hex)).length;
    if (used + adding > capacity) {
      throw new Error(`map ${this.vips.name} is full: service ${service} needs ${adding} more entries, ${capacity - used} of ${capacity} free`);
    }
    let updated = 0;
    let deleted = 0;
    const written: string[] = [];
    try {
      for (const [hex, value] of after) {
        if (before.get(hex)?.equals(value)) continue;
        this.vips.updateRaw(Buffer.from(hex, 'hex'), value);
        written.push(hex);
        updated++;
      }
    } catch (err) {
      for (const hex of written) {
        const old = before.get(hex);
        try {
          if (old) this.vips.updateRaw(Buffer.from(hex, 'hex'), old);
          else this.vips.deleteRaw(Buffer.from(hex, 'hex'));
        } catch {
          // the periodic full apply repairs what cannot be undone now
        }
      }
      throw new Error(`map ${this.vips.name}: service ${service} not installed, its previous entries kept: ${(err as Error).message}`);
    }
    for (const hex of after.keys()) if (!before.has(hex)) this.vipKeyOwners.set(hex, (this.vipKeyOwners.get(hex) ?? 0) + 1);
    for (const hex of before.keys()) {
      if (after.has(hex)) continue;
      const owners = (this.vipKeyOwners.get(hex) ?? 1) - 1;
      if (owners > 0) {
        this.vipKeyOwners.set(hex, owners); // another owner still holds this key
        continue;
      }
      this.vipKeyOwners.delete(hex);
      if (this.vips.deleteRaw(Buffer.from(hex, 'hex'))) deleted++;
    }
    this.vipEntryCount += after.size - before.size;
    if (entries) this.vipsByService.set(service, after);
    else this.vipsByService.delete(service);
    return { updated, deleted };
  }

  private encodeVips(entries: VipEntry[]): Map<string, Buffer> {
    return new Map(entries.map((e) => [vipKeyCodec.encode(e.key).toString('hex'), vipValueCodec.encode(e.value)]));
  }

  /**
   * PeerAuthentication STRICT per pod interface (ifindex in this netns):
   * starts attaching the tc filter where needed (attachStrict) and makes the
   * map hold exactly these.
   */
  applyStrict(entries: Map<number, StrictEntry>, options: StrictAttachOptions = {}): ReconcileResult {
    this.assertOpen();
    const attach = this.attachStrict(entries, options);
    const r = reconcileMap(
      this.strict,
      [...entries].map(([ifindex, e]) => ({ key: ifindexCodec.encode(ifindex), value: strictCodec.encode(e) })),
      (key) => `ifindex ${ifindexCodec.decode(key)}`,
    );
    return { ...r, errors: [...attach.map((f) => `attach tc to ${f.key}: ${f.error}`), ...r.errors], failures: [...attach, ...r.failures] };
  }

  /** Like applyStrict, but removes nothing: for a pass in which some pods could not be resolved. */
  addStrict(entries: Map<number, StrictEntry>, options: StrictAttachOptions = {}): ReconcileResult {
    this.assertOpen();
    const attach = this.attachStrict(entries, options);
    const result: ReconcileResult = { map: this.strict.name, updated: 0, deleted: 0, unchanged: 0, errors: attach.map((f) => `attach tc to ${f.key}: ${f.error}`), failures: attach };
    for (const [ifindex, e] of entries) {
      try {
        this.strict.updateRaw(ifindexCodec.encode(ifindex), strictCodec.encode(e));
        result.updated++;
      } catch (err) {
        result.errors.push(`update ${this.strict.name} ifindex ${ifindex}: ${(err as Error).message}`);
        result.failures.push({ map: this.strict.name, key: `ifindex ${ifindex}`, op: 'update', error: (err as Error).message });
      }
    }
    return result;
  }

  /**
   * The STRICT filter of an interface: attached by this agent run, being
   * attached now, failed (with the last attempt's error), or never tried.
   * Map entries alone drop nothing: the filter must be on the interface.
   */
  strictFilter(ifindex: number): StrictFilterState {
    if (this.strictAttached.has(ifindex)) return { state: 'attached' };
    // A retry under way is still a failure until it succeeds.
    const error = this.strictAttachErrors.get(ifindex);
    if (error) return { state: 'failed', error };
    if (this.strictAttaching.has(ifindex)) return { state: 'attaching' };
    return { state: 'absent', error: `no filter attached to ifindex ${ifindex} yet` };
  }

  /**
   * Starts attaching the tc filter where it is missing, each on a worker
   * thread (onStrictFilterSettled says when one ends). An interface whose
   * last attempt failed is tried again only with `retryFailed` (the map
   * sync's passes, which back off), and is reported failing until an
   * attempt succeeds. Returns the interfaces failing now.
   */
  private attachStrict(entries: Map<number, StrictEntry>, options: StrictAttachOptions): KeyFailure[] {
    const failures: KeyFailure[] = [];
    for (const ifindex of entries.keys()) {
      if (this.strictAttached.has(ifindex)) continue;
      const failed = this.strictAttachErrors.get(ifindex);
      if (failed) failures.push({ map: this.strict.name, key: `ifindex ${ifindex}`, op: 'attach', error: failed.replace(/^attach tc to ifindex \d+: /, '') });
      if (this.strictAttaching.has(ifindex) || (failed && !options.retryFailed)) continue;
      let started: Promise<void>;
      try {
        started = this.object.attachTc('sluice_strict_ingress', ifindex, true);
      } catch (err) {
        // Refused before it ran (the object is closed): a failure like any other.
        this.strictAttachErrors.set(ifindex, `attach tc to ifindex ${ifindex}: ${(err as Error).message}`);
        failures.push({ map: this.strict.name, key: `ifindex ${ifindex}`, op: 'attach', error: (err as Error).message });
        continue;
      }
      this.strictAttaching.add(ifindex);
      const attempt = started.then(
        () => {
          this.strictAttached.add(ifindex);
          this.strictAttachErrors.delete(ifindex);
        },
        (err: Error) => void this.strictAttachErrors.set(ifindex, `attach tc to ifindex ${ifindex}: ${err.message}`),
      );
      this.attachesInFlight.add(attempt);
      void attempt.finally(() => {
        this.attachesInFlight.delete(attempt);
        this.strictAttaching.delete(ifindex);
        if (!this.closed) this.onStrictFilterSettled?.(ifindex);
      });
    }
    return failures;
  }

  /** Resolves when no STRICT filter attach is under way. */
  async strictFiltersSettled(): Promise<void> {
    while (this.attachesInFlight.size) await Promise.allSettled([...this.attachesInFlight]);
  }

  /**
   * Opens the node proxy's inbound listener inside a pod's netns (0.0.0.0
   * on `port`) and attaches the inbound program at tc ingress of the pod's
   * interface `iface` there. Resolves with the listener's descriptor, which
   * the caller owns. Rejects with the netns, interface and errno (e.g.
   * EADDRINUSE when the pod itself listens on the port).
   */
  captureInbound(netnsPath: string, iface: string, port: number): Promise<{ fd: number; ifindex: number }> {
    this.assertOpen();
    return this.object.captureInbound('sluice_inbound_redirect', netnsPath, iface, port);
  }

  /** Makes the inbound map hold exactly these pods (IPv4 address -> entry). */
  applyInbound(entries: Map<string, InboundEntry>): ReconcileResult {
    this.assertOpen();
    return reconcileMap(
      this.inbound,
      [...entries].map(([ip, e]) => ({ key: ipv4KeyCodec.encode(ip), value: inboundCodec.encode(e) })),
      (key) => ipv4KeyCodec.decode(key),
    );
  }

  /** Original destination of an accepted proxy socket; the record is consumed. */
  originalDst(socketFd: number): OriginalDestinationRecord | undefined {
    const raw = addon().originalDstByFd(this.tuples.info.fd, socketFd, true);
    return raw ? originalDestinationCodec.decode(raw) : undefined;
  }

  counters(): Record<CounterName, number> {
    this.assertOpen();
    const out = {} as Record<CounterName, number>;
    counterNames.forEach((name, i) => {
      const raw = addon().mapLookup(this.counterMap.fd, u32KeyCodec.encode(i), 8 * this.ncpus);
      let sum = 0n;
      if (raw) for (let c = 0; c < this.ncpus; c++) sum += raw.readBigUInt64LE(c * 8);
      out[name] = Number(sum);
    });
    return out;
  }

  /**
   * Entries and capacity (max_entries) of the maps the agent manages, for
   * metrics. The entries are counted on a worker thread (walking a map of
   * 262,144 entries must not hold up accept and the relay hand-over), at
   * most every 10 s: this returns the last count and starts the next one
   * when it is due (empty until the first count ends).
   */
  fill(now = Date.now()): { map: string; entries: number; capacity: number }[] {
    this.assertOpen();
    // A failed count (the datapath closed meanwhile) keeps the last value.
    if (!this.fillCounting && (!this.fillCache || now - this.fillCache.at >= 10_000)) this.countFill(now).catch(() => undefined);
    return this.fillCache?.value ?? [];
  }

  /** Counts now; resolves with the new fill (for a test, or a caller that must have it). */
  async countFill(now = Date.now()): Promise<{ map: string; entries: number; capacity: number }[]> {
    this.assertOpen();
    const maps = [this.enroll, this.vips, this.tuples, this.strict, this.inbound];
    this.fillCounting = true;
    try {
      // One map at a time: one worker thread of libuv's pool, not all of them.
      const value: { map: string; entries: number; capacity: number }[] = [];
      for (const m of maps) {
        // Keys deleted during the walk can make it count some twice (a hash map's next key restarts).
        const counted = await addon().mapCount(m.info.fd, m.info.keySize);
        value.push({ map: m.name, entries: Math.min(counted, m.info.maxEntries), capacity: m.info.maxEntries });
      }
      if (!this.closed) this.fillCache = { at: now, value };
      return value;
    } finally {
      this.fillCounting = false;
    }
  }

  private fillCache?: { at: number; value: { map: string; entries: number; capacity: number }[] };
  private fillCounting = false;

  /** Closes the object's descriptors (pins, links and filters stay); once attaches under way have ended, since they use it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.attachesInFlight.size === 0) return this.object.close();
    void Promise.allSettled([...this.attachesInFlight]).then(() => this.object.close());
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('datapath is closed');
  }
}
