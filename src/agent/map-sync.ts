// Keeps the node's BPF maps in step with the desired state, over time: what
// every pass did, which keys are failing (per map, per key, since when, how
// many passes), retries of failing keys with exponential backoff, and the
// periodic full resync against the kernel that repairs drift (an entry
// changed or deleted behind the agent). The passes themselves are the
// agent's (they read its configuration); this module owns when they run and
// what is known about them. Like a Kubernetes controller's work queue, a
// failing key is retried sooner than the resync period, and less often the
// longer it fails.
import type { Logger } from 'pino';
import { WHOLE_MAP, type KeyFailure, type ReconcileResult } from '../datapath/reconciler';
import type { MapSyncView, FailingKeyView } from '../observability/agent-admin-api';

/** First retry after a pass left keys failing, ms; doubled for each further failing pass. */
export const FIRST_RETRY_MS = 1000;
/** The longest wait between retries of failing keys, ms (as client-go's default controller rate limiter caps its per-item backoff). */
export const MAX_RETRY_MS = 30_000;
/** At most this many failing keys are listed in the status view; the count covers all. */
const LISTED_FAILURES = 50;

export interface MapSyncOptions {
  /** Seconds between full resyncs against the kernel; 0 turns the periodic resync off (retries still run). */
  resyncIntervalSeconds: number;
  /**
   * The full pass: every map against the desired state, reading the kernel.
   * Returns undefined when it cannot run now (no configuration yet, or a
   * newer agent owns the maps). May throw; the error is logged and retried.
   */
  fullPass: () => ReconcileResult[] | undefined;
  logger: Logger;
  /** Backoff bounds, ms (tests shorten them). */
  firstRetryMs?: number;
  maxRetryMs?: number;
}

/** What one pass did, as GET /status shows the last reconcile. */
export interface PassSummary {
  at: string;
  errors: string[];
  updated: number;
  deleted: number;
}

interface FailingKey extends KeyFailure {
  since: string;
  passes: number;
}

/**
 * The map sync of one agent. record() takes every pass's results (the
 * agent's incremental reconcile, and the full passes run here); start()
 * runs the periodic resync; stop() ends all timers. Never throws from a
 * timer.
 */
export class MapSync {
  /** Entries a full resync found changed, missing or stray (behind the agent, or left failing by an earlier pass) and put right, since start. */
  repairs = 0;
  /** Full passes run to retry failing keys, since start. */
  retries = 0;
  lastReconcile: PassSummary = { at: '', errors: [], updated: 0, deleted: 0 };
  lastResync = '';
  /** map -> "op key" -> failure. */
  private readonly failing = new Map<string, Map<string, FailingKey>>();
  private retryAttempt = 0;
  /** Why the last full pass could not run at all (it threw), until one runs: counts as a failing key. */
  private passError?: FailingKey;
  private stopped = false;
  private retryAt?: number;
  private retryDelay?: number;
  private retryTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private readonly firstRetryMs: number;
  private readonly maxRetryMs: number;

  constructor(private readonly options: MapSyncOptions) {
    this.firstRetryMs = options.firstRetryMs ?? FIRST_RETRY_MS;
    this.maxRetryMs = options.maxRetryMs ?? MAX_RETRY_MS;
  }

  /** Starts the periodic resync (when its interval is not 0), and retries again after stop(). */
  start(): void {
    this.stopped = false;
    if (this.resyncTimer || this.options.resyncIntervalSeconds <= 0) return;
    this.resyncTimer = setInterval(() => this.resync(), this.options.resyncIntervalSeconds * 1000);
    this.resyncTimer.unref();
  }

  /** Ends the periodic resync and any retry waiting, and schedules none until start() (a newer agent owns the maps, or the agent stops). */
  stop(): void {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.resyncTimer = this.retryTimer = this.retryAt = this.retryDelay = undefined;
  }

  /**
   * Takes the results of a pass. A result with `covered` set spoke for
   * those keys only (an incremental update of some services): their earlier
   * failures are replaced. One without spoke for its whole map: the map's
   * failing keys become exactly its failures. Schedules a retry when keys
   * are failing. Returns the summary also kept as lastReconcile.
   */
  record(results: ReconcileResult[]): PassSummary {
    const summary: PassSummary = { at: new Date().toISOString(), errors: [], updated: 0, deleted: 0 };
    let fresh = false;
    for (const r of results) {
      summary.updated += r.updated;
      summary.deleted += r.deleted;
      summary.errors.push(...r.errors);
      fresh = this.noteFailures(r) || fresh;
    }
    this.lastReconcile = summary;
    this.scheduleRetry(fresh);
    return summary;
  }

