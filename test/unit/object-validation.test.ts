// Each Kubernetes object is validated alone, before translation, with the
// rules the API server would have applied: the reproduced faults, one case each.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { loadControlConfig } from '../../src/config/control-config';
import { ConfigError } from '../../src/config/flags';
import { ControlPlane } from '../../src/control/control-plane';
import type { KubeObject, SourcedObject } from '../../src/control/kubernetes-objects';
import { parseManifestText } from '../../src/control/manifests';
import { objectProblems } from '../../src/control/object-validation';
import { defaultRenderOptions, renderObjects } from '../../src/control/render';
import { formatTranslationError } from '../../src/control/translate';
import { translatePolicies } from '../../src/control/translate-policy';
import { clusterIPProblem, defaultClusterRanges, parseClusterRanges, type ClusterRanges } from '../../src/model/cluster-ranges';
import { InvalidIdentityError, spiffeId } from '../../src/model/resources';

const quiet = pino({ level: 'silent' });
const ranges = defaultClusterRanges();
const src = (object: object, source = 'manifests/app.yaml'): SourcedObject => ({ object: object as KubeObject, source });
const pod = (name: string, ip: string, spec: object = {}, namespace = 'shop') =>
  src({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: { nodeName: 'node-1', containers: [{ name: 'c', command: ['x'] }], ...spec },
    status: { podIP: ip, phase: 'Running' },
  });
const svc = (name: string, spec: object, namespace = 'shop') => src({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec });
const errorsOf = (objects: SourcedObject[], options = defaultRenderOptions) => renderObjects(objects, 'v', options).errors.map(formatTranslationError);

