// Which pods need their plaintext inbound judged by the node proxy, and the
// capture's fail-closed order: the map entry before the listener, the entry
// kept while a listener cannot be opened, and removed only when the
// configuration says so. The kernel side is the e2e test's
// (test/e2e/inbound-plaintext.test.ts); here the datapath is a fake.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import pino from 'pino';
import { InboundCapture, desiredInboundPods, type InboundPod } from '../../src/agent/inbound-capture';
import type { InboundEntry } from '../../src/datapath/map-codecs';
import type { AuthorizationPolicy, PeerAuthentication } from '../../src/model/policy';
import type { Workload } from '../../src/model/resources';
import { PolicySet } from '../../src/proxy/authorization';

const logger = pino({ level: 'silent' });

function workload(name: string, labels: Record<string, string>, ips = ['10.244.1.5'], namespace = 'shop'): Workload {
  return { uid: `uid-${name}`, name, namespace, node: 'node-1', ips, serviceAccount: 'default', labels, identity: `spiffe://cluster.local/ns/${namespace}/sa/default`, captured: true, ready: true, nodeAddress: '' };
}

const allowWeb: AuthorizationPolicy = { name: 'allow', namespace: 'shop', selector: { app: 'web' }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['frontend'] } }], to: [] }] };
const strictShop: PeerAuthentication = { name: 'default', namespace: 'shop', mode: 'STRICT' };
const netns = (uid: string) => ({ netns: `/run/netns/${uid}`, podInterface: uid === 'uid-web' ? 'net0' : undefined });

describe('desiredInboundPods', () => {
  const web = workload('web', { app: 'web' }, ['10.244.1.5', 'fd00::5']);
  const db = workload('db', { app: 'db' }, ['10.244.1.6']);

  it('takes the pods a policy selects, one entry per IPv4 address, with the interface the CNI step reported', () => {
    const pods = desiredInboundPods([web, db], new PolicySet([allowWeb]), [], netns);
    assert.deepEqual(pods, [{ uid: 'uid-web 10.244.1.5', pod: 'shop/web', ip: '10.244.1.5', netns: '/run/netns/uid-web', iface: 'net0' }]);
  });

  it('takes none without policies, none under STRICT (the kernel drops plaintext), none whose netns is unknown', () => {
    assert.deepEqual(desiredInboundPods([web, db], PolicySet.empty(), [], netns), []);
    assert.deepEqual(desiredInboundPods([web], new PolicySet([allowWeb]), [strictShop], netns), []);
    assert.deepEqual(desiredInboundPods([web], new PolicySet([allowWeb]), [], () => undefined), []);
  });

  it('takes a STRICT pod whose kernel filter is not in place, for the proxy to refuse all its plaintext', () => {
    const pods = desiredInboundPods([web, db], PolicySet.empty(), [strictShop], netns, new Map([['uid-db', 'its host-side interface is unknown']]));
    assert.deepEqual(pods.map((p) => [p.pod, p.refuseAll]), [['shop/db', 'STRICT, and the kernel filter is not in place (its host-side interface is unknown)']]);
  });

  it('a namespace-wide policy selects every pod of its namespace; eth0 when the interface is unknown', () => {
    const nsWide: AuthorizationPolicy = { ...allowWeb, selector: undefined };
    const pods = desiredInboundPods([web, db], new PolicySet([nsWide]), [], netns);
    assert.deepEqual(pods.map((p) => [p.pod, p.iface]), [['shop/web', 'net0'], ['shop/db', 'eth0']]);
  });
});

/** A fake datapath: the map as a Map, listeners as real loopback servers' descriptors. */
function fakeDatapath(opts: { failFor?: Set<string> } = {}) {
  const map = new Map<string, InboundEntry>();
  const events: string[] = [];
  const servers: net.Server[] = [];
  return {
    map,
    events,
    servers,
    captureInbound: async (ns: string) => {
      events.push(`listen ${ns}`);
      if (opts.failFor?.has(ns)) throw new Error(`capture inbound on eth0 (port 15006) in ${ns}: Address already in use`);
      return { fd: -1, ifindex: 2 };
    },
    applyInbound: (entries: Map<string, InboundEntry>) => {
      events.push(`map ${[...entries.keys()].join(',')}`);
      const deleted = [...map.keys()].filter((k) => !entries.has(k)).length;
      const updated = [...entries.keys()].filter((k) => !map.has(k)).length;
      map.clear();
      for (const [k, v] of entries) map.set(k, v);
      return { map: 'sluice_inbound', updated, deleted, unchanged: entries.size - updated, errors: [], failures: [] };
    },
    serve: async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      return server;
    },
  };
}

