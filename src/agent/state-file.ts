// The last good state from the control plane, persisted so that an agent
// restarting while the control plane is away comes up serving. It is kept in
// the wire form (each resource's version and protobuf bytes, one JSON line
// per resource): lines are built when a resource arrives, so saving is a
// join and an asynchronous write, never a walk over the whole state. Read
// back through the same codecs and validation as any pushed resource.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicAsync } from '../files/atomic-write';

const FILE = 'state.jsonl';
const FORMAT = 'sluice-state/v1';

export interface StateHeader {
  format: string;
  version: string;
  savedAt: string;
}

export interface StateEntry {
  /** type URL */
  t: string;
  /** resource name */
  n: string;
  /** resource version */
  v: string;
  /** protobuf bytes, base64 */
  b: string;
}

/** One line of the state file: the entry as JSON, no newline. */
export function stateLine(e: StateEntry): string {
  return JSON.stringify(e);
}

const BATCH = 500;

/**
 * Writes header + lines in small batches (the proxy's event loop keeps
 * turning between them), atomically and durably (src/files/atomic-write.ts).
 */
export async function writeState(dir: string, version: string, lines: Iterable<string>): Promise<void> {
  const header: StateHeader = { format: FORMAT, version, savedAt: new Date().toISOString() };
  function* chunks(): Iterable<string> {
    yield `${JSON.stringify(header)}\n`;
    let batch: string[] = [];
    for (const line of lines) {
      batch.push(line);
      if (batch.length === BATCH) {
        yield `${batch.join('\n')}\n`;
        batch = [];
      }
    }
    if (batch.length) yield `${batch.join('\n')}\n`;
  }
  await writeFileAtomicAsync(path.join(dir, FILE), chunks());
}

/** undefined when nothing was saved; throws when a file exists but cannot be used. */
export function readState(dir: string): { header: StateHeader; entries: StateEntry[] } | undefined {
  const file = path.join(dir, FILE);
  if (!fs.existsSync(file)) return undefined;
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const header = JSON.parse(lines[0] ?? '{}') as StateHeader;
  if (header.format !== FORMAT) throw new Error(`${file}: not a ${FORMAT} file (format ${JSON.stringify(header.format)})`);
  const entries: StateEntry[] = [];
  for (const [i, line] of lines.slice(1).entries()) {
    try {
      const e = JSON.parse(line) as StateEntry;
      if (typeof e.t === 'string' && typeof e.n === 'string' && typeof e.b === 'string') entries.push(e);
    } catch {
      throw new Error(`${file}: line ${i + 2} is not valid JSON`);
    }
  }
  return { header, entries };
}
