// Network namespaces of the pods on this node, as the CNI step reports them:
// one JSON file per pod, <dir>/<pod uid>.json = {uid, namespace, name, netns}.
// Resolves each netns to its cookie, the key of the enrollment map.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addon } from '../native/bpf-addon';

export interface PodNetns {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  cookie: bigint;
  /** The pod's interface on the node side (veth peer), if the CNI step reported it. */
  hostInterface?: string;
  /** The pod's own interface inside its netns (CNI_IFNAME), if the CNI step reported it. */
  podInterface?: string;
}

/**
 * The pods of this node by uid, from the records in the pod netns directory,
 * each with its netns cookie (the enrollment map's key). Rescans on every
 * change of the directory and every 2 s; a record that cannot be read now
 * keeps the pod as known. `onChange` is called when the set changed.
 */
export class PodNetnsRegistry {
  private readonly pods = new Map<string, PodNetns>();
  private readonly failures = new Map<string, string>();
  private watcher?: fs.FSWatcher;
  private timer?: NodeJS.Timeout;
  private scanning?: Promise<boolean>;

  constructor(
    readonly dir: string,
    private readonly onChange: () => void,
  ) {}

  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    await this.scan();
    this.watcher = fs.watch(this.dir, () => void this.rescan());
    // fs.watch can miss events on some filesystems; a slow poll closes the gap.
    this.timer = setInterval(() => void this.rescan(), 2000);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  cookieOf(uid: string): bigint | undefined {
    return this.pods.get(uid)?.cookie;
  }

  /** Established TCP connections inside the pod's netns now (undefined if unknown). */
  async establishedConnections(uid: string): Promise<number | undefined> {
    const pod = this.pods.get(uid);
    if (!pod) return undefined;
    try {
      return await addon().netnsEstablishedTcp(pod.netns);
    } catch {
      return undefined;
    }
  }

  get(uid: string): PodNetns | undefined {
    return this.pods.get(uid);
  }

  list(): PodNetns[] {
    return [...this.pods.values()];
  }

  /** Pods whose netns could not be resolved, with the reason. */
  errors(): Record<string, string> {
    return Object.fromEntries(this.failures);
  }

  /**
   * Never throws: a scan that fails (EMFILE under descriptor pressure, the
   * directory gone) keeps every pod known so far and is retried by the poll.
   */
  private async rescan(): Promise<void> {
    try {
      if (await this.scan()) this.onChange();
    } catch (err) {
      this.failures.set('(scan)', `scan of ${this.dir} failed, the pods known so far are kept: ${(err as Error).message}`);
    }
  }

  private scan(): Promise<boolean> {
    // One scan at a time; a request during a scan joins the next one.
    const run = async (): Promise<boolean> => {
      let changed = false;
      const seen = new Set<string>();
      // Throws before anything is forgotten when the directory cannot be read.
      const files = fs.readdirSync(this.dir);
      this.failures.delete('(scan)');
      for (const file of files) {
        if (!file.endsWith('.json')) continue;
        let entry: { uid?: unknown; namespace?: unknown; name?: unknown; netns?: unknown; hostInterface?: unknown; ifname?: unknown };
        try {
          entry = JSON.parse(fs.readFileSync(path.join(this.dir, file), 'utf8'));
        } catch (err) {
          // Unreadable now (EMFILE, EIO; records are written atomically, so
          // never half): the pod stays as known, it is not forgotten.
          const uid = file.slice(0, -'.json'.length);
          if (this.pods.has(uid)) seen.add(uid);
          this.failures.set(file, `unreadable, kept as known: ${(err as Error).message}`);
          continue;
        }
        if (typeof entry.uid !== 'string' || typeof entry.netns !== 'string') {
          this.failures.set(file, 'uid and netns must be strings');
          continue;
        }
        seen.add(entry.uid);
        const known = this.pods.get(entry.uid);
        if (known && known.netns === entry.netns) continue;
        try {
          const cookie = await addon().netnsCookie(entry.netns);
          this.pods.set(entry.uid, {
            uid: entry.uid,
            namespace: String(entry.namespace ?? ''),
            name: String(entry.name ?? ''),
            netns: entry.netns,
            cookie,
            hostInterface: typeof entry.hostInterface === 'string' ? entry.hostInterface : undefined,
            podInterface: typeof entry.ifname === 'string' && entry.ifname !== '' ? entry.ifname : undefined,
          });
          this.failures.delete(entry.uid);
          changed = true;
        } catch (err) {
          this.failures.set(entry.uid, (err as Error).message);
        }
      }
      for (const uid of [...this.pods.keys()]) {
        if (!seen.has(uid)) {
          this.pods.delete(uid);
          changed = true;
        }
      }
      return changed;
    };
    const next = (this.scanning ?? Promise.resolve(false)).then(run, run);
    this.scanning = next;
    return next;
  }
}
