// Makes a kernel map hold exactly the desired entries: writes what is missing
// or different, deletes what should not be there. Idempotent; after an agent
// restart the first pass replays everything against the pinned maps.

export interface RawMap {
  readonly name: string;
  entriesRaw(): { key: Buffer; value: Buffer }[];
  updateRaw(key: Buffer, value: Buffer): void;
  deleteRaw(key: Buffer): boolean;
}

/** The key of a failure that concerns a whole map (it could not be read or written at all). */
export const WHOLE_MAP = '(whole map)';

/** One key a pass could not put right: the map, the key as a person reads it, what failed. */
export interface KeyFailure {
  map: string;
  /** The key decoded ("10.96.0.10:80", "ifindex 7"), or in hex when no describer was given. */
  key: string;
  /** The step that failed: writing the entry, deleting it, or what the entry needs besides (a tc filter). */
  op: 'update' | 'delete' | 'attach';
  error: string;
}

/**
 * What one pass over a map did. `errors` are whole sentences for logs and
 * status; `failures` are the same per key, for the map sync's per-key status
 * and retries (map-sync-status.ts).
 */
export interface ReconcileResult {
  map: string;
  updated: number;
  deleted: number;
  unchanged: number;
  errors: string[];
  failures: KeyFailure[];
  /**
   * Set for a pass over some keys only (an incremental update of a few
   * services): the keys it spoke for. Absent: the pass covered the whole map.
   */
  covered?: string[];
}

/**
 * Makes `map` hold exactly `desired` (raw keys and values): writes what is
 * missing or different, deletes the rest. A failed write or delete is
 * reported in `errors` and `failures` (naming the map and the key, decoded
 * by `describeKey` or else in hex) and the pass goes on with the other
 * entries; never throws for one entry. Throws only when the map cannot be
 * read at all.
 */
export function reconcileMap(map: RawMap, desired: { key: Buffer; value: Buffer }[], describeKey: (key: Buffer) => string = (k) => k.toString('hex')): ReconcileResult {
  const result: ReconcileResult = { map: map.name, updated: 0, deleted: 0, unchanged: 0, errors: [], failures: [] };
  const fail = (op: KeyFailure['op'], key: Buffer, err: unknown) => {
    const failure: KeyFailure = { map: map.name, key: describeKey(key), op, error: (err as Error).message };
    result.failures.push(failure);
    result.errors.push(`${op} ${map.name} ${failure.key}: ${failure.error}`);
  };
  const want = new Map<string, { key: Buffer; value: Buffer }>();
  for (const e of desired) want.set(e.key.toString('hex'), e);
  const have = new Map<string, Buffer>();
  for (const e of map.entriesRaw()) have.set(e.key.toString('hex'), e.value);

  for (const [hex, e] of want) {
    const current = have.get(hex);
    if (current && current.equals(e.value)) {
      result.unchanged++;
      continue;
    }
    try {
      map.updateRaw(e.key, e.value);
      result.updated++;
    } catch (err) {
      fail('update', e.key, err);
    }
  }
  for (const [hex] of have) {
    if (want.has(hex)) continue;
    const key = Buffer.from(hex, 'hex');
    try {
      if (map.deleteRaw(key)) result.deleted++;
    } catch (err) {
      fail('delete', key, err);
    }
  }
  return result;
}