describe('Service clusterIP ranges', () => {
  it('refuses a clusterIP that is a pod address (the hijack), and serves the real pod untouched', () => {
    const r = renderObjects([pod('web', '10.244.1.5'), svc('hijack', { clusterIP: '10.244.1.5', ports: [{ port: 80 }] })], 'v');
    assert.deepEqual(r.services, []);
    assert.deepEqual(r.errors.map(formatTranslationError), [
      "manifests/app.yaml: Service shop/hijack: spec.clusterIP: 10.244.1.5 is inside the pod range 10.244.0.0/16; a cluster IP must never be a pod's or node's address",
    ]);
    assert.deepEqual(r.workloads.map((w) => w.ips[0]), ['10.244.1.5']);
  });

  it('refuses addresses outside the service range, its network and broadcast addresses, and odd spellings', () => {
    const cases: [string, RegExp][] = [
      ['192.168.1.10', /not in the valid range. The range of valid IPs is 10.96.0.0\/12/],
      ['10.96.0.0', /network address of 10.96.0.0\/12/],
      ['10.111.255.255', /broadcast address of 10.96.0.0\/12/],
      ['010.96.0.1', /not an IP address/],
      ['::ffff:10.96.0.1', /not an IP address/],
      ['10.96.0.1%eth0', /not an IP address/],
      ['fd00::1', /not in the valid range/],
    ];
    for (const [ip, expected] of cases) assert.match(clusterIPProblem(ip, ranges) ?? 'accepted', expected, ip);
    assert.equal(clusterIPProblem('10.96.0.1', ranges), undefined);
    assert.equal(clusterIPProblem('10.111.255.254', ranges), undefined);
  });

  it('also refuses node addresses when node ranges are configured, and follows --service-cidr', () => {
    const custom = parseClusterRanges({ serviceCidr: '172.20.0.0/16,fd00:96::/108', podCidr: '10.244.0.0/16', nodeCidrs: '192.168.0.0/24' }) as ClusterRanges;
    const options = { ...defaultRenderOptions, ranges: custom };
    assert.deepEqual(errorsOf([svc('a', { clusterIPs: ['172.20.0.10', 'fd00:96::10'], ports: [{ port: 80 }] })], options), []);
    assert.deepEqual(errorsOf([svc('b', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] })], options), [
      'manifests/app.yaml: Service shop/b: spec.clusterIP: provided IP is not in the valid range. The range of valid IPs is 172.20.0.0/16, fd00:96::/108 (got "10.96.0.10")',
    ]);
    assert.match(clusterIPProblem('192.168.0.7', custom) ?? '', /inside the node range 192.168.0.0\/24/);
  });

  it('checks clusterIPs as ValidateService does: first equals clusterIP, one per family', () => {
    assert.deepEqual(errorsOf([svc('a', { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.11'], ports: [{ port: 80 }] })]), [
      'manifests/app.yaml: Service shop/a: spec.clusterIPs[0]: must match spec.clusterIP "10.96.0.10" (got "10.96.0.11")',
    ]);
    assert.deepEqual(errorsOf([svc('a', { clusterIPs: ['10.96.0.10', '10.96.0.11'], ports: [{ port: 80 }] })]), [
      'manifests/app.yaml: Service shop/a: spec.clusterIPs: may specify no more than one IP for each IP family',
    ]);
  });

  it('takes the ranges from flags and refuses overlapping or oversized ones', () => {
    const config = loadControlConfig(['--manifests', 'x', '--service-cidr', '172.20.0.0/16', '--pod-cidr', '10.0.0.0/8'], {});
    assert.deepEqual(config.ranges.service.map((r) => r.text), ['172.20.0.0/16']);
    assert.equal(loadControlConfig(['--manifests', 'x'], {}).ranges.service[0].text, '10.96.0.0/12');
    const refused = (argv: string[], message: RegExp) => assert.throws(() => loadControlConfig(['--manifests', 'x', ...argv], {}), (e: Error) => e instanceof ConfigError && message.test(e.message));
    refused(['--service-cidr', '10.244.0.0/20'], /--service-cidr: 10.244.0.0\/20 overlaps --pod-cidr 10.244.0.0\/16/);
    refused(['--service-cidr', '10.0.0.0/8', '--pod-cidr', '192.168.0.0/16'], /too large; for 32-bit addresses, the mask must be >= 12/);
    refused(['--service-cidr', 'banana'], /--service-cidr: not a CIDR/);
    refused(['--service-cidr', '10.96.0.0/12,10.128.0.0/12'], /at most one CIDR per IP family/);
    refused(['--node-cidrs', '10.100.0.0/16'], /overlaps --node-cidrs 10.100.0.0\/16/);
  });
});

describe('service account names and identities', () => {
  it('refuses a forged serviceAccountName, and no workload ever carries the forged identity', () => {
    const r = renderObjects(
      [
        pod('evil', '10.244.1.6', { serviceAccountName: 'x/../../ns/trusted/sa/frontend' }, 'attacker'),
        pod('obj', '10.244.1.7', { serviceAccountName: { name: 'frontend' } }, 'attacker'),
        pod('alias', '10.244.1.8', { serviceAccount: '../frontend' }, 'attacker'),
        pod('ok', '10.244.1.9', { serviceAccountName: 'frontend' }, 'trusted'),
      ],
      'v',
    );
    assert.deepEqual(r.errors.map(formatTranslationError), [
      "manifests/app.yaml: Pod attacker/evil: spec.serviceAccountName: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (got \"x/../../ns/trusted/sa/frontend\")",
      'manifests/app.yaml: Pod attacker/obj: spec.serviceAccountName: must be a string (got {"name":"frontend"})',
      "manifests/app.yaml: Pod attacker/alias: spec.serviceAccount: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (got \"../frontend\")",
    ]);
    assert.deepEqual(r.workloads.map((w) => [w.name, w.identity]), [['ok', 'spiffe://cluster.local/ns/trusted/sa/frontend']]);
  });

  it('follows the deprecated serviceAccount field when serviceAccountName is empty, as the API server does', () => {
    const r = renderObjects([pod('old', '10.244.1.6', { serviceAccount: 'legacy' })], 'v');
    assert.deepEqual(r.workloads.map((w) => w.identity), ['spiffe://cluster.local/ns/shop/sa/legacy']);
  });

  it('the identity builder itself refuses parts that are not Kubernetes names', () => {
    for (const [ns, sa] of [['shop', 'x/../../ns/trusted/sa/frontend'], ['shop', '[object Object]'], ['a/b', 'web'], ['shop', ''], ['Shop', 'web'], ['shop', 'a'.repeat(254)]]) {
      assert.throws(() => spiffeId('cluster.local', ns, sa), InvalidIdentityError, `${ns} ${sa}`);
    }
    assert.throws(() => spiffeId('cluster.local/ns/x', 'shop', 'web'), InvalidIdentityError);
    assert.equal(spiffeId('cluster.local', 'shop', 'web.v2'), 'spiffe://cluster.local/ns/shop/sa/web.v2');
  });

  it('refuses names Kubernetes refuses, per kind', () => {
    const fields = (o: object) => objectProblems(o as KubeObject, ranges).map((p) => `${p.field}: ${p.reason}`);
    // Services are DNS-1035 labels: no leading digit, no dots.
    const [service] = fields({ apiVersion: 'v1', kind: 'Service', metadata: { name: '1web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } });
    assert.match(service, /^metadata.name: a DNS-1035 label must .* \(got "1web"\)$/);
    // Pods are DNS-1123 subdomains: dots allowed; namespaces are labels.
    assert.deepEqual(fields(pod('web.v2', '10.244.1.2').object), []);
    assert.match(fields(pod('web', '10.244.1.2', {}, 'a.b').object).join(), /^metadata.namespace: a lowercase RFC 1123 label must/);
    assert.match(fields({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x'.repeat(64) } }).join(), /^metadata.name: must be no more than 63 characters/);
    assert.match(fields(pod('web', '10.244.1.2', { nodeName: '../node-1' }).object).join(), /^spec.nodeName: a lowercase RFC 1123 subdomain must/);
    assert.match(fields(pod('web', '10.244.1.2', { containers: [{ name: 'c', ports: [{ name: 'http--x', containerPort: 80 }] }] }).object).join(), /^spec.containers\[0\].ports\[0\].name: must not contain consecutive hyphens/);
  });

  it('refuses security policies whose metadata is not a Kubernetes name', () => {
    const API = 'security.sluice.dev/v1alpha1';
    const { authorizationPolicies, errors } = translatePolicies([
      src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: '../p', namespace: 'shop' }, spec: {} }),
      src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: ['shop'] }, spec: {} }),
      src({ apiVersion: API, kind: 'PeerAuthentication', metadata: null, spec: { mtls: { mode: 'STRICT' } } }),
      src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'ok', namespace: 'shop' }, spec: {} }),
    ]);
    assert.deepEqual(authorizationPolicies.map((p) => p.name), ['ok']);
    assert.deepEqual(errors.map((e) => `${e.object}: ${e.field}`), ['AuthorizationPolicy shop/../p: metadata.name', 'AuthorizationPolicy p: metadata.namespace', 'PeerAuthentication (unnamed): metadata']);
  });
});

