import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdAllocator, desiredState, workloadVipEntries } from '../../src/datapath/desired-state';
import { IPPROTO_TCP, VIP_F_WORKLOAD } from '../../src/datapath/map-codecs';
import { ServiceIndex } from '../../src/proxy/service-index';
import { defaultLoadBalancing, type Snapshot, type Workload } from '../../src/model/resources';

const w = (uid: string, node: string, captured: boolean): Workload => ({
  uid,
  name: uid,
  namespace: 'a',
  node,
  ips: ['10.244.1.2'],
  serviceAccount: 'default',
  labels: {},
  identity: `spiffe://cluster.local/ns/a/sa/default`,
  captured,
  ready: true,
  nodeAddress: '',
});

const snapshot: Snapshot = {
  version: '1',
  workloads: [w('here', 'node-1', true), w('not-captured', 'node-1', false), w('elsewhere', 'node-2', true), w('no-netns', 'node-1', true)],
  services: [
    { name: 'web', namespace: 'a', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'https', port: 443, targetPort: 8443 }], endpoints: [], loadBalancing: defaultLoadBalancing },
    { name: 'db', namespace: 'a', clusterIPs: ['10.96.0.11', '::ffff:10.96.0.12'], ports: [{ name: '', port: 5432, targetPort: 5432 }], endpoints: [], loadBalancing: defaultLoadBalancing },
  ],
};

const cookies: Record<string, bigint> = { here: 11n, 'not-captured': 12n, elsewhere: 13n };

describe('desired map contents from a snapshot', () => {
  it('enrolls the captured workloads of this node that have a known netns', () => {
    const d = desiredState(snapshot, 'node-1', (uid) => cookies[uid], new IdAllocator(), new IdAllocator());
    assert.deepEqual([...d.enrollments.keys()], [11n]);
    assert.equal(d.enrollments.get(11n)?.workloadId, 1);
  });

  it('has one VIP entry per cluster IP and port, all TCP, and one per meshed workload address', () => {
    const d = desiredState(snapshot, 'node-1', (uid) => cookies[uid], new IdAllocator(), new IdAllocator());
    const serviceKeys = [...d.vips.keys()].filter((k) => !k.startsWith('workload/'));
    const all = serviceKeys.flatMap((k) => d.vips.get(k) ?? []);
    assert.deepEqual(serviceKeys, ['a/web', 'a/db']);
    // Meshed workloads on every node, with or without a known netns; not the one outside the mesh.
    assert.deepEqual([...d.vips.keys()].filter((k) => k.startsWith('workload/')), ['workload/here', 'workload/elsewhere', 'workload/no-netns']);
    assert.deepEqual(
      all.map((v) => `${v.key.address}:${v.key.port}/${v.value.serviceId}`),
      ['10.96.0.10:80/1', '10.96.0.10:443/1', '10.96.0.11:5432/2', '::ffff:10.96.0.12:5432/2'],
    );
    assert.ok(all.every((v) => v.key.proto === IPPROTO_TCP));
  });

  it('keeps ids stable across recomputations', () => {
    const wIds = new IdAllocator();
    const sIds = new IdAllocator();
    const a = desiredState(snapshot, 'node-1', (uid) => cookies[uid], wIds, sIds);
    const reordered = { ...snapshot, services: [...snapshot.services].reverse() };
    const b = desiredState(reordered, 'node-1', (uid) => cookies[uid], wIds, sIds);
    const ids = (d: typeof a) => Object.fromEntries([...d.vips.values()].flat().map((v) => [`${v.key.address}:${v.key.port}`, v.value.serviceId]));
    assert.deepEqual(ids(a), ids(b));
  });
});

describe('meshed pods\' own addresses', () => {
  const pod = (over: Partial<Workload>): Workload => ({
    uid: 'u', name: 'api', namespace: 'shop', node: 'node-2', ips: ['10.244.2.5'], serviceAccount: 'api', labels: {},
    identity: 'spiffe://cluster.local/ns/shop/sa/api', captured: true, ready: true, nodeAddress: '10.250.0.2', ...over,
  });

  it('are captured on any port, flagged as a workload, so policy applies to direct pod-IP connections', () => {
    assert.deepEqual(workloadVipEntries(pod({})), [{ key: { address: '10.244.2.5', port: 0, proto: IPPROTO_TCP }, value: { serviceId: 0, flags: VIP_F_WORKLOAD } }]);
  });

  it('never for a pod outside the mesh, an IPv6 address, or a host-network pod on its node address', () => {
    assert.deepEqual(workloadVipEntries(pod({ captured: false })), []);
    assert.deepEqual(workloadVipEntries(pod({ ips: ['fd00::5'] })), []);
    assert.deepEqual(workloadVipEntries(pod({ ips: ['10.250.0.2'] })), []);
  });

  it('the proxy resolves such an address to that pod alone, at the dialled port', () => {
    const index = ServiceIndex.of([], [pod({})]);
    const t = index.target('10.244.2.5', 9090);
    assert.equal(t?.service.endpoints.length, 1);
    assert.deepEqual({ port: t?.port.port, targetPort: t?.port.targetPort, endpoint: t?.service.endpoints[0].address }, { port: 9090, targetPort: 9090, endpoint: '10.244.2.5' });
    assert.equal(ServiceIndex.of([], [pod({ captured: false })]).target('10.244.2.5', 9090), undefined);
  });
});

