// Translation of what real clusters hold: named target ports that differ per
// pod during a rolling update, mixed-protocol Services (kube-dns), headless
// Services, dual-stack cluster IPs, hostNetwork pods, pods without IPs, and
// endpoints as their EndpointSlices say (ready, serving, terminating).
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject, SourcedObject } from '../../src/control/kubernetes-objects';
import { formatTranslationError, translate, type EndpointSource } from '../../src/control/translate';
import { parseClusterRanges } from '../../src/model/cluster-ranges';
import { endpointTargetPort, type Service } from '../../src/model/resources';
import { EndpointStats, pickEndpoint } from '../../src/proxy/endpoint-picker';
import { serviceCodec } from '../../src/xds/resource-types';

const src = (object: object): SourcedObject => ({ object: object as KubeObject, source: 'api' });
const ns = (name: string) => src({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'sluice.dev/mesh': 'enabled' } } });

interface PodOptions {
  ip?: string;
  node?: string;
  labels?: Record<string, string>;
  ports?: object[];
  ready?: 'True' | 'False';
  hostNetwork?: boolean;
  deleting?: boolean;
}

function pod(name: string, o: PodOptions = {}): SourcedObject {
  return src({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, labels: o.labels ?? { app: 'web' }, ...(o.deleting ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}) },
    spec: { ...(o.node !== '' ? { nodeName: o.node ?? 'node-1' } : {}), ...(o.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'app', ports: o.ports ?? [] }] },
    status: o.ip ? { podIP: o.ip, hostIP: '192.168.0.1', phase: 'Running', conditions: [{ type: 'Ready', status: o.ready ?? 'True' }] } : { phase: 'Pending' },
  });
}

const service = (name: string, spec: object) => src({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec });

interface SliceEndpoint {
  ip: string;
  pod?: string;
  ready?: boolean | null;
  serving?: boolean;
  terminating?: boolean;
}

function slice(name: string, serviceName: string, ports: object[], endpoints: SliceEndpoint[], addressType = 'IPv4'): SourcedObject {
  return src({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': serviceName } },
    addressType,
    ports,
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready, serving: e.serving ?? e.ready, terminating: e.terminating ?? false },
      nodeName: 'node-1',
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace: 'shop', name: e.pod, uid: `uid-${e.pod}` } } : {}),
    })),
  });
}

const run = (objects: SourcedObject[], endpoints: EndpointSource = 'pod-selectors') => translate(objects, 'v1', undefined, undefined, endpoints);

/** Where the node proxy would connect for each endpoint of port 80, as it picks them. */
function destinations(s: Service): string[] {
  const port = s.ports.find((p) => p.port === 80)!;
  const stats = new EndpointStats();
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const e = pickEndpoint(s.endpoints, port, new Set(), stats, 0);
    if (e) seen.add(`${e.address}:${endpointTargetPort(e, port)}`);
  }
  return [...seen].sort();
}

