import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconcileMap, type RawMap } from '../../src/datapath/reconciler';

class FakeMap implements RawMap {
  readonly name = 'fake';
  readonly data = new Map<string, Buffer>();
  writes = 0;
  failOn?: string;
  entriesRaw() {
    return [...this.data].map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: v }));
  }
  updateRaw(key: Buffer, value: Buffer) {
    if (key.toString('hex') === this.failOn) throw new Error('E2BIG');
    this.writes++;
    this.data.set(key.toString('hex'), value);
  }
  deleteRaw(key: Buffer) {
    return this.data.delete(key.toString('hex'));
  }
}

const e = (k: string, v: string) => ({ key: Buffer.from(k, 'hex'), value: Buffer.from(v, 'hex') });

describe('map reconciler', () => {
  it('writes what is missing or different and deletes what should not be there', () => {
    const m = new FakeMap();
    m.data.set('01', Buffer.from('aa', 'hex'));
    m.data.set('02', Buffer.from('bb', 'hex'));
    m.data.set('03', Buffer.from('cc', 'hex'));
    const r = reconcileMap(m, [e('01', 'aa'), e('02', 'b0'), e('04', 'dd')]);
    assert.deepEqual({ updated: r.updated, deleted: r.deleted, unchanged: r.unchanged }, { updated: 2, deleted: 1, unchanged: 1 });
    assert.deepEqual(Object.fromEntries([...m.data].map(([k, v]) => [k, v.toString('hex')])), { '01': 'aa', '02': 'b0', '04': 'dd' });
  });

  it('is idempotent: a second pass writes nothing', () => {
    const m = new FakeMap();
    reconcileMap(m, [e('01', 'aa'), e('02', 'bb')]);
    const writes = m.writes;
    const r = reconcileMap(m, [e('01', 'aa'), e('02', 'bb')]);
    assert.equal(m.writes, writes);
    assert.equal(r.unchanged, 2);
  });

  it('reports a failed write and still applies the rest', () => {
    const m = new FakeMap();
    m.failOn = '02';
    const r = reconcileMap(m, [e('01', 'aa'), e('02', 'bb'), e('03', 'cc')]);
    assert.equal(r.updated, 2);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0], /update fake 02: E2BIG/);
  });
});
