// The map sync's bookkeeping: per-key failure status, retries with
// exponential backoff until the key is put right, drift repairs counted.
// The passes are fakes here; test/integration/agent.test.ts changes real map
// entries behind a running agent.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { MapSync } from '../../src/agent/map-sync';
import type { KeyFailure, ReconcileResult } from '../../src/datapath/reconciler';
import { until } from '../helpers/wait';

const logger = pino({ level: 'silent' });

function result(map: string, failures: Omit<KeyFailure, 'map'>[] = [], extra: Partial<ReconcileResult> = {}): ReconcileResult {
  return {
    map,
    updated: 0,
    deleted: 0,
    unchanged: 0,
    errors: failures.map((f) => `${f.op} ${map} ${f.key}: ${f.error}`),
    failures: failures.map((f) => ({ ...f, map })),
    ...extra,
  };
}

describe('map sync', () => {
  it('retries a failing key with a doubling backoff until a pass puts it right, then clears it', async () => {
    let failFor = 3;
    const backoffs: number[] = [];
    const sync: MapSync = new MapSync({
      resyncIntervalSeconds: 0,
      firstRetryMs: 50,
      maxRetryMs: 1000,
      logger,
      fullPass: () => {
        failFor--;
        return [result('sluice_vips', failFor > 0 ? [{ key: '10.96.0.10:80', op: 'update', error: 'E2BIG' }] : [], { updated: failFor > 0 ? 0 : 1 })];
      },
    });
    try {
      sync.record([result('sluice_vips', [{ key: '10.96.0.10:80', op: 'update', error: 'E2BIG' }])]);
      const first = sync.view();
      assert.equal(first.failingKeys, 1);
      assert.deepEqual(
        { map: first.failing[0].map, key: first.failing[0].key, op: first.failing[0].op, error: first.failing[0].error, passes: first.failing[0].passes },
        { map: 'sluice_vips', key: '10.96.0.10:80', op: 'update', error: 'E2BIG', passes: 1 },
      );
      backoffs.push(first.backoffMs!);
      const since = first.failing[0].since;
      // Watch each retry as it is scheduled.
      let seenRetries = 0;
      await until('the key put right', () => {
        if (sync.retries !== seenRetries) {
          seenRetries = sync.retries;
          const v = sync.view();
          if (v.backoffMs !== undefined) backoffs.push(v.backoffMs);
          if (v.failingKeys) {
            assert.equal(v.failing[0].since, since, 'a key failing on keeps the time it first failed');
            assert.equal(v.failing[0].passes, seenRetries + 1);
          }
        }
        return sync.view().failingKeys === 0;
      });
      assert.deepEqual(backoffs, [50, 100, 200]);
      assert.equal(sync.retries, 3);
      assert.equal(sync.view().nextRetryInMs, undefined, 'no retry waits once nothing fails');
      assert.equal(sync.repairs, 1, 'the entry written by the last retry counts as a repair');
    } finally {
      sync.stop();
    }
  });

  it('caps the backoff', async () => {
    const sync = new MapSync({
      resyncIntervalSeconds: 0,
      firstRetryMs: 10,
      maxRetryMs: 25,
      logger,
      fullPass: () => [result('sluice_strict', [{ key: 'ifindex 7', op: 'attach', error: 'EMFILE' }])],
    });
    try {
      sync.record([result('sluice_strict', [{ key: 'ifindex 7', op: 'attach', error: 'EMFILE' }])]);
      await until('three retries', () => sync.retries >= 3);
      assert.equal(sync.view().backoffMs, 25);
      assert.equal(sync.view().failing[0].passes, sync.retries + 1);
    } finally {
      sync.stop();
    }
  });

  it('an incremental pass replaces the failures of the keys it covered only; a full pass replaces the whole map', () => {
    const sync = new MapSync({ resyncIntervalSeconds: 0, firstRetryMs: 60_000, logger, fullPass: () => undefined });
    try {
      sync.record([result('sluice_vips', [{ key: 'service shop/a', op: 'update', error: 'map sluice_vips is full' }], { covered: ['service shop/a'] })]);
      sync.record([result('sluice_vips', [{ key: 'service shop/b', op: 'update', error: 'map sluice_vips is full' }], { covered: ['service shop/b'] })]);
      assert.deepEqual(sync.failingByMap(), { sluice_vips: 2 });
      sync.record([result('sluice_vips', [], { covered: ['service shop/a'] })]);
      assert.deepEqual(sync.view().failing.map((f) => f.key), ['service shop/b'], 'service a installed on its next update; b still fails');
      // A pass that did not run for a map (covered: nothing) leaves it alone.
      sync.record([result('sluice_vips', [], { covered: [] }), result('sluice_strict', [{ key: 'pod shop/a', op: 'attach', error: 'no interface' }])]);
      assert.deepEqual(sync.failingByMap(), { sluice_vips: 1, sluice_strict: 1 });
      // A whole-map pass says what fails in that map now.
      sync.record([result('sluice_vips')]);
      assert.deepEqual(sync.failingByMap(), { sluice_strict: 1 });
      assert.match(sync.lastReconcile.errors.join('\n'), /^$/, 'the last pass had no errors');
    } finally {
      sync.stop();
    }
  });

  it('a resync counts the entries it repairs, and a pass that cannot run changes nothing', () => {
    let runnable = false;
    const sync = new MapSync({
      resyncIntervalSeconds: 0,
      logger,
      fullPass: () => (runnable ? [result('sluice_vips', [], { updated: 2, deleted: 1 }), result('sluice_enroll')] : undefined),
    });
    try {
      sync.resync();
      assert.equal(sync.lastResync, '', 'not run while the maps are not the agent\'s');
      runnable = true;
      sync.resync();
      assert.equal(sync.repairs, 3);
      assert.notEqual(sync.lastResync, '');
    } finally {
      sync.stop();
    }
  });

  it('a full pass that throws is retried, and the error never escapes the timer', async () => {
    let calls = 0;
    const sync = new MapSync({
      resyncIntervalSeconds: 0,
      firstRetryMs: 10,
      logger,
      fullPass: () => {
        calls++;
        if (calls < 3) throw new Error('EMFILE: too many open files');
        return [result('sluice_vips')];
      },
    });
    try {
      sync.resync();
      assert.deepEqual(sync.view().failing.map((f) => [f.map, f.key, f.error]), [['*', '(whole map)', 'EMFILE: too many open files']], 'a pass that cannot run is shown failing');
      await until('a pass that runs', () => calls >= 3);
      await until('no retry waiting', () => sync.view().nextRetryInMs === undefined);
      assert.equal(sync.view().failingKeys, 0);
      assert.equal(sync.retries, 2);
    } finally {
      sync.stop();
    }
  });

  it('a key that newly fails is tried within the first delay, not after the backoff other keys grew', async () => {
    const old = () => result('sluice_strict', [{ key: 'ifindex 7', op: 'attach', error: 'EPERM' }]);
    const sync = new MapSync({ resyncIntervalSeconds: 0, firstRetryMs: 20, maxRetryMs: 400, logger, fullPass: () => [old()] });
    try {
      sync.record([old()]);
      await until('the old key\'s backoff at its cap', () => sync.view().backoffMs === 400);
      sync.record([result('sluice_strict', [{ key: 'ifindex 7', op: 'attach', error: 'EPERM' }, { key: 'ifindex 9', op: 'attach', error: 'EMFILE' }])]);
      assert.equal(sync.view().backoffMs, 20, 'the new key is retried within the first delay');
    } finally {
      sync.stop();
    }
  });

  it('schedules nothing once stopped', () => {
    const sync = new MapSync({ resyncIntervalSeconds: 0, firstRetryMs: 10, logger, fullPass: () => [result('sluice_vips', [{ key: '10.96.0.10:80', op: 'update', error: 'E2BIG' }])] });
    sync.stop();
    sync.record([result('sluice_vips', [{ key: '10.96.0.10:80', op: 'update', error: 'E2BIG' }])]);
    sync.resync();
    assert.equal(sync.view().nextRetryInMs, undefined, 'no retry timer after stop()');
    assert.equal(sync.view().failingKeys, 1, 'what fails is still known');
  });
});
