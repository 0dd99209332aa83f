// Failures on the connection path are logged at most once per kind per
// interval: a flood (a pod opening thousands of denied connections, an
// endpoint that refuses every connect) must not flood the log or slow the
// proxy. What was held back is counted and reported with the next line.
import type { Logger } from 'pino';

export class FailureLog {
  private readonly lastLogged = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  /** Failures seen per kind since start, logged or not. */
  readonly counts = new Map<string, number>();

  /** `intervalMs`: at most one line per kind in this many milliseconds. */
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records one failure of `kind` ("accept", "original destination",
   * "endpoint connect", "tunnel open", "relay hand-over", ...) and logs it
   * at `level` unless one of that kind was logged less than the interval ago.
   */
  report(kind: string, fields: Record<string, unknown>, message: string, level: 'warn' | 'info' | 'debug' | 'error' = 'warn'): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const t = this.now();
    const last = this.lastLogged.get(kind);
    if (last !== undefined && t - last < this.intervalMs) {
      this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
      return;
    }
    const held = this.suppressed.get(kind) ?? 0;
    this.suppressed.delete(kind);
    this.lastLogged.set(kind, t);
    this.logger[level]({ ...fields, kind, ...(held ? { suppressedSinceLast: held } : {}) }, message);
  }

  /** Failures per kind, for status and metrics. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
