// The one way sluice replaces a file: every binary (agent, control plane,
// sluice-cni, sim) writes state, certificates, pod records and conflists
// through here. Node built-ins only, so sluice-cni may use it.
//
// Guarantee: the content goes to a temporary file beside the target (same
// directory, so the rename stays on one filesystem), which is given exactly
// `mode`, written, fsync'd, renamed over the target, and then the directory
// is fsync'd. Readers see the old content or the new, never a part; once the
// call returns, the new content survives a crash or power loss. On failure
// the temporary file is removed and the target is left as it was.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** Permission bits of the file, applied exactly (not filtered by the umask). Default 0o644. */
  mode?: number;
}

/** A hidden name beside `file` that no reader of `*.json`, `*.pem` or `*.conflist` picks up. */
function temporaryName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Replaces `file` with `data` atomically and durably (see the guarantee at
 * the top of this file). Creates the parent directory when missing.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const mode = options.mode ?? 0o644;
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = temporaryName(file);
  try {
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  syncDirectory(dir);
}

/**
 * The same as writeFileAtomic without blocking the event loop; `data` may be
 * an iterable of chunks, written one after the other (large state files).
 */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array | Iterable<string>, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  const dir = path.dirname(file);
  await fs.promises.mkdir(dir, { recursive: true });
  const tmp = temporaryName(file);
  try {
    const handle = await fs.promises.open(tmp, 'wx', mode);
    try {
      await handle.chmod(mode);
      if (typeof data === 'string' || data instanceof Uint8Array) await handle.writeFile(data);
      else for (const chunk of data) await handle.write(chunk);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await fs.promises.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Makes a rename in `dir` durable. */
function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