  /**
   * One full pass now, reading the kernel: drift is repaired and counted,
   * failing keys are tried again. Does nothing when the pass cannot run now.
   */
  resync(): void {
    const log = this.options.logger;
    let results: ReconcileResult[] | undefined;
    try {
      results = this.options.fullPass();
    } catch (err) {
      const error = (err as Error).message;
      log.error({ err: error }, 'map resync failed; it is retried');
      // Counted as failing, so that the backoff grows and status says so.
      this.passError = { map: '*', key: WHOLE_MAP, op: 'update', error, since: this.passError?.since ?? new Date().toISOString(), passes: (this.passError?.passes ?? 0) + 1 };
      this.scheduleRetry();
      return;
    }
    if (!results) return;
    this.passError = undefined;
    let repaired = 0;
    let fresh = false;
    const errors: string[] = [];
    for (const r of results) {
      repaired += r.updated + r.deleted;
      errors.push(...r.errors);
      fresh = this.noteFailures(r) || fresh;
    }
    this.repairs += repaired;
    this.lastResync = new Date().toISOString();
    if (repaired) log.warn({ repaired }, 'map entries changed behind the agent, or failing before, were put right');
    if (errors.length) log.error({ errors: errors.slice(0, LISTED_FAILURES), failing: this.failingCount }, 'map resync left keys failing; they are retried');
    this.scheduleRetry(fresh);
  }

  /** Keys failing now, over all maps. */
  get failingCount(): number {
    let n = this.passError ? 1 : 0;
    for (const keys of this.failing.values()) n += keys.size;
    return n;
  }

  /** Keys failing now, per map (maps with none are left out). */
  failingByMap(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [map, keys] of this.failing) if (keys.size) out[map] = keys.size;
    if (this.passError) out['*'] = (out['*'] ?? 0) + 1;
    return out;
  }

  /** The status view: failing keys (the first 50, oldest first) and the next retry. */
  view(): MapSyncView {
    const all: FailingKeyView[] = [];
    const keys = [...this.failing.values()].flatMap((k) => [...k.values()]);
    if (this.passError) keys.push(this.passError);
    for (const f of keys) all.push({ map: f.map, key: f.key, op: f.op, error: f.error, since: f.since, passes: f.passes });
    all.sort((a, b) => a.since.localeCompare(b.since));
    return {
      failingKeys: all.length,
      failing: all.slice(0, LISTED_FAILURES),
      retries: this.retries,
      ...(this.retryAt !== undefined ? { nextRetryInMs: Math.max(0, this.retryAt - Date.now()), backoffMs: this.retryDelay } : {}),
    };
  }

  /** Folds one result into the failing keys; true when a key fails that did not before. */
  private noteFailures(r: ReconcileResult): boolean {
    const before = this.failing.get(r.map) ?? new Map<string, FailingKey>();
    const after = r.covered ? new Map(before) : new Map<string, FailingKey>();
    if (r.covered) for (const key of r.covered) for (const op of ['update', 'delete', 'attach'] as const) after.delete(`${op} ${key}`);
    const now = new Date().toISOString();
    let fresh = false;
    for (const f of r.failures) {
      const id = `${f.op} ${f.key}`;
      const earlier = before.get(id);
      fresh ||= !earlier;
      after.set(id, { ...f, since: earlier?.since ?? now, passes: (earlier?.passes ?? 0) + 1 });
    }
    if (after.size) this.failing.set(r.map, after);
    else this.failing.delete(r.map);
    return fresh;
  }

  /**
   * With keys failing, one full pass after the backoff delay (1 s, 2 s, 4 s,
   * ... up to 30 s); with none, the backoff starts over. A retry already
   * waiting is kept, so a busy stream of passes cannot postpone it; but a key
   * that newly fails (`fresh`) is tried within the first delay, not after a
   * backoff that other keys grew.
   */
  private scheduleRetry(fresh = false): void {
    if (this.stopped) return;
    if (this.failingCount === 0) {
      this.retryAttempt = 0;
      return;
    }
    if (this.retryTimer) {
      if (!fresh || this.retryAt === undefined || this.retryAt - Date.now() <= this.firstRetryMs) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.retryAttempt = 0;
    }
    const delay = Math.min(this.maxRetryMs, this.firstRetryMs * 2 ** Math.min(this.retryAttempt, 30));
    this.retryAttempt++;
    this.retryAt = Date.now() + delay;
    this.retryDelay = delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = this.retryAt = this.retryDelay = undefined;
      this.retries++;
      this.resync();
    }, delay);
    this.retryTimer.unref();
  }
}
