// PeerAuthentication's kernel state follows the configuration and nothing
// else: an interface that cannot be resolved (EMFILE under descriptor
// pressure) never turns STRICT off for any pod. The datapath is a fake here;
// test/e2e/strict.test.ts drives the real filter.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerAuthenticationEnforcer, type StrictDatapath } from '../../src/agent/peer-authentication';
import type { StrictEntry } from '../../src/datapath/map-codecs';
import type { PeerAuthentication } from '../../src/model/policy';
import type { Workload } from '../../src/model/resources';

function workload(name: string, namespace = 'shop'): Workload {
  return { uid: `uid-${name}`, name, namespace, node: 'node-1', ips: ['10.244.1.5'], serviceAccount: 'default', labels: { app: name }, identity: '', captured: true, ready: true, nodeAddress: '' };
}

function fakeDatapath(unattached = new Set<number>(), attaching = new Set<number>()) {
  const map = new Map<number, StrictEntry>();
  const dp: StrictDatapath & { map: typeof map; retries: boolean[] } = {
    map,
    retries: [],
    applyStrict(entries, options) {
      dp.retries.push(options?.retryFailed ?? false);
      const deleted = [...map.keys()].filter((k) => !entries.has(k)).length;
      map.clear();
      for (const [k, v] of entries) map.set(k, v);
      return { map: 'sluice_strict', updated: entries.size, deleted, unchanged: 0, errors: [], failures: [] };
    },
    addStrict(entries) {
      for (const [k, v] of entries) map.set(k, v);
      return { map: 'sluice_strict', updated: entries.size, deleted: 0, unchanged: 0, errors: [], failures: [] };
    },
    strictFilter: (ifindex) =>
      unattached.has(ifindex)
        ? { state: 'failed', error: `attach tc to ifindex ${ifindex}: Operation not permitted (EPERM)` }
        : attaching.has(ifindex)
          ? { state: 'attaching' }
          : { state: 'attached' },
  };
  return dp;
}

const strict: PeerAuthentication = { name: 'default', namespace: 'shop', mode: 'STRICT' };
const interfaces: Record<string, string> = { 'uid-a': 'veth-a', 'uid-b': 'veth-b' };
const indexes: Record<string, number> = { 'veth-a': 11, 'veth-b': 12 };

describe('PeerAuthenticationEnforcer', () => {
  it('STRICT drops, PERMISSIVE counts, DISABLE attaches nothing; entries allow only the node address', () => {
    const dp = fakeDatapath();
    const enforcer = new PeerAuthenticationEnforcer({ datapath: dp, hostInterfaceOf: (uid) => interfaces[uid], interfaceIndex: (n) => indexes[n], allowedAddress: '10.244.1.1' });
    enforcer.apply([workload('a'), workload('b', 'other')], [strict]);
    assert.deepEqual([...dp.map], [[11, { allowedAddress: '10.244.1.1', flags: 0 }], [12, { allowedAddress: '10.244.1.1', flags: 1 }]]);
    enforcer.apply([workload('a')], [strict, { name: 'off', namespace: 'shop', mode: 'DISABLE', selector: { app: 'a' } }]);
    assert.equal(dp.map.size, 0, 'DISABLE for the pod, and the other pod gone: nothing left');
  });

  it('an interface that cannot be resolved any more keeps its STRICT entry, and a pass with an error removes nothing', () => {
    const dp = fakeDatapath();
    let pressure = false;
    const enforcer = new PeerAuthenticationEnforcer({
      datapath: dp,
      hostInterfaceOf: (uid) => interfaces[uid],
      interfaceIndex: (n) => {
        if (pressure) throw new Error(`interface ${n}: Too many open files (EMFILE)`);
        return indexes[n];
      },
      allowedAddress: '10.244.1.1',
    });
    enforcer.apply([workload('a')], [strict]);
    pressure = true;
    const r = enforcer.apply([workload('a'), workload('b')], [strict]);
    assert.match(r.errors.join('\n'), /STRICT for shop\/b: interface veth-b: Too many open files/);
    assert.deepEqual(dp.map.get(11), { allowedAddress: '10.244.1.1', flags: 0 }, 'pod a keeps STRICT: its index was resolved before');
    assert.equal(enforcer.notEnforced.get('uid-b'), 'STRICT cannot be enforced: interface veth-b: Too many open files (EMFILE)');
    const withoutA = enforcer.apply([workload('b')], [strict]);
    assert.equal(withoutA.deleted, 0, 'an erring pass removes nothing');
    assert.ok(dp.map.has(11));
  });

  it('names the pods whose STRICT is not in place: no interface reported, or no filter attached', () => {
    const dp = fakeDatapath(new Set([11]));
    const enforcer = new PeerAuthenticationEnforcer({ datapath: dp, hostInterfaceOf: (uid) => (uid === 'uid-a' ? 'veth-a' : undefined), interfaceIndex: (n) => indexes[n], allowedAddress: '10.244.1.1' });
    enforcer.apply([workload('a'), workload('b')], [strict]);
    assert.deepEqual([...enforcer.notEnforced], [
      ['uid-b', 'STRICT for shop/b: its host-side interface is unknown (the CNI step did not report it)'],
      ['uid-a', 'STRICT cannot be enforced: attach tc to ifindex 11: Operation not permitted (EPERM)'],
    ]);
  });

  it('a pod whose filter is being attached is not enforced yet; failed filters are tried again only when asked', () => {
    const attaching = new Set([11]);
    const dp = fakeDatapath(new Set(), attaching);
    const enforcer = new PeerAuthenticationEnforcer({ datapath: dp, hostInterfaceOf: (uid) => interfaces[uid], interfaceIndex: (n) => indexes[n], allowedAddress: '10.244.1.1' });
    enforcer.apply([workload('a'), workload('b')], [strict]);
    assert.deepEqual([...enforcer.notEnforced], [['uid-a', 'STRICT is not enforced yet: its tc filter is being attached']], 'sluice-cni waits for it; the inbound capture refuses its plaintext');
    attaching.clear();
    enforcer.apply([workload('a'), workload('b')], [strict], { retryFailed: true });
    assert.deepEqual([...enforcer.notEnforced], []);
    assert.deepEqual(dp.retries, [false, true], 'retryFailed reaches the datapath');
  });

  it('a pod whose strict map entry could not be written is not enforced (the filter lets plaintext through without it)', () => {
    const dp = fakeDatapath();
    dp.applyStrict = (entries) => ({
      map: 'sluice_strict', updated: entries.size - 1, deleted: 0, unchanged: 0,
      errors: ['update sluice_strict ifindex 12: No space left on device (ENOSPC)'],
      failures: [{ map: 'sluice_strict', key: 'ifindex 12', op: 'update', error: 'No space left on device (ENOSPC)' }],
    });
    const enforcer = new PeerAuthenticationEnforcer({ datapath: dp, hostInterfaceOf: (uid) => interfaces[uid], interfaceIndex: (n) => indexes[n], allowedAddress: '10.244.1.1' });
    enforcer.apply([workload('a'), workload('b')], [strict]);
    assert.deepEqual([...enforcer.notEnforced], [['uid-b', 'STRICT cannot be enforced: its sluice_strict entry could not be written: No space left on device (ENOSPC)']]);
  });
});
