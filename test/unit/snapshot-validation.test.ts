import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateSnapshot } from '../../src/model/validate';

const workload = { uid: 'u1', name: 'p', namespace: 'a', node: 'node-1', ips: ['10.244.1.2'] };
const service = { name: 'web', namespace: 'a', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, targetPort: 8080 }] };

describe('snapshot validation', () => {
  it('fills defaults', () => {
    const { snapshot, rejected } = validateSnapshot({ workloads: [workload], services: [service] });
    assert.deepEqual(rejected, []);
    assert.equal(snapshot.workloads[0].serviceAccount, 'default');
    assert.equal(snapshot.workloads[0].captured, false);
    assert.deepEqual(snapshot.services[0].loadBalancing, { mode: 'least-request', connectTimeoutMs: 1000, maxConnectAttempts: 3 });
  });

  it('rejects a bad resource alone, naming the field and value, and keeps the others', () => {
    const { snapshot, rejected } = validateSnapshot({
      workloads: [workload, { ...workload, uid: 'u2', ips: ['10.244.1.256'] }],
      services: [service, { ...service, name: 'bad', clusterIPs: ['10.96.0.11'], ports: [{ port: 80, targetPort: 70000 }] }, { ...service, name: 'clash' }],
    });
    assert.deepEqual(snapshot.workloads.map((w) => w.uid), ['u1']);
    assert.deepEqual(snapshot.services.map((s) => s.name), ['web']);
    assert.deepEqual(rejected.map((r) => `${r.kind} ${r.name}: ${r.reason}`), [
      'Workload a/p: workloads[1]: ips.0: must match format "ip" (got "10.244.1.256")',
      'Service a/bad: services[1]: ports.0.targetPort: must be <= 65535 (got 70000)',
      'Service a/clash: services[2].clusterIPs: already used by a/web',
    ]);
  });

  it('refuses a document that is not a snapshot at all', () => {
    assert.throws(() => validateSnapshot([]), /must be an object/);
    assert.throws(() => validateSnapshot({ services: {} }), /services: must be an array/);
  });
});
