// The Kubernetes source's informers against the API stand-in (loopback, a
// port the OS picks): the initial list, adds, updates and deletes, a dropped
// watch resuming from its resourceVersion without a new list, 410 Gone
// (as an ERROR event and as HTTP 410) listing again, errors retried with
// backoff, slow answers, bookmarks; and after all of it the source holds
// exactly what the API holds, each object once.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { SourcedObject } from '../../src/control/kubernetes-objects';
import { KUBERNETES_SOURCE, KubernetesSource, backoffDelay, loadKubeConfig } from '../../src/control/kubernetes-source';
import { writeKubeconfig } from '../helpers/kubeconfig';
import { renderObjects } from '../../src/control/render';
import { KubeApiStandIn, type StoredObject } from '../../src/sim/kube-api-server';

const logger = pino({ level: 'silent' });

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}


const namespace = (name: string): StoredObject => ({ kind: 'Namespace', metadata: { name, labels: { 'sluice.dev/mesh': 'enabled' } } });
const pod = (name: string, ip: string, labels: Record<string, string> = { app: 'web' }): StoredObject => ({
  kind: 'Pod',
  metadata: { name, namespace: 'shop', labels },
  spec: { nodeName: 'node-1', containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { podIP: ip, phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
});
const service: StoredObject = {
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
};
const slice = (endpoints: { ip: string; pod: string; uid: string; ready?: boolean }[]): StoredObject => ({
  kind: 'EndpointSlice',
  metadata: { name: 'web-x1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, nodeName: 'node-1', targetRef: { kind: 'Pod', namespace: 'shop', name: e.pod, uid: e.uid } })),
});
const policy: StoredObject = {
  apiVersion: 'security.sluice.dev/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'web-from-shop', namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] },
};

describe('Kubernetes source: informers against the API stand-in', () => {
  let api: KubeApiStandIn;
  let source: KubernetesSource;
  let dir: string;
  let published: SourcedObject[][] = [];
  const last = () => published[published.length - 1] ?? [];
  const names = (kind: string) => last().filter((s) => s.object.kind === kind).map((s) => s.object.metadata.name);
  const podNamed = (name: string) => last().find((s) => s.object.kind === 'Pod' && s.object.metadata.name === name)?.object;

  before(async () => {
    api = await KubeApiStandIn.start({ bookmarkIntervalMs: 50 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-source-'));
    api.apply(namespace('shop'));
    const a = api.apply(pod('web-a', '10.244.1.2'));
    const b = api.apply(pod('web-b', '10.244.1.3'));
    api.apply(service);
    api.apply(slice([{ ip: '10.244.1.2', pod: 'web-a', uid: a.metadata.uid! }, { ip: '10.244.1.3', pod: 'web-b', uid: b.metadata.uid! }]));
    api.apply(policy);
    source = new KubernetesSource(loadKubeConfig(writeKubeconfig(dir, api)), logger, (objects) => published.push(objects), { baseBackoffMs: 20, maxBackoffMs: 200, debounceMs: 5 });
    source.start();
  });

  after(async () => {
    source?.stop();
    await api?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists every resource once, then publishes one whole view, typed, to the same translation as manifests', async () => {
    await waitFor('the first publish', () => published.length > 0);
    assert.ok(source.synced);
    assert.deepEqual(names('Namespace'), ['shop']);
    assert.deepEqual(names('Pod'), ['web-a', 'web-b']);
    assert.deepEqual(names('EndpointSlice'), ['web-x1']);
    // List items of built-in kinds come without kind/apiVersion; the source types them.
    assert.equal(podNamed('web-a')?.apiVersion, 'v1');
    assert.ok(last().every((s) => s.source === KUBERNETES_SOURCE));
    for (const r of ['namespaces', 'pods', 'services', 'endpointslices', 'authorizationpolicies', 'peerauthentications']) {
      assert.equal(api.requests(r).lists, 1, r);
    }
    const r = renderObjects(last(), 'v1', { trustDomain: 'cluster.local', ranges: (await import('../../src/model/cluster-ranges')).defaultClusterRanges(), endpointSource: 'endpoint-slices' });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.services[0].endpoints.map((e) => [e.address, e.ready]), [['10.244.1.2', true], ['10.244.1.3', true]]);
    assert.deepEqual(r.authorizationPolicies.map((p) => p.name), ['web-from-shop']);
  });

  it('follows adds, updates and deletes through the watch', async () => {
    api.apply(pod('web-c', '10.244.1.4'));
    await waitFor('web-c added', () => names('Pod').includes('web-c'));
    api.apply(pod('web-c', '10.244.1.4', { app: 'web', version: 'v2' }));
    await waitFor('web-c updated', () => podNamed('web-c')?.metadata.labels?.version === 'v2');
    api.delete('Pod', 'shop', 'web-c');
    await waitFor('web-c deleted', () => !names('Pod').includes('web-c'));
    assert.equal(api.requests('pods').lists, 1, 'no new list for ordinary changes');
  });

  it('a dropped watch resumes from its resourceVersion, without a new list, and misses nothing', async () => {
    const watchesBefore = api.requests('pods').watches;
    api.closeWatches('pods');
    // Changed while the client is away: the resumed watch replays it.
    api.apply(pod('web-d', '10.244.1.5'));
    await waitFor('web-d', () => names('Pod').includes('web-d'));
    assert.ok(api.requests('pods').watches > watchesBefore);
    assert.equal(api.requests('pods').lists, 1);
    const from = api.requests('pods').watchedFrom.at(-1)!;
    assert.match(from, /^[1-9][0-9]*$/, 'resumed from a resourceVersion, not from scratch');
    // A closed stream injected at the next watch is resumed the same way.
    api.failNextWatch('pods', 'close');
    api.closeWatches('pods');
    api.apply(pod('web-e', '10.244.1.6'));
    await waitFor('web-e', () => names('Pod').includes('web-e'));
    assert.equal(api.requests('pods').lists, 1);
  });

  it('410 Gone (an ERROR event with a Status, or HTTP 410) lists again; objects deleted meanwhile go away', async () => {
    // A change elsewhere, then compaction at once: the pods watch's resourceVersion (even from a bookmark) is now too old.
    api.apply(namespace('elsewhere'));
    api.compact();
    api.closeWatches('pods');
    api.delete('Pod', 'shop', 'web-d');
    api.apply(pod('web-f', '10.244.1.7'));
    await waitFor('relist after the 410 event', () => names('Pod').includes('web-f') && !names('Pod').includes('web-d'));
    assert.equal(api.requests('pods').lists, 2);
    assert.ok(source.status().find((s) => s.resource === 'pods')!.expired >= 1);

    api.failNextWatch('pods', 'gone-http');
    api.closeWatches('pods');
    api.delete('Pod', 'shop', 'web-e');
    await waitFor('relist after HTTP 410', () => !names('Pod').includes('web-e'));
    assert.equal(api.requests('pods').lists, 3);
  });

  it('other errors are retried with backoff and resume the watch; the last objects keep being served meanwhile', async () => {
    const listsBefore = api.requests('services').lists;
    api.failNextWatch('services', 'error');
    api.failNextWatch('services', 'error');
    api.closeWatches('services');
    await waitFor('two failed watches', () => source.status().find((s) => s.resource === 'services')!.errors >= 2);
    assert.deepEqual(names('Service'), ['web']);
    api.apply({ ...service, metadata: { ...service.metadata, labels: { tier: 'front' } } });
    await waitFor('service update after the retries', () => last().find((s) => s.object.kind === 'Service')?.object.metadata.labels?.tier === 'front');
    assert.equal(api.requests('services').lists, listsBefore, 'resumed from the resourceVersion');
    assert.equal(source.status().find((s) => s.resource === 'services')!.lastError, '');
  });

  it('slow answers delay but do not break the watch', async () => {
    api.delayMs = 300;
    api.closeWatches('pods');
    api.apply(pod('web-g', '10.244.1.8'));
    await waitFor('web-g despite a slow API', () => names('Pod').includes('web-g'));
    api.delayMs = 0;
  });

  it('bookmarks move the resourceVersion forward without changes to the resource', async () => {
    api.apply(namespace('other'));
    await waitFor('pods at the latest resourceVersion', () => source.status().find((s) => s.resource === 'pods')!.resourceVersion === api.resourceVersion);
  });

  it('after all of that, holds exactly what the API holds, each object once and at its resourceVersion', async () => {
    await waitFor('settled', () => names('Pod').includes('web-g') && names('Namespace').includes('other'));
    const held = source.objects().map((s) => `${s.object.kind}/${s.object.metadata.namespace ?? ''}/${s.object.metadata.name}@${s.object.metadata.resourceVersion}`);
    assert.equal(new Set(held).size, held.length, 'no object twice');
    const expected = ['Namespace', 'Pod', 'Service', 'EndpointSlice', 'AuthorizationPolicy', 'PeerAuthentication'].flatMap((kind) => api.objectsOf(kind).map((o) => `${kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}@${o.metadata.resourceVersion}`));
    assert.deepEqual([...held].sort(), [...expected].sort());
  });
});

describe('Kubernetes source: configuration and failures', () => {
  it('a wrong token is reported, and nothing is published', async () => {
    const api = await KubeApiStandIn.start();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-source-'));
    const published: SourcedObject[][] = [];
    const source = new KubernetesSource(loadKubeConfig(writeKubeconfig(dir, api, 'not-the-token')), logger, (o) => published.push(o), { baseBackoffMs: 20, maxBackoffMs: 100 });
    try {
      source.start();
      await waitFor('an error', () => source.problems.length === 6);
      assert.match(source.problems[0].reason, /HTTP 401/);
      assert.equal(source.synced, false);
      assert.equal(published.length, 0);
    } finally {
      source.stop();
      await api.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a kubeconfig, in-cluster configuration is required', () => {
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    delete process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_PORT;
    try {
      assert.throws(() => loadKubeConfig(undefined));
    } finally {
      if (saved.host !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved.host;
      if (saved.port !== undefined) process.env.KUBERNETES_SERVICE_PORT = saved.port;
    }
  });

  it('backoff is full jitter, doubling, capped', () => {
    assert.equal(backoffDelay(0, 500, 30_000, () => 0.999), 499);
    assert.equal(backoffDelay(3, 500, 30_000, () => 0.5), 2000);
    assert.equal(backoffDelay(20, 500, 30_000, () => 0.5), 15_000);
    assert.equal(backoffDelay(5, 500, 30_000, () => 0), 0);
  });
});
