import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { writeFileAtomic, writeFileAtomicAsync } from '../../src/files/atomic-write';

describe('atomic write', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-atomic-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('replaces the file, creates the directory, sets the mode exactly and leaves no temporary file', async () => {
    const file = path.join(dir, 'sub', 'a.json');
    const umask = process.umask(0o077);
    try {
      writeFileAtomic(file, 'one', { mode: 0o644 });
    } finally {
      process.umask(umask);
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'one');
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    writeFileAtomic(file, Buffer.from('two'), { mode: 0o600 });
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    await writeFileAtomicAsync(file, ['th', 'ree']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'three');
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['a.json']);
  });

  it('leaves the old content and no temporary file when writing fails', async () => {
    const file = path.join(dir, 'b.json');
    writeFileAtomic(file, 'old');
    const failing = (function* () {
      yield 'new';
      throw new Error('producer failed');
    })();
    await assert.rejects(writeFileAtomicAsync(file, failing), /producer failed/);
    assert.throws(() => writeFileAtomic(file, 42 as unknown as string));
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('b.json')), ['b.json']);
  });
});
