// The sim's Kubernetes API: the stand-in's write verbs (POST, PUT, DELETE,
// GET of one object) as the sim's CLI uses them over the unix socket, the
// EndpointSlice controller stand-in (the slices kube-controller-manager
// would write), and sluice-control's Kubernetes source reporting the
// resourceVersion it serves through, which is how the sim knows a change
// is served.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { KubeObject, KubeService, Pod, SourcedObject } from '../../src/control/kubernetes-objects';
import { KubernetesSource, loadKubeConfig } from '../../src/control/kubernetes-source';
import { translate } from '../../src/control/translate';
import { EndpointSliceController, MANAGED_BY, desiredEndpointSlices } from '../../src/sim/endpoint-slice-controller';
import { SimKubeApi } from '../../src/sim/kube-api-client';
import { KubeApiStandIn } from '../../src/sim/kube-api-server';
import { writeKubeconfig } from '../helpers/kubeconfig';

const ready = [{ type: 'Ready', status: 'True' }];

function pod(name: string, ip: string | undefined, opts: { port?: number; labels?: Record<string, string>; ready?: boolean; deleting?: boolean; phase?: string; uid?: string } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: opts.uid ?? `uid-${name}`, labels: opts.labels ?? { app: 'web' }, ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { nodeName: 'node-1', containers: [{ name: 'app', command: ['true'], ports: [{ name: 'web', containerPort: opts.port ?? 7000 }] }] },
    status: { ...(ip ? { podIP: ip } : {}), phase: opts.phase ?? 'Running', conditions: opts.ready === false ? [{ type: 'Ready', status: 'False' }] : ready },
  } as Pod;
}

const service = (spec: Partial<KubeService['spec']> = {}): KubeService =>
  ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop', uid: 'uid-svc' },
    spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'web', protocol: 'TCP' }], ...spec },
  }) as KubeService;

describe('EndpointSlice controller stand-in: the slices the real controller writes', () => {
  it('resolves a named target port per pod and puts pods that resolve alike in one slice', () => {
    const slices = desiredEndpointSlices(service(), [pod('v1-a', '10.244.1.2'), pod('v1-b', '10.244.1.3'), pod('v2-a', '10.244.1.4', { port: 7002 })]);
    assert.equal(slices.length, 2);
    const byPort = new Map(slices.map((s) => [s.ports![0].port, s.endpoints!.map((e) => e.addresses[0])]));
    assert.deepEqual(byPort.get(7000), ['10.244.1.2', '10.244.1.3']);
    assert.deepEqual(byPort.get(7002), ['10.244.1.4']);
    for (const s of slices) {
      assert.equal(s.metadata.labels?.['kubernetes.io/service-name'], 'web');
      assert.equal(s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], MANAGED_BY);
      assert.equal(s.addressType, 'IPv4');
      assert.equal(s.ports![0].name, 'http');
    }
  });

  it('gives conditions as the pod says: not ready, terminating; leaves out pods without an IP or finished', () => {
    const slices = desiredEndpointSlices(service(), [
      pod('up', '10.244.1.2'),
      pod('warming', '10.244.1.3', { ready: false }),
      pod('leaving', '10.244.1.4', { deleting: true }),
      pod('pending', undefined),
      pod('done', '10.244.1.5', { phase: 'Succeeded' }),
      pod('other', '10.244.1.6', { labels: { app: 'db' } }),
    ]);
    const conditions = Object.fromEntries(slices.flatMap((s) => s.endpoints!).map((e) => [e.targetRef!.name, e.conditions]));
    assert.deepEqual(conditions, {
      up: { ready: true, serving: true, terminating: false },
      warming: { ready: false, serving: false, terminating: false },
      leaving: { ready: false, serving: true, terminating: true },
    });
    const all = desiredEndpointSlices(service({ publishNotReadyAddresses: true } as Partial<KubeService['spec']>), [pod('warming', '10.244.1.3', { ready: false })]);
    assert.equal(all[0].endpoints![0].conditions?.ready, true, 'publishNotReadyAddresses');
  });

  it('leaves a pod without the named port out, writes nothing for a Service without selector, and splits at 100 endpoints', () => {
    const noPort = { ...pod('bare', '10.244.1.9'), spec: { nodeName: 'node-1', containers: [{ name: 'app', command: ['true'] }] } } as Pod;
    const slices = desiredEndpointSlices(service(), [pod('a', '10.244.1.2'), noPort]);
    // A pod that resolves no port is still an endpoint, of a slice with no ports, as the real controller writes it.
    assert.deepEqual(slices.map((s) => [s.ports!.length, s.endpoints!.map((e) => e.targetRef!.name)]).sort(), [[0, ['bare']], [1, ['a']]]);
    assert.deepEqual(desiredEndpointSlices(service({ selector: undefined }), [pod('a', '10.244.1.2')]), []);
    const many = Array.from({ length: 250 }, (_, i) => pod(`p${i}`, `10.244.${1 + Math.floor(i / 200)}.${2 + (i % 200)}`));
    assert.deepEqual(desiredEndpointSlices(service(), many).map((s) => s.endpoints!.length), [100, 100, 50]);
  });

  it('makes translation from slices serve what translation from pod selectors serves (a rolling update with a named port)', () => {
    const pods = [pod('v1-a', '10.244.1.2'), pod('v2-a', '10.244.1.4', { port: 7002 }), pod('warming', '10.244.1.5', { ready: false })];
    const objects: KubeObject[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'sluice.dev/mesh': 'enabled' } } }, ...pods, service()];
    const sourced = (list: KubeObject[]): SourcedObject[] => list.map((object) => ({ object, source: 'test' }));
    const fromSelectors = translate(sourced(objects), 'v', undefined, undefined, 'pod-selectors');
    const fromSlices = translate(sourced([...objects, ...desiredEndpointSlices(service(), pods)]), 'v', undefined, undefined, 'endpoint-slices');
    assert.deepEqual(fromSlices.errors, []);
    const endpoints = (t: typeof fromSlices) => t.snapshot.services[0].endpoints.map((e) => [e.address, e.ready, e.targetPorts?.['80'] ?? t.snapshot.services[0].ports[0].targetPort]).sort();
    assert.deepEqual(endpoints(fromSlices), endpoints(fromSelectors));
    assert.deepEqual(endpoints(fromSlices), [['10.244.1.2', true, 7000], ['10.244.1.4', true, 7002], ['10.244.1.5', false, 7000]]);
  });
});

