// The connection budget's admission rule and its per-source wait queues, one
// implementation for the node proxy (same-node connections) and the tunnel
// server (streams from other nodes), so a pod meets the same budget on every
// path: past its share a new connection waits for room, past the wait, its
// queue's bound or the whole budget it is refused.

/**
 * How many proxied connections the proxy holds at once, so that descriptors
 * stay for the agent's own work and one pod cannot starve the others.
 *
 * A connection over its pod's share is not reset at once: its client may
 * already have written and closed (a burst of short connections), and a reset
 * after accept would lose those bytes. It waits, paused (one descriptor, no
 * byte read), for one of the pod's own connections to end, as a connection
 * waits in a server's accept queue. It is reset (counted, logged once per
 * interval) only when the wait exceeds `waitMs`, when the pod already has
 * `maxWaitingPerSource` waiting, or when the whole budget is held; nothing
 * already open is touched.
 */
export interface ConnectionLimits {
  /** In all. */
  maxConnections: number;
  /** From one source address (one pod). */
  maxPerSource: number;
  /** Connections of one source that may wait for its share; default WAITING_PER_SLOT × maxPerSource. */
  maxWaitingPerSource?: number;
  /** How long a connection may wait for its source's share, ms; default DEFAULT_BUDGET_WAIT_MS. */
  waitMs?: number;
}

/**
 * A waiting connection holds one descriptor, a relayed one up to six: the
 * descriptors of one free connection slot hold six waiting connections. A
 * pod's queue costs no more than its share, and all queues together no more
 * than the slots still free, so descriptors never exceed the budget's.
 */
export const WAITING_PER_SLOT = 6;
/** Longer than a client's usual connect timeout is pointless: by then it has given up. */
export const DEFAULT_BUDGET_WAIT_MS = 10_000;

export type Admission = 'start' | 'wait' | 'refuse-total' | 'refuse-source';

interface Entry<T> {
  item: T;
  timer: NodeJS.Timeout;
}

/** Per-source FIFO queues of items waiting for their source's share, each with its expiry timer. */
export class BudgetQueues<T> {
  private readonly bySource = new Map<string, Entry<T>[]>();
  /** Items waiting in all queues. */
  waiting = 0;

  constructor(private readonly limits: ConnectionLimits | undefined) {}

  /** How long an item may wait, ms. */
  get waitMs(): number {
    return this.limits?.waitMs ?? DEFAULT_BUDGET_WAIT_MS;
  }

  /**
   * Whether a new connection from `source` may start now, must wait, or is
   * refused, given `held` connections in all and `heldBySource` of this
   * source's. Always 'start' without limits.
   */
  admission(source: string, held: number, heldBySource: number): Admission {
    const limits = this.limits;
    if (!limits) return 'start';
    if (held >= limits.maxConnections) return 'refuse-total';
    if (heldBySource < limits.maxPerSource) return 'start';
    const maxWaiting = limits.maxWaitingPerSource ?? WAITING_PER_SLOT * limits.maxPerSource;
    const roomInAll = this.waiting < WAITING_PER_SLOT * (limits.maxConnections - held);
    return this.length(source) < maxWaiting && roomInAll ? 'wait' : 'refuse-source';
  }

  /** Queues `item`; after waitMs it leaves the queue and `expired` is called. Returns a handle for remove(). */
  enqueue(source: string, item: T, expired: () => void): Entry<T> {
    const entry: Entry<T> = {
      item,
      timer: setTimeout(() => {
        if (this.remove(source, entry)) expired();
      }, this.waitMs),
    };
    const queue = this.bySource.get(source);
    if (queue) queue.push(entry);
    else this.bySource.set(source, [entry]);
    this.waiting++;
    return entry;
  }

  /** Takes an entry out of its queue (its timer cleared); false when it was no longer there. */
  remove(source: string, entry: Entry<T>): boolean {
    const queue = this.bySource.get(source);
    const i = queue?.indexOf(entry) ?? -1;
    if (!queue || i < 0) return false;
    queue.splice(i, 1);
    if (queue.length === 0) this.bySource.delete(source);
    this.waiting--;
    clearTimeout(entry.timer);
    return true;
  }

  /** Items of this source waiting now. */
  length(source: string): number {
    return this.bySource.get(source)?.length ?? 0;
  }

  /** The source's oldest waiting item, out of its queue (timer cleared), or undefined. */
  next(source: string): T | undefined {
    const entry = this.bySource.get(source)?.[0];
    if (!entry) return undefined;
    this.remove(source, entry);
    return entry.item;
  }

  /** Every waiting item, out of the queues (timers cleared). */
  takeAll(): T[] {
    const all = [...this.bySource.values()].flat();
    for (const e of all) clearTimeout(e.timer);
    this.bySource.clear();
    this.waiting = 0;
    return all.map((e) => e.item);
  }
}