const pod = (n: number): InboundPod => ({ uid: `u${n} 10.244.1.${n}`, pod: `shop/p${n}`, ip: `10.244.1.${n}`, netns: `/run/netns/p${n}`, iface: 'eth0' });

describe('InboundCapture', () => {
  it('writes the map entry at once, before the listener opens, and closes the listener when the pod leaves', async () => {
    const dp = fakeDatapath();
    const capture = new InboundCapture({ ...dp, allowedAddress: '10.244.1.1', logger });
    const written = capture.reconcile([pod(5)]);
    assert.equal(written.updated, 1);
    assert.deepEqual(dp.map.get('10.244.1.5'), { allowedAddress: '10.244.1.1', listenPort: 15006 }, 'written before reconcile returned');
    await capture.settled();
    assert.deepEqual(dp.events, ['map 10.244.1.5', 'listen /run/netns/p5']);
    assert.deepEqual(capture.status(), [{ pod: 'shop/p5', ip: '10.244.1.5', listening: true }]);
    assert.equal(capture.reconcile([]).deleted, 1);
    await capture.settled();
    assert.equal(dp.map.size, 0, 'the entry goes when the configuration says so');
    assert.equal(dp.servers[0].listening, false, 'the listener is closed');
    assert.deepEqual(capture.status(), []);
    await capture.close();
  });

  it('fails closed: a listener that cannot be opened keeps the entry (plaintext is dropped), is reported, and is retried', async () => {
    const failFor = new Set(['/run/netns/p7']);
    const dp = fakeDatapath({ failFor });
    const capture = new InboundCapture({ ...dp, allowedAddress: '10.244.1.1', logger, retryMs: 20 });
    capture.reconcile([pod(6), pod(7)]);
    await capture.settled();
    assert.ok(dp.map.has('10.244.1.7'), 'the entry stays though no listener opened');
    const p7 = capture.status().find((s) => s.pod === 'shop/p7');
    assert.equal(p7?.listening, false);
    assert.match(p7?.error ?? '', /Address already in use/);
    failFor.clear();
    for (let i = 0; i < 50 && !capture.status().every((s) => s.listening); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(capture.status().every((s) => s.listening), `retried and opened: ${JSON.stringify(capture.status())}`);
    assert.equal(dp.events.filter((e) => e === 'listen /run/netns/p6').length, 1, 'an open listener is not opened again');
    await capture.close();
    assert.ok(dp.servers.every((s) => !s.listening), 'close() closes every listener');
    assert.equal(dp.map.size, 2, 'close() keeps the entries: plaintext stays dropped until the next agent listens');
    capture.reconcile([]);
    assert.equal(dp.map.size, 2, 'a closed capture writes the map no more (a successor owns it)');
  });

  it('writes the entries of every call at once, even while a pass is opening listeners, and ends on the latest pods', async () => {
    const dp = fakeDatapath();
    const capture = new InboundCapture({ ...dp, allowedAddress: '10.244.1.1', logger });
    capture.reconcile([pod(1)]);
    capture.reconcile([pod(1), pod(2)]);
    assert.deepEqual([...dp.map.keys()], ['10.244.1.1', '10.244.1.2'], 'the second call entries are in before any listener opened');
    capture.reconcile([pod(3)]);
    assert.deepEqual([...dp.map.keys()], ['10.244.1.3']);
    await capture.settled();
    assert.deepEqual(capture.status().map((s) => s.pod), ['shop/p3']);
    assert.ok(!dp.events.includes('listen /run/netns/p2'), 'a pod that came and went meanwhile was never opened');
    await capture.close();
  });
});
