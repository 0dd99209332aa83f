// Dead-peer detection for tunnel sessions. The node proxy answers its
// clients' keepalive probes itself, so when the other node goes silent (a
// crash, a pulled link) only the proxy can notice: each session sends an
// HTTP/2 PING every interval and is destroyed when one stays unanswered,
// which resets every stream on it (their clients see ECONNRESET) and drops
// it from the pool so new connections open a fresh session.
import type * as http2 from 'node:http2';

export interface LivenessSettings {
  /** Time between PINGs on a session, ms. */
  pingIntervalMs: number;
  /** How long a PING may stay unanswered before the session is declared dead, ms. */
  pingTimeoutMs: number;
}

export const DEFAULT_LIVENESS: LivenessSettings = Object.freeze({ pingIntervalMs: 5000, pingTimeoutMs: 5000 });

/** Worst case, in ms, between a peer going silent and its session being destroyed. */
export function livenessDetectionMs(s: LivenessSettings): number {
  return s.pingIntervalMs + s.pingTimeoutMs;
}

/**
 * Starts PINGing `session` until it closes; `onDead` runs once, just before
 * the session is destroyed for an unanswered PING.
 */
export function watchLiveness(session: http2.Http2Session, settings: LivenessSettings, onDead: (err: Error) => void): void {
  let deadline: NodeJS.Timeout | undefined;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed || deadline) return;
    deadline = setTimeout(() => {
      const err = new Error(`tunnel peer did not answer a PING within ${settings.pingTimeoutMs} ms`);
      onDead(err);
      session.destroy(err);
    }, settings.pingTimeoutMs);
    deadline.unref();
    const answered = () => {
      clearTimeout(deadline);
      deadline = undefined;
    };
    try {
      if (!session.ping((err) => (err ? undefined : answered()))) answered();
    } catch {
      answered(); // the session is closing; its own close handling takes over
    }
  }, settings.pingIntervalMs);
  timer.unref();
  session.once('close', () => {
    clearInterval(timer);
    if (deadline) clearTimeout(deadline);
  });
}
