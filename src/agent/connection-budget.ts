// How many proxied connections the agent may hold. Each one costs up to
// six descriptors (the client, the endpoint, and a pipe of two per
// direction while bytes are in flight), and the agent keeps headroom for its own work (xDS, admin, the
// pod netns scans, tunnel sessions, certificate renewals): running out of
// descriptors must end in refused connections, never in a crashed agent.
import * as fs from 'node:fs';
import type { ConnectionLimits } from '../proxy/budget-queues';

/** Descriptors one proxied connection may hold. */
export const DESCRIPTORS_PER_CONNECTION = 6;

/** Idle pipes each relay thread may keep (PipePool::kMaxFree in splice_relay.cc), two descriptors each. */
export const IDLE_PIPES_PER_RELAY_THREAD = 256;

/**
 * Descriptors kept for the agent's own work: 10 % of the limit, at least
 * 256, plus the relay threads' idle pipe pools.
 */
export function reservedDescriptors(limit: number, relayThreads = 1): number {
  return Math.max(256, Math.ceil(limit * 0.1)) + 2 * IDLE_PIPES_PER_RELAY_THREAD * relayThreads;
}

/**
 * The soft RLIMIT_NOFILE of this process, from /proc/self/limits
 * ("Max open files  <soft>  <hard>  files"); undefined when unknown or unlimited.
 */
export function openFilesLimit(limitsText = safeRead('/proc/self/limits')): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limitsText);
  const n = m ? Number(m[1]) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * The limits from the flags (0: derived). Derived: (descriptor limit -
 * reserve) / 6 in all, a quarter of that per source pod, at least 1 each.
 */
export function connectionLimits(maxConnections: number, maxPerWorkload: number, fdLimit = openFilesLimit(), relayThreads = 1): ConnectionLimits {
  const derived = fdLimit ? Math.max(1, Math.floor((fdLimit - reservedDescriptors(fdLimit, relayThreads)) / DESCRIPTORS_PER_CONNECTION)) : 100_000;
  const total = maxConnections > 0 ? maxConnections : derived;
  return { maxConnections: total, maxPerSource: maxPerWorkload > 0 ? maxPerWorkload : Math.max(1, Math.floor(total / 4)) };
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
