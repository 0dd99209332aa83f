// The splice relay's start leaves nothing behind when it fails half-way: run
// in a process whose descriptor table is full but for three slots, so the
// second of four workers cannot get its descriptors (a real EMFILE, no
// mock), and checked by counting that process's descriptors.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { fixtures } from '../helpers/sim-fixture';

describe('splice relay start', () => {
  it('a start that runs out of descriptors fails with EMFILE, leaks none, and can start again', () => {
    const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, path.join(fixtures, 'relay-start-failure.js')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { error: 'EMFILE', leaked: 0, startsAgain: true });
  });
});
