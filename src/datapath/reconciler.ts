// Makes a kernel map hold exactly the desired entries: writes what is missing
// or different, deletes what should not be there. Idempotent; after an agent
// restart the first pass replays everything against the pinned maps.

export interface RawMap {
  readonly name: string;
  entriesRaw(): { key: Buffer; value: Buffer }[];
  updateRaw(key: Buffer, value: Buffer): void;
  deleteRaw(key: Buffer): boolean;
}

export interface ReconcileResult {
  map: string;
  updated: number;
  deleted: number;
  unchanged: number;
  errors: string[];
}

/**
 * Makes `map` hold exactly `desired` (raw keys and values): writes what is
 * missing or different, deletes the rest. A failed write or delete is
 * reported in `errors` (naming the map and the key in hex) and the pass
 * goes on with the other entries; never throws for one entry.
 */
export function reconcileMap(map: RawMap, desired: { key: Buffer; value: Buffer }[]): ReconcileResult {
  const result: ReconcileResult = { map: map.name, updated: 0, deleted: 0, unchanged: 0, errors: [] };
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
      result.errors.push(`update ${map.name} ${hex}: ${(err as Error).message}`);
    }
  }
  for (const [hex] of have) {
    if (want.has(hex)) continue;
    try {
      if (map.deleteRaw(Buffer.from(hex, 'hex'))) result.deleted++;
    } catch (err) {
      result.errors.push(`delete ${map.name} ${hex}: ${(err as Error).message}`);
    }
  }
  return result;
}
