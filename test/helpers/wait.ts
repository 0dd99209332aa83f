// Polling until a condition holds, for tests that watch timers and
// background work run their course.

/**
 * Resolves once `condition()` is true, checking every `intervalMs`; rejects
 * with "timed out waiting for <what>" after `timeoutMs`.
 */
export async function until(what: string, condition: () => boolean, timeoutMs = 5000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
