// Leader election over a Lease, against the Kubernetes API stand-in (which
// answers Lease GET, POST and PUT as kube-apiserver does, 409 on a stale
// write): one of several replicas leads; another takes over when the leader
// stops (released at once) or stops renewing (after the lease duration);
// only the leader writes policy status.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadKubeConfig } from '../../src/control/kubernetes-source';
import { LeaderElector } from '../../src/control/leader-election';
import { PolicyStatusWriter } from '../../src/control/policy-status';
import type { SourcedObject } from '../../src/control/kubernetes-objects';
import { KubeApiStandIn } from '../../src/sim/kube-api-server';
import { writeKubeconfig } from '../helpers/kubeconfig';
import { until } from '../helpers/wait';

const LEASE = { namespace: 'sluice-system', name: 'sluice-control' };

describe('leader election over a Lease', () => {
  let api: KubeApiStandIn;
  let dir: string;
  let kubeconfig: string;
  const electors: LeaderElector[] = [];

  before(async () => {
    api = await KubeApiStandIn.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-leader-'));
    kubeconfig = writeKubeconfig(dir, api);
  });
  after(async () => {
    for (const e of electors) await e.stop();
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const replica = (identity: string, lease = LEASE, leaseDurationSeconds = 2) => {
    const changes: boolean[] = [];
    const e = new LeaderElector(loadKubeConfig(kubeconfig), { lease, identity, leaseDurationSeconds, retryPeriodMs: 100, onLeading: (l) => changes.push(l), log: () => undefined });
    electors.push(e);
    return { e, changes };
  };

  it('of three replicas exactly one leads, and the Lease names it', async () => {
    const rs = ['a', 'b', 'c'].map((id) => replica(id));
    for (const r of rs) r.e.start();
    await until('a leader', () => rs.some((r) => r.e.isLeader));
    await new Promise((r) => setTimeout(r, 500));
    const leaders = rs.filter((r) => r.e.isLeader);
    assert.equal(leaders.length, 1);
    const lease = api.plainObjectOf('Lease', LEASE.namespace, LEASE.name) as unknown as { spec: { holderIdentity: string; leaseDurationSeconds: number } };
    assert.equal(lease.spec.holderIdentity, ['a', 'b', 'c'][rs.indexOf(leaders[0])]);
    assert.equal(lease.spec.leaseDurationSeconds, 2);

    // The leader stops: it releases the Lease and another takes over well before the lease would run out.
    const stoppedAt = Date.now();
    await leaders[0].e.stop();
    assert.deepEqual(leaders[0].changes, [true, false]);
    await until('a new leader', () => rs.some((r) => r !== leaders[0] && r.e.isLeader), 1500);
    assert.ok(Date.now() - stoppedAt < 1500, 'taken over on release, not after the lease duration');
    for (const r of rs) if (r !== leaders[0]) await r.e.stop();
  });

  it('a leader stopped while a renewal is under way does not lead again, and its Lease stays released', async () => {
    const lease = { namespace: 'sluice-system', name: 'stop-during-renewal' };
    const a = replica('a', lease);
    a.e.start();
    await until('a leads', () => a.e.isLeader);
    // Every answer now takes 300 ms: the next renewal is still in flight when stop() is called.
    api.delayMs = 300;
    try {
      await new Promise((r) => setTimeout(r, 150));
      await a.e.stop();
    } finally {
      api.delayMs = 0;
    }
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(a.changes, [true, false], 'led once, stopped once');
    assert.equal(a.e.isLeader, false);
    const after = api.plainObjectOf('Lease', lease.namespace, lease.name) as unknown as { spec: { holderIdentity?: string } };
    assert.equal(after.spec.holderIdentity, undefined, 'released, and no renewal landed after the release');
  });

  it('a holder that stopped renewing (a crash) keeps the Lease for its duration, then loses it', async () => {
    const lease = { namespace: 'sluice-system', name: 'crashed' };
    api.putPlainObject({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: lease.name, namespace: lease.namespace },
      spec: { holderIdentity: 'crashed-replica', leaseDurationSeconds: 2, renewTime: new Date().toISOString().replace('Z', '000Z'), leaseTransitions: 3 },
    } as never);
    const b = replica('b', lease);
    const started = Date.now();
    b.e.start();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(b.e.isLeader, false, 'not while the holder\'s lease runs');
    await until('b leads', () => b.e.isLeader, 4000);
    assert.ok(Date.now() - started >= 1900, `taken over after the lease duration (${Date.now() - started} ms)`);
    const after = api.plainObjectOf('Lease', lease.namespace, lease.name) as unknown as { spec: { holderIdentity: string; leaseTransitions: number } };
    assert.deepEqual([after.spec.holderIdentity, after.spec.leaseTransitions], ['b', 4]);
    await b.e.stop();
  });

  it('a leader the API server stops answering stops leading before its lease runs out', async () => {
    const lease = { namespace: 'sluice-system', name: 'cut-off' };
    const a = replica('a', lease);
    a.e.start();
    await until('a leads', () => a.e.isLeader);
    const cutAt = Date.now();
    api.delayMs = 5000;
    try {
      await until('a stops leading', () => !a.e.isLeader, 3000);
      assert.ok(Date.now() - cutAt < 2000, `within the lease of 2 s (${Date.now() - cutAt} ms)`);
      assert.deepEqual(a.changes, [true, false]);
    } finally {
      api.delayMs = 0;
    }
    await a.e.stop();
  });

  it('only the leader writes policy status; a new leader writes what the last publish says', async () => {
    const patches: string[] = [];
    const writer = new PolicyStatusWriter(async (p) => void patches.push(p), pino({ level: 'silent' }));
    const policy: SourcedObject = {
      source: 'k8s',
      object: { apiVersion: 'security.sluice.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'allow', namespace: 'shop', generation: 1 }, spec: {} },
    } as unknown as SourcedObject;
    writer.setLeading(false);
    writer.update([policy], []);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(patches, [], 'a replica that does not lead writes nothing');
    writer.setLeading(true);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(patches, ['/apis/security.sluice.dev/v1alpha1/namespaces/shop/authorizationpolicies/allow']);
  });
});