describe('the sim writes its cluster through the API stand-in', () => {
  let api: KubeApiStandIn;
  let client: SimKubeApi;
  let dir: string;
  let source: KubernetesSource;
  let published: SourcedObject[][] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-sim-kube-api-'));
    api = await KubeApiStandIn.start({ bookmarkIntervalMs: 50, startRevision: 1000 });
    new EndpointSliceController(api).start();
    await api.listenUnix(path.join(dir, 'api.sock'));
    client = new SimKubeApi(path.join(dir, 'api.sock'), api.token);
    source = new KubernetesSource(loadKubeConfig(writeKubeconfig(dir, api)), pino({ level: 'silent' }), (objects) => published.push(objects), { debounceMs: 5 });
    source.start();
  });

  after(async () => {
    source?.stop();
    await api?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const served = async (revision: number) => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const behind = source.status().filter((r) => !(Number(r.servedResourceVersion) >= revision));
      if (source.synced && behind.length === 0) return;
      if (Date.now() > deadline) throw new Error(`not served through ${revision}: ${JSON.stringify(behind)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const lastPublished = (kind: string) => (published[published.length - 1] ?? []).filter((s) => s.object.kind === kind).map((s) => s.object);

  it('creates, replaces and deletes with POST, PUT and DELETE; a second sync of the same objects writes nothing', async () => {
    const ns: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
    assert.equal(await client.sync([ns, pod('a', '10.244.1.2'), service()]), 3);
    assert.equal(await client.sync([ns, pod('a', '10.244.1.2'), service()]), 0);
    assert.deepEqual(api.objectsOf('EndpointSlice').map((s) => (s.endpoints as { addresses: string[] }[]).map((e) => e.addresses[0])), [['10.244.1.2']], 'the controller wrote the slice');
    assert.equal(await client.sync([ns, pod('a', '10.244.1.2', { labels: { app: 'web', v: '2' } }), service()]), 1);
    assert.equal(await client.sync([ns, service()]), 1);
    assert.deepEqual(api.objectsOf('Pod'), []);
    assert.deepEqual(api.objectsOf('EndpointSlice').map((s) => s.endpoints ?? []), [[]], 'the slice follows; the sim never deletes the controller\'s slices');
    assert.equal(await client.sync([ns]), 1);
    assert.deepEqual(api.objectsOf('EndpointSlice'), [], 'a Service\'s slices go with it');
  });

  it('replaces a pod whose uid changed by deleting and creating it', async () => {
    await client.sync([pod('a', '10.244.1.2', { uid: 'first' })]);
    await client.sync([pod('a', '10.244.1.2', { uid: 'second' })]);
    assert.deepEqual(api.objectsOf('Pod').map((p) => p.metadata.uid), ['second']);
    await client.sync([]);
  });

  it('answers refused writes as kube-apiserver does', async () => {
    const body = pod('x', '10.244.1.2');
    assert.equal((await client.request('POST', '/api/v1/namespaces/shop/pods', body)).status, 201);
    assert.equal((await client.request('POST', '/api/v1/namespaces/shop/pods', body)).status, 409, 'AlreadyExists');
    assert.equal((await client.request('PUT', '/api/v1/namespaces/shop/pods/x', { ...body, metadata: { ...body.metadata, resourceVersion: '1' } })).status, 409, 'Conflict on a stale resourceVersion');
    assert.equal((await client.request('PUT', '/api/v1/namespaces/shop/pods/nope', { ...body, metadata: { ...body.metadata, name: 'nope' } })).status, 404);
    assert.equal((await client.request('POST', '/api/v1/namespaces/other/pods', body)).status, 400, 'namespace of the body is not the URL\'s');
    assert.equal((await client.request('GET', '/api/v1/namespaces/shop/pods/x')).status, 200);
    assert.equal((await client.request('DELETE', '/api/v1/namespaces/shop/pods/x')).status, 200);
    assert.equal((await client.request('DELETE', '/api/v1/namespaces/shop/pods/x')).status, 404);
    assert.equal((await new SimKubeApi(path.join(dir, 'api.sock'), 'wrong').request('GET', '/api/v1/pods')).status, 401, 'the socket still wants the token');
    // Nothing a client sends stops the stand-in: a body that is not JSON, an object the slice controller cannot read.
    const raw = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: path.join(dir, 'api.sock'), path: '/api/v1/namespaces/shop/pods', method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('{not json');
    });
    assert.ok(raw >= 400 && raw < 600, `a body that is not JSON is an error answer (${raw})`);
    const odd = { ...pod('odd', '10.244.1.9'), status: { podIP: 42, phase: 'Running', conditions: ready } };
    assert.equal((await client.request('POST', '/api/v1/namespaces/shop/pods', odd)).status, 201, 'stored; the slice controller skips what it cannot read');
    assert.equal((await client.request('DELETE', '/api/v1/namespaces/shop/pods/odd')).status, 200, 'and the stand-in still answers');
    // A restarted stand-in starts past its old resourceVersions: watching from before is Gone.
    assert.ok((await client.revision()) > 1000);
  });

  it('kubectl finds the kinds through discovery and lists them', async () => {
    await client.sync([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, pod('a', '10.244.1.2'), service()]);
    const kubeconfig = writeKubeconfig(dir, api);
    // Asynchronously: the stand-in answers from this process.
    const kubectl = (...args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, HOME: dir }, timeout: 30000 }, (err, stdout, stderr) => (err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr}`)) : resolve(stdout))),
      );
    const pods = JSON.parse(await kubectl('get', 'pods', '-A', '-o', 'json')) as { items: KubeObject[] };
    assert.deepEqual(pods.items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`), ['shop/a']);
    const slices = JSON.parse(await kubectl('get', 'endpointslices', '-n', 'shop', '-o', 'json')) as { items: KubeObject[] };
    assert.equal(slices.items.length, 1, 'the controller stand-in\'s slice');
    assert.match(await kubectl('get', 'sap', '-A'), /No resources found|^$/, 'the short name of the policy kind resolves');
  });

  it('the Kubernetes source reports each resource served through the API\'s current resourceVersion once a change is published', async () => {
    await client.sync([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, pod('a', '10.244.1.2'), service()]);
    const revision = await client.revision();
    await served(revision);
    assert.deepEqual(lastPublished('Pod').map((p) => p.metadata.name), ['a']);
    assert.equal(lastPublished('EndpointSlice').length, 1, 'the slice written inside the pod\'s write is served too');
    // Resources that did not change (policies) are carried forward by bookmarks.
    const policies = source.status().find((r) => r.resource === 'authorizationpolicies')!;
    assert.ok(Number(policies.servedResourceVersion) >= revision);
  });
});
