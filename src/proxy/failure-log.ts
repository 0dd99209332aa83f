// Failures on the connection path are logged at most once per kind per
// interval: a flood (a pod opening thousands of denied connections, an
// endpoint that refuses every connect) must not flood the log or slow the
// proxy. What was held back is counted and reported with the next line.
import type { Logger } from 'pino';

export class FailureLog {
  /** Per kind: when its current interval started and how many lines it logged in it. */
  private readonly windows = new Map<string, { start: number; logged: number }>();
  private readonly suppressed = new Map<string, number>();
  /** Failures seen per kind since start, logged or not. */
  readonly counts = new Map<string, number>();

  /** `intervalMs`: at most `burst` lines per kind in this many milliseconds (default one). */
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
    private readonly burst = 1,
  ) {}

  /**
   * Records one failure of `kind` ("accept", "original destination",
   * "endpoint connect", "tunnel open", "relay hand-over", ...) and logs it
   * at `level` unless `burst` of that kind were logged in the current interval.
   */
  report(kind: string, fields: Record<string, unknown>, message: string, level: 'warn' | 'info' | 'debug' | 'error' = 'warn'): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const t = this.now();
    const w = this.windows.get(kind);
    if (w && t - w.start < this.intervalMs) {
      if (w.logged >= this.burst) {
        this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
        return;
      }
      w.logged++;
    } else this.windows.set(kind, { start: t, logged: 1 });
    const held = this.suppressed.get(kind) ?? 0;
    this.suppressed.delete(kind);
    this.logger[level]({ ...fields, kind, ...(held ? { suppressedSinceLast: held } : {}) }, message);
  }

  /** Failures per kind, for status and metrics. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
