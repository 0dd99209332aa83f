import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Endpoint } from '../../src/model/resources';
import { EndpointStats, endpointKey, pickEndpoint } from '../../src/proxy/endpoint-picker';

const ep = (address: string, ready = true): Endpoint => ({ workloadUid: address, address, node: 'node-1', ready });
const none = new Set<string>();

function seq(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

describe('endpoint choice (power of two choices, least request)', () => {
  it('picks the less loaded of two random candidates', () => {
    const stats = new EndpointStats();
    const eps = [ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.0.3')];
    for (let i = 0; i < 5; i++) stats.opened(endpointKey('10.0.0.1', 80));
    // random picks index 0 then (0 -> shifted past i) 1: candidates .1 and .2
    const chosen = pickEndpoint(eps, 80, none, stats, 0, seq(0, 0));
    assert.equal(chosen?.address, '10.0.0.2');
  });

  it('never returns an endpoint that is not ready or already tried', () => {
    const stats = new EndpointStats();
    const eps = [ep('10.0.0.1', false), ep('10.0.0.2'), ep('10.0.0.3')];
    const tried = new Set([endpointKey('10.0.0.2', 80)]);
    for (let i = 0; i < 50; i++) assert.equal(pickEndpoint(eps, 80, tried, stats, 0)?.address, '10.0.0.3');
    tried.add(endpointKey('10.0.0.3', 80));
    assert.equal(pickEndpoint(eps, 80, tried, stats, 0), undefined);
  });

  it('avoids an ejected endpoint while another is available, and uses it as a last resort', () => {
    const stats = new EndpointStats(1000);
    const eps = [ep('10.0.0.1'), ep('10.0.0.2')];
    stats.connectFailed(endpointKey('10.0.0.1', 80), 0);
    for (let i = 0; i < 50; i++) assert.equal(pickEndpoint(eps, 80, none, stats, 500)?.address, '10.0.0.2');
    const onlyEjected = new Set([endpointKey('10.0.0.2', 80)]);
    assert.equal(pickEndpoint(eps, 80, onlyEjected, stats, 500)?.address, '10.0.0.1');
    // ejection ends after its time
    assert.equal(stats.ejected(endpointKey('10.0.0.1', 80), 1001), false);
  });

  it('doubles the ejection time on consecutive failures and forgets them on success', () => {
    const stats = new EndpointStats(100, 1000);
    const k = endpointKey('10.0.0.1', 80);
    stats.connectFailed(k, 0);
    stats.connectFailed(k, 0);
    stats.connectFailed(k, 0);
    assert.equal(stats.ejected(k, 399), true);
    assert.equal(stats.ejected(k, 401), false);
    stats.connectSucceeded(k);
    stats.connectFailed(k, 0);
    assert.equal(stats.ejected(k, 101), false);
  });

  it('spreads load over all endpoints', () => {
    const stats = new EndpointStats();
    const eps = [ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.0.3'), ep('10.0.0.4')];
    const count = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const e = pickEndpoint(eps, 80, none, stats, 0)!;
      stats.opened(endpointKey(e.address, 80));
      count.set(e.address, (count.get(e.address) ?? 0) + 1);
    }
    // With every connection kept open, least-request keeps them within a few of each other.
    const values = [...count.values()];
    assert.equal(values.length, 4);
    assert.ok(Math.max(...values) - Math.min(...values) <= 10, JSON.stringify([...count]));
  });
});