describe('translation of what real clusters hold', () => {
  describe('a named targetPort resolves per endpoint (rolling update from v1 to v2)', () => {
    // v1 pods name container port "web" 7000, v2 pods name it 7002: the Service's targetPort "web" must reach both.
    const v1 = pod('web-v1', { ip: '10.244.1.2', ports: [{ name: 'web', containerPort: 7000 }] });
    const v2 = pod('web-v2', { ip: '10.244.1.3', ports: [{ name: 'web', containerPort: 7002 }] });
    const web = service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'web' }] });

    it('from pod selectors: both versions stay reachable, each on its own port', () => {
      const { snapshot, errors, warnings } = run([v1, v2, web]);
      assert.deepEqual([errors, warnings], [[], []]);
      assert.deepEqual(destinations(snapshot.services[0]), ['10.244.1.2:7000', '10.244.1.3:7002']);
    });

    it('from EndpointSlices: one slice per port number, as the endpoints controller writes them', () => {
      const { snapshot, errors, warnings } = run(
        [
          v1,
          v2,
          web,
          slice('web-abc', 'web', [{ name: '', port: 7000, protocol: 'TCP' }], [{ ip: '10.244.1.2', pod: 'web-v1', ready: true }]),
          slice('web-def', 'web', [{ name: '', port: 7002, protocol: 'TCP' }], [{ ip: '10.244.1.3', pod: 'web-v2', ready: true }]),
        ],
        'endpoint-slices',
      );
      assert.deepEqual([errors, warnings], [[], []]);
      assert.deepEqual(destinations(snapshot.services[0]), ['10.244.1.2:7000', '10.244.1.3:7002']);
    });

    it('per-endpoint ports survive the wire to the agent', () => {
      const s = run([v1, v2, web]).snapshot.services[0];
      const decoded = serviceCodec.decode(serviceCodec.encode(s));
      assert.ok(typeof decoded !== 'string', String(decoded));
      assert.deepEqual(destinations(decoded), ['10.244.1.2:7000', '10.244.1.3:7002']);
    });

    it('a pod without the named port is no endpoint of that port, and that is reported', () => {
      const old = pod('web-old', { ip: '10.244.1.4', ports: [{ name: 'http', containerPort: 8080 }] });
      const { snapshot, warnings } = run([v1, old, web]);
      assert.deepEqual(destinations(snapshot.services[0]), ['10.244.1.2:7000']);
      assert.deepEqual(warnings.map(formatTranslationError), [
        'api: Service shop/web: spec.ports[0].targetPort: pods without a TCP container port named "web" are not endpoints of port 80: web-old',
      ]);
    });
  });

  it('a kube-dns-like Service (53/UDP and 53/TCP): the TCP port is served, the UDP port reported', () => {
    const dns = pod('coredns', { ip: '10.244.1.5', labels: { k8s: 'dns' }, ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53 }] });
    const svc = service('kube-dns', {
      clusterIP: '10.96.0.10',
      selector: { k8s: 'dns' },
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    });
    const { snapshot, errors, warnings } = run([dns, svc]);
    assert.deepEqual(errors, []);
    assert.deepEqual(snapshot.services[0].ports, [{ name: 'dns-tcp', port: 53, targetPort: 53 }]);
    assert.deepEqual(snapshot.services[0].endpoints.map((e) => e.address), ['10.244.1.5']);
    assert.deepEqual(warnings.map(formatTranslationError), [
      'api: Service shop/kube-dns: spec.ports[0].protocol: UDP port 53 is not served (sluice relays TCP only): its traffic is not captured',
    ]);
  });

  it('a headless Service has no VIP; its pods stay known workloads; that is reported', () => {
    const { snapshot, errors, warnings } = run([ns('shop'), pod('db-0', { ip: '10.244.1.6', labels: { app: 'db' } }), service('db', { clusterIP: 'None', selector: { app: 'db' }, ports: [{ port: 5432 }] })]);
    assert.deepEqual(errors, []);
    assert.deepEqual(snapshot.services, []);
    assert.deepEqual(snapshot.workloads.map((w) => [w.name, w.captured]), [['db-0', true]]);
    assert.match(warnings.map(formatTranslationError).join('\n'), /Service shop\/db: spec\.clusterIP: headless/);
  });

  it('dual-stack clusterIPs: the IPv4 address is served, the IPv6 one reported', () => {
    const ranges = parseClusterRanges({ serviceCidr: '10.96.0.0/12,fd00:10:96::/112', podCidr: '10.244.0.0/16', nodeCidrs: '' });
    assert.ok(typeof ranges !== 'string', String(ranges));
    const { snapshot, errors, warnings } = translate(
      [pod('w', { ip: '10.244.1.2', ports: [] }), service('web', { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:10:96::a'], selector: { app: 'web' }, ports: [{ port: 80 }] })],
      'v1',
      undefined,
      ranges,
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(snapshot.services[0].clusterIPs, ['10.96.0.10']);
    assert.match(warnings.map(formatTranslationError).join('\n'), /fd00:10:96::a: IPv6 cluster IPs are not served yet/);
  });

  it('pods without an IP (not scheduled, not started) are no workloads and no error', () => {
    const { snapshot, errors } = run([pod('pending', { node: '' }), pod('starting', {})]);
    assert.deepEqual([snapshot.workloads, errors], [[], []]);
  });

  it('a hostNetwork pod in a mesh namespace is known but never enrolled, and that is reported', () => {
    const { snapshot, warnings } = run([ns('shop'), pod('agent', { ip: '192.168.0.1', hostNetwork: true })]);
    assert.deepEqual(snapshot.workloads.map((w) => [w.name, w.captured]), [['agent', false]]);
    assert.match(warnings.map(formatTranslationError).join('\n'), /Pod shop\/agent: spec\.hostNetwork: true: .* not enrolled/);
  });

  it('from pod selectors, readiness is the Ready condition (and deletion), not phase Running alone', () => {
    const { snapshot } = run([
      pod('ready', { ip: '10.244.1.2' }),
      pod('not-ready', { ip: '10.244.1.3', ready: 'False' }),
      pod('deleting', { ip: '10.244.1.4', deleting: true }),
      service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80 }] }),
    ]);
    assert.deepEqual(snapshot.services[0].endpoints.map((e) => [e.address, e.ready]), [['10.244.1.2', true], ['10.244.1.3', false], ['10.244.1.4', false]]);
  });

  describe('EndpointSlices decide the endpoints, with their conditions', () => {
    const pods = ['a', 'b', 'c', 'd', 'e'].map((n, i) => pod(`web-${n}`, { ip: `10.244.1.${10 + i}` }));
    const web = service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const slices = slice('web-1', 'web', [{ name: 'http', port: 8080, protocol: 'TCP' }], [
      { ip: '10.244.1.10', pod: 'web-a', ready: true },
      // Terminating but still serving: no new connections, open ones kept (listed, not ready).
      { ip: '10.244.1.11', pod: 'web-b', ready: false, serving: true, terminating: true },
      { ip: '10.244.1.12', pod: 'web-c', ready: false, serving: false },
      // nil ready is "unknown": taken as ready, as the API documents.
      { ip: '10.244.1.13', pod: 'web-d', ready: null },
    ]);

    it('ready, terminating and not-ready endpoints; a pod the slices do not list is no endpoint', () => {
      const { snapshot, errors, warnings } = run([...pods, web, slices], 'endpoint-slices');
      assert.deepEqual([errors, warnings], [[], []]);
      const s = snapshot.services[0];
      assert.deepEqual(s.ports, [{ name: 'http', port: 80, targetPort: 8080 }]);
      assert.deepEqual(
        s.endpoints.map((e) => [e.address, e.ready]),
        [['10.244.1.10', true], ['10.244.1.11', false], ['10.244.1.12', false], ['10.244.1.13', true]],
      );
      // New connections go to the ready ones only.
      assert.deepEqual(destinations(s), ['10.244.1.10:8080', '10.244.1.13:8080']);
    });

    it('endpoints that are not known pods are left out and reported; a Service with only such endpoints is not served', () => {
      const external = service('ext', { clusterIP: '10.96.0.11', ports: [{ port: 80 }] });
      const extSlice = slice('ext-1', 'ext', [{ port: 80, protocol: 'TCP' }], [{ ip: '192.0.2.10', ready: true }]);
      const { snapshot, warnings } = run([...pods, web, slices, external, extSlice], 'endpoint-slices');
      assert.deepEqual(snapshot.services.map((s) => s.name), ['web']);
      assert.match(warnings.map(formatTranslationError).join('\n'), /Service shop\/ext: endpoints: its endpoints \(192\.0\.2\.10\) are not pods sluice knows: the Service is not served/);
    });

    it('manifest sources keep deriving endpoints from selectors, whatever slices they hold', () => {
      const { snapshot } = run([...pods, web, slices], 'pod-selectors');
      assert.equal(snapshot.services[0].endpoints.length, 5);
    });
  });
});
