// The node's workloads as the data path sees them: enrolled ones by netns
// cookie, local ones by IP, and the enrollment record (when, and the
// connections the pod had open then).
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { NodeWorkloads } from '../../src/agent/node-workloads';
import type { Workload } from '../../src/model/resources';

function workload(name: string, node: string, ip: string, captured = true): Workload {
  return { uid: `uid-${name}`, name, namespace: 'shop', node, ips: [ip], serviceAccount: 'default', labels: {}, identity: captured ? `spiffe://cluster.local/ns/shop/sa/${name}` : '', captured, ready: true, nodeAddress: '' };
}

describe('NodeWorkloads', () => {
  it('indexes this node\'s workloads, enrolls the meshed ones whose netns is known, and records when', async () => {
    const cookies = new Map<string, bigint>([['uid-a', 11n], ['uid-plain', 13n]]);
    const nw = new NodeWorkloads({
      node: 'node-1',
      cookieOf: (uid) => cookies.get(uid),
      establishedConnections: async (uid) => (uid === 'uid-a' ? 3 : 0),
      logger: pino({ level: 'silent' }),
    });
    const all = [workload('a', 'node-1', '10.244.1.2'), workload('b', 'node-1', '10.244.1.3'), workload('plain', 'node-1', '10.244.1.4', false), workload('far', 'node-2', '10.244.2.2')];
    nw.refresh(all);
    assert.deepEqual([...nw.byCookie].map(([c, w]) => [c, w.name]), [[11n, 'a']], 'b has no known netns yet; plain is not meshed');
    assert.deepEqual([...nw.byIp.keys()].sort(), ['10.244.1.2', '10.244.1.3', '10.244.1.4'], 'every local pod, meshed or not');
    assert.deepEqual(nw.identities(all), ['spiffe://cluster.local/ns/shop/sa/a', 'spiffe://cluster.local/ns/shop/sa/b'], 'a certificate for each local meshed identity, enrolled or not yet');
    assert.equal(nw.isEnrolled('uid-a'), true);
    const since = nw.enrolledSince.get('uid-a')!.at;
    await new Promise((r) => setImmediate(r));
    assert.equal(nw.enrolledSince.get('uid-a')!.preexistingConnections, 3);

    cookies.set('uid-b', 12n);
    nw.refresh(all);
    assert.equal(nw.enrolledSince.get('uid-a')!.at, since, 'an enrolled workload keeps its record');
    assert.equal(nw.isEnrolled('uid-b'), true);

    nw.refresh(all.filter((w) => w.name !== 'a'));
    assert.equal(nw.isEnrolled('uid-a'), false, 'a workload gone leaves the mesh');
    assert.equal(nw.byIp.has('10.244.1.2'), false);
  });
});