describe('malformed Services', () => {
  const FILE = `apiVersion: v1
kind: Service
metadata: { name: good, namespace: shop }
spec: { clusterIP: 10.96.0.10, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: string-ports, namespace: shop }
spec: { clusterIP: 10.96.0.11, ports: "80" }
---
apiVersion: v1
kind: Service
metadata: { name: null-port, namespace: shop }
spec: { clusterIP: 10.96.0.12, ports: [null] }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec: { nodeName: node-1, containers: [{ name: c }] }
status: { podIP: 10.244.1.2 }
`;

  it('rejects ports: "80" and ports: [null] alone; the other objects of the file still render', () => {
    const r = renderObjects(parseManifestText('manifests/app.yaml', FILE), 'v');
    assert.deepEqual(r.errors.map(formatTranslationError), [
      'manifests/app.yaml (document 2): Service shop/string-ports: spec.ports: must be a list (got "80")',
      'manifests/app.yaml (document 3): Service shop/null-port: spec.ports[0]: must be an object (got null)',
    ]);
    assert.deepEqual(r.services.map((s) => s.name), ['good']);
    assert.deepEqual(r.workloads.map((w) => w.name), ['web']);
  });

  it('keeps serving the last good version of a Service that turns bad, and never throws', () => {
    const control = new ControlPlane(defaultRenderOptions, quiet);
    const good = svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] });
    control.publish([good]);
    for (const spec of [{ clusterIP: '10.96.0.10', ports: '80' }, { clusterIP: '10.96.0.10', ports: [null] }, { clusterIP: '10.244.1.5', ports: [{ port: 80 }] }, null, 'spec']) {
      const published = control.publish([svc('web', spec as object)]);
      assert.equal(published.errors.length > 0, true, JSON.stringify(spec));
      assert.deepEqual(control.resources().services.map((s) => [s.name, s.clusterIPs]), [['web', ['10.96.0.10']]]);
    }
  });

  it('reports fields in Kubernetes terms: ports, protocols, port names and targetPorts', () => {
    const errors = errorsOf([
      svc('a', { clusterIP: '10.96.0.10', ports: [{ port: 80, protocol: 'tcp' }] }),
      svc('b', { clusterIP: '10.96.0.11', ports: [{ port: 80 }, { port: 81 }] }),
      svc('c', { clusterIP: '10.96.0.12', ports: [{ port: 80, targetPort: '../x' }] }),
      svc('d', { clusterIP: '10.96.0.13', ports: [{ port: 80, targetPort: 0 }] }),
      svc('e', { clusterIP: '10.96.0.14', ports: [{ port: -1 }] }),
      svc('f', { clusterIP: '10.96.0.15', selector: { app: ['web'] }, ports: [{ port: 80 }] }),
      src({ apiVersion: 'v2', kind: 'Service', metadata: { name: 'g', namespace: 'shop' }, spec: { clusterIP: '10.96.0.16', ports: [{ port: 80 }] } }),
    ]);
    assert.deepEqual(errors, [
      'manifests/app.yaml: Service shop/a: spec.ports[0].protocol: unsupported value "tcp": supported values: "TCP", "UDP", "SCTP"',
      'manifests/app.yaml: Service shop/b: spec.ports[0].name: required (a service with more than one port names each)',
      'manifests/app.yaml: Service shop/b: spec.ports[1].name: required (a service with more than one port names each)',
      'manifests/app.yaml: Service shop/c: spec.ports[0].targetPort: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-) (got "../x")',
      'manifests/app.yaml: Service shop/d: spec.ports[0].targetPort: must be an integer 1-65535 (got 0)',
      'manifests/app.yaml: Service shop/e: spec.ports[0].port: must be an integer 1-65535 (got -1)',
      'manifests/app.yaml: Service shop/f: spec.selector.app: must be a string (got ["web"])',
      'manifests/app.yaml: Service shop/g: apiVersion: must be "v1" for Service (got "v2")',
    ]);
  });

  it('ignores kinds of the same name from other API groups', () => {
    const knative = src({ apiVersion: 'serving.knative.dev/v1', kind: 'Service', metadata: { name: 'x' }, spec: { template: {} } });
    assert.deepEqual(renderObjects([knative], 'v').errors, []);
  });
});
