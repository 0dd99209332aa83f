import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject, SourcedObject } from '../../src/control/kubernetes-objects';
import { formatTranslationError, translate } from '../../src/control/translate';

const src = (object: object): SourcedObject => ({ object: object as KubeObject, source: 'apps.yaml' });
const ns = (name: string, mesh?: string) => src({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: mesh ? { 'sluice.dev/mesh': mesh } : {} } });
const pod = (name: string, namespace: string, ip: string | undefined, labels: Record<string, string> = {}, node = 'node-1', ports: object[] = []) =>
  src({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { nodeName: node, serviceAccountName: 'sa-' + name, containers: [{ command: ['x'], ports }] },
    status: ip ? { podIP: ip, phase: 'Running' } : undefined,
  });
const svc = (name: string, namespace: string, spec: object) => src({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec });

describe('translation of Kubernetes objects to resources', () => {
  it('captures pods of mesh namespaces unless they opt out', () => {
    const { snapshot, errors } = translate(
      [ns('a', 'enabled'), ns('b'), pod('p1', 'a', '10.244.1.2'), pod('p2', 'a', '10.244.1.3', { 'sluice.dev/mesh': 'disabled' }), pod('p3', 'b', '10.244.1.4')],
      'v1',
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(snapshot.workloads.map((w) => [w.name, w.captured]), [['p1', true], ['p2', false], ['p3', false]]);
    assert.equal(snapshot.workloads[0].serviceAccount, 'sa-p1');
    assert.equal(snapshot.workloads[0].uid, 'a/p1');
    assert.equal(snapshot.workloads[0].identity, 'spiffe://cluster.local/ns/a/sa/sa-p1');
  });

  it('skips pods that have no IP yet', () => {
    const { snapshot } = translate([pod('p1', 'a', undefined)], 'v1');
    assert.equal(snapshot.workloads.length, 0);
  });

  it('builds endpoints from the pods the selector picks, in the service namespace only', () => {
    const { snapshot, errors } = translate(
      [
        pod('w1', 'a', '10.244.1.2', { app: 'web' }),
        pod('w2', 'a', '10.244.2.2', { app: 'web' }, 'node-2'),
        pod('other', 'a', '10.244.1.3', { app: 'db' }),
        pod('w3', 'b', '10.244.1.4', { app: 'web' }),
        svc('web', 'a', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] }),
      ],
      'v1',
    );
    assert.deepEqual(errors, []);
    const web = snapshot.services[0];
    assert.deepEqual(web.endpoints.map((e) => [e.address, e.node]), [['10.244.1.2', 'node-1'], ['10.244.2.2', 'node-2']]);
    assert.deepEqual(web.ports, [{ name: '', port: 80, targetPort: 8080 }]);
  });

  it('resolves a named targetPort from the pods container ports', () => {
    const { snapshot, errors } = translate(
      [
        pod('w1', 'a', '10.244.1.2', { app: 'web' }, 'node-1', [{ name: 'http', containerPort: 8081 }]),
        svc('web', 'a', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] }),
      ],
      'v1',
    );
    assert.deepEqual(errors, []);
    assert.equal(snapshot.services[0].ports[0].targetPort, 8081);
  });

  it('reports each unusable object with file, object, field and reason, and keeps the rest', () => {
    const { snapshot, errors, warnings } = translate(
      [
        svc('good', 'a', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] }),
        svc('no-ip', 'a', { ports: [{ port: 80 }] }),
        svc('bad-ip', 'a', { clusterIP: '10.96.0.999', ports: [{ port: 80 }] }),
        svc('dup', 'a', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] }),
        svc('udp', 'a', { clusterIP: '10.96.0.11', ports: [{ port: 53, protocol: 'UDP' }] }),
        svc('port', 'a', { clusterIP: '10.96.0.12', ports: [{ port: 70000 }] }),
      ],
      'v1',
    );
    assert.deepEqual(snapshot.services.map((s) => s.name), ['good']);
    assert.deepEqual(errors.map(formatTranslationError), [
      'apps.yaml: Service a/bad-ip: spec.clusterIP: not an IP address (got "10.96.0.999")',
      'apps.yaml: Service a/dup: spec.clusterIP: 10.96.0.10 is already used by a/good',
      'apps.yaml: Service a/port: spec.ports[0].port: must be an integer 1-65535 (got 70000)',
    ]);
    // Valid objects sluice cannot serve are reported as such, not as invalid.
    assert.deepEqual(warnings.map(formatTranslationError), [
      'apps.yaml: Service a/no-ip: spec.clusterIP: no cluster IP allocated: no virtual IP to capture',
      'apps.yaml: Service a/udp: spec.ports[0].protocol: UDP port 53 is not served (sluice relays TCP only): its traffic is not captured',
      'apps.yaml: Service a/udp: spec.ports: no TCP port: the Service is not served',
    ]);
  });
});
