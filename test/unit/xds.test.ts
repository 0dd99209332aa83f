// The xDS transport in-process over loopback: a real grpc-js server and
// client, resources as protobuf Any, ACK/NACK and resumption by versions.
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { AuthorizationPolicy } from '../../src/model/policy';
import { defaultLoadBalancing, type Service } from '../../src/model/resources';
import { DeltaAdsClient, backoffDelay, type TypeHandler } from '../../src/xds/delta-client';
import { DeltaAdsServer } from '../../src/xds/delta-server';
import type { Any } from '../../src/xds/protos';
import { SERVICE_TYPE, authorizationPolicyCodec, serviceCodec, workloadCodec } from '../../src/xds/resource-types';

const quiet = pino({ level: 'silent' });
const svc = (name: string, targetPort = 8080): Service => ({
  name,
  namespace: 'shop',
  clusterIPs: ['10.96.0.1'],
  ports: [{ name: 'http', port: 80, targetPort }],
  endpoints: [{ workloadUid: 'u1', address: '10.244.1.2', node: 'node-1', ready: true }],
  loadBalancing: { ...defaultLoadBalancing },
});

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out: ${what}`);
}

describe('resource codecs', () => {
  it('round-trip workloads, services and policies through protobuf', () => {
    const w = { uid: 'u1', name: 'p', namespace: 'shop', node: 'node-1', ips: ['10.244.1.2'], serviceAccount: 'web', labels: { app: 'web' }, identity: 'spiffe://cluster.local/ns/shop/sa/web', captured: true, ready: true, nodeAddress: '10.244.1.1' };
    assert.deepEqual(workloadCodec.decode(workloadCodec.encode(w)), w);
    assert.deepEqual(serviceCodec.decode(serviceCodec.encode(svc('web'))), svc('web'));
    const p: AuthorizationPolicy = {
      name: 'a',
      namespace: 'shop',
      selector: { app: 'web' },
      action: 'DENY',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/x/sa/y'], notIpBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: [8080] } }] }],
    };
    assert.deepEqual(authorizationPolicyCodec.decode(authorizationPolicyCodec.encode(p)), p);
    const nsWide: AuthorizationPolicy = { name: 'b', namespace: 'shop', action: 'ALLOW', rules: [] };
    assert.deepEqual(authorizationPolicyCodec.decode(authorizationPolicyCodec.encode(nsWide)), nsWide);
  });

  it('refuses a resource of another type or with an invalid field, saying why', () => {
    assert.match(String(serviceCodec.decode(workloadCodec.encode({ uid: 'u', name: 'n', namespace: 'x', node: 'n', ips: [], serviceAccount: 'd', labels: {}, identity: '', captured: false, ready: true, nodeAddress: '' }))), /has type .*Workload, expected .*Service/);
    assert.equal(serviceCodec.decode(serviceCodec.encode(svc('bad', 0))), 'ports.0.targetPort: must be >= 1 (got 0)');
    assert.match(String(serviceCodec.decode({ type_url: SERVICE_TYPE, value: Buffer.from([0xff, 0xff, 0xff]) })), /cannot decode sluice.v1.Service/);
  });
});

describe('reconnect backoff', () => {
  it('is full-jitter exponential, capped', () => {
    assert.equal(backoffDelay(0, 500, 30000, () => 1), 500);
    assert.equal(backoffDelay(3, 500, 30000, () => 1), 4000);
    assert.equal(backoffDelay(20, 500, 30000, () => 1), 30000);
    assert.equal(backoffDelay(5, 500, 30000, () => 0), 0);
  });
});

describe('delta ADS over loopback', () => {
  const server = new DeltaAdsServer(quiet);
  let port = 0;
  const held = new Map<string, Service>();
  const versions = new Map<string, string>();
  const handler: TypeHandler = {
    typeUrl: SERVICE_TYPE,
    versions: () => Object.fromEntries(versions),
    apply(upserts, removals) {
      const rejected = [];
      for (const u of upserts) {
        const s = serviceCodec.decode(u.resource);
        if (typeof s === 'string') rejected.push({ name: u.name, reason: s });
        else {
          held.set(u.name, s);
          versions.set(u.name, u.version);
        }
      }
      for (const r of removals) {
        held.delete(r);
        versions.delete(r);
      }
      return rejected;
    },
  };
  let client: DeltaAdsClient;
  const resources = (entries: [string, Any, string][]) => new Map(entries.map(([name, resource, version]) => [name, { resource, version }]));

  before(async () => {
    port = await server.listen('127.0.0.1:0');
    server.setResources(SERVICE_TYPE, resources([['shop/a', serviceCodec.encode(svc('a')), 'v1']]), '1');
    client = new DeltaAdsClient({ target: `127.0.0.1:${port}`, nodeId: 'node-1', initialBackoffMs: 50, maxBackoffMs: 200 }, [handler], quiet);
    client.start();
  });
  after(async () => {
    client.stop();
    await server.close();
  });

  it('syncs what the server holds, and ACKs it', async () => {
    await until(() => client.synced && held.has('shop/a'), 'initial sync');
    await until(() => server.status()[0]?.types[0]?.lastAckNonce !== '', 'ACK seen by the server');
    assert.equal(server.status()[0].node, 'node-1');
    assert.equal(client.status().types[0].lastAck?.version, '1');
  });

  it('pushes only what changed, and removals', async () => {
    const before = client.status().types[0].received;
    server.setResources(
      SERVICE_TYPE,
      resources([
        ['shop/a', serviceCodec.encode(svc('a')), 'v1'],
        ['shop/b', serviceCodec.encode(svc('b')), 'v1'],
      ]),
      '2',
    );
    await until(() => held.has('shop/b'), 'b arrives');
    assert.equal(client.status().types[0].received - before, 1, 'a was not sent again');
    server.setResources(SERVICE_TYPE, resources([['shop/b', serviceCodec.encode(svc('b')), 'v1']]), '3');
    await until(() => !held.has('shop/a'), 'a removed');
  });

  it('NACKs exactly the bad resource, naming it, and applies the rest', async () => {
    server.setResources(
      SERVICE_TYPE,
      resources([
        ['shop/b', serviceCodec.encode(svc('b')), 'v1'],
        ['shop/c', serviceCodec.encode(svc('c')), 'v1'],
        ['shop/bad', serviceCodec.encode(svc('bad', 0)), 'v1'],
      ]),
      '4',
    );
    await until(() => held.has('shop/c'), 'c applied');
    assert.equal(held.has('shop/bad'), false);
    await until(() => server.status()[0]?.types[0]?.lastNack !== undefined, 'NACK seen by the server');
    assert.match(server.status()[0].types[0].lastNack!.message, /^shop\/bad: ports\.0\.targetPort: must be >= 1 \(got 0\)$/);
    assert.equal(client.status().types[0].lastNack?.version, '4');
  });

  it('reconnects after the server goes away and resumes from what it holds', async () => {
    await server.close();
    await until(() => client.state === 'backoff', 'client notices');
    const again = new DeltaAdsServer(quiet);
    await again.listen(`127.0.0.1:${port}`);
    again.setResources(
      SERVICE_TYPE,
      resources([
        ['shop/b', serviceCodec.encode(svc('b')), 'v1'],
        ['shop/c', serviceCodec.encode(svc('c')), 'v1'],
        ['shop/d', serviceCodec.encode(svc('d')), 'v1'],
      ]),
      '5',
    );
    const received = client.status().types[0].received;
    await until(() => client.state === 'connected' && held.has('shop/d'), 'reconnected and synced');
    assert.equal(client.status().types[0].received - received, 1, 'only d was sent: b and c were announced as held');
    client.stop();
    await again.close();
  });

  it('a restarted server that has not set a type yet answers nothing for it, and removes nothing, until it is set', async () => {
    const again = new DeltaAdsServer(quiet);
    const p = await again.listen('127.0.0.1:0');
    const resumed = new DeltaAdsClient({ target: `127.0.0.1:${p}`, nodeId: 'node-1', initialBackoffMs: 50, maxBackoffMs: 200 }, [handler], quiet);
    resumed.start();
    try {
      await until(() => again.status()[0]?.types.length === 1, 'subscribed');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual([...held.keys()].sort(), ['shop/b', 'shop/c', 'shop/d'], 'nothing removed while the server has no answer');
      assert.equal(resumed.status().types[0].received, 0, 'no response at all');
      // Its first answer goes out even when empty, so the client knows it has the whole set.
      again.setResources(SERVICE_TYPE, new Map(), '1');
      await until(() => held.size === 0 && resumed.synced, 'the first answer, empty, applied');
    } finally {
      resumed.stop();
      await again.close();
    }
  });
});

describe('reconnect after a long outage', () => {
  it('connects within the backoff cap once the server is back, after a 90 s outage', { timeout: 150000 }, async () => {
    const first = new DeltaAdsServer(quiet);
    const port = await first.listen('127.0.0.1:0');
    first.setResources(SERVICE_TYPE, new Map([['shop/a', { resource: serviceCodec.encode(svc('a')), version: 'v1' }]]), '1');
    const versions = new Map<string, string>();
    const handler: TypeHandler = {
      typeUrl: SERVICE_TYPE,
      versions: () => Object.fromEntries(versions),
      apply(upserts) {
        for (const u of upserts) versions.set(u.name, u.version);
        return [];
      },
    };
    const maxBackoffMs = 2000;
    const client = new DeltaAdsClient({ target: `127.0.0.1:${port}`, nodeId: 'node-1', initialBackoffMs: 100, maxBackoffMs }, [handler], quiet);
    client.start();
    try {
      await until(() => client.state === 'connected', 'first connect');
      await first.close();
      // 90 s: long past grpc-js's own channel backoff growth (1 s, 1.6x, to 120 s by default).
      await new Promise((r) => setTimeout(r, 90000));
      const back = new DeltaAdsServer(quiet);
      await back.listen(`127.0.0.1:${port}`);
      back.setResources(SERVICE_TYPE, new Map([['shop/a', { resource: serviceCodec.encode(svc('a')), version: 'v1' }]]), '2');
      const listeningAt = Date.now();
      try {
        for (let i = 0; i < 400 && client.state !== 'connected'; i++) await new Promise((r) => setTimeout(r, 25));
        assert.equal(client.state, 'connected', 'reconnected');
        const took = Date.now() - listeningAt;
        assert.ok(took <= maxBackoffMs + 1500, `reconnected ${took} ms after the server was back (cap ${maxBackoffMs} ms)`);
      } finally {
        client.stop();
        await back.close();
      }
    } finally {
      client.stop();
    }
  });
});

