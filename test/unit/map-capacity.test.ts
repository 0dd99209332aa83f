// Admission against a map's capacity: whole resources or nothing.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MapCapacity } from '../../src/datapath/map-capacity';

describe('map capacity', () => {
  it('admits whole resources while they fit, refuses the one that does not, naming the map', () => {
    const c = new MapCapacity('sluice_vips', 5);
    assert.equal(c.admit('a', 2), undefined);
    assert.equal(c.admit('b', 2), undefined);
    assert.equal(c.admit('c', 2), 'does not fit in map sluice_vips: needs 2 entries, 1 of 5 free');
    assert.equal(c.entries, 4, 'nothing of c was counted');
    assert.equal(c.rejected, 1);
  });

  it('a resource that changes size is judged against what it held, and removal frees its entries', () => {
    const c = new MapCapacity('m', 4);
    c.admit('a', 3);
    assert.equal(c.admit('a', 4), undefined, 'growing into its own room');
    assert.match(c.admit('a', 5) ?? '', /needs 5 entries, 4 of 4 free/);
    assert.equal(c.entries, 4, 'a refused change keeps the old size');
    c.release('a');
    assert.equal(c.entries, 0);
    assert.equal(c.admit('b', 4), undefined);
  });
});
