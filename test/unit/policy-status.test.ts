// The Accepted condition sluice-control writes on its policy objects: what
// it says, and end to end through the Kubernetes source, the control plane
// and the status subresource of the API stand-in: a served policy True, a
// rejected one False with the reason, a fixed one True again, and no write
// loop from the watch events the writes cause.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ControlPlane } from '../../src/control/control-plane';
import { KUBERNETES_SOURCE, KubernetesSource, loadKubeConfig } from '../../src/control/kubernetes-source';
import { PolicyStatusWriter, desiredPolicyStatus, type PolicyStatus } from '../../src/control/policy-status';
import { defaultRenderOptions } from '../../src/control/render';
import { KubeApiStandIn, type StoredObject } from '../../src/sim/kube-api-server';
import { writeKubeconfig } from '../helpers/kubeconfig';
import { until } from '../helpers/wait';

const quiet = pino({ level: 'silent' });
const API = 'security.sluice.dev/v1alpha1';
const good = (name: string) => ({
  apiVersion: API,
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] },
});
const bad = (name: string) => ({ ...good(name), spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['not a principal'] } }] }] } });

describe('policy status: what the Accepted condition says', () => {
  it('True when served; False with every reason when rejected; the transition time kept while it holds', () => {
    const object = { ...good('p'), metadata: { ...good('p').metadata, generation: 3 } };
    const ok = desiredPolicyStatus(object, [], 't1');
    assert.deepEqual(ok, { observedGeneration: 3, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'served to every agent', observedGeneration: 3, lastTransitionTime: 't1' }] });
    const errors = [{ source: KUBERNETES_SOURCE, object: 'AuthorizationPolicy shop/p', field: 'spec.rules[0]', reason: 'bad principal' }];
    const rejected = desiredPolicyStatus({ ...object, status: ok }, errors, 't2');
    assert.deepEqual([rejected.conditions[0].status, rejected.conditions[0].reason, rejected.conditions[0].message, rejected.conditions[0].lastTransitionTime], ['False', 'Invalid', 'spec.rules[0]: bad principal', 't2']);
    assert.equal(desiredPolicyStatus({ ...object, status: ok }, [], 't3').conditions[0].lastTransitionTime, 't1', 'unchanged status keeps its time');
  });
});

describe('policy status: written through the Kubernetes API (stand-in)', () => {
  let api: KubeApiStandIn;
  let source: KubernetesSource;
  let dir: string;
  const control = new ControlPlane(defaultRenderOptions, quiet);
  const statusOf = (name: string) => (api.objectsOf('AuthorizationPolicy').find((o) => o.metadata.name === name) as StoredObject & { status?: PolicyStatus } | undefined)?.status;
  const accepted = (name: string) => statusOf(name)?.conditions?.[0];

  before(async () => {
    api = await KubeApiStandIn.start({ bookmarkIntervalMs: 50 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-policy-status-'));
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    api.apply(good('allow-shop'));
    api.apply(bad('broken'));
    const kubeconfig = writeKubeconfig(dir, api);
    const writer = new PolicyStatusWriter((objectPath, status) => source.patchStatus(objectPath, status), quiet, (event) => source.createEvent(event.metadata.namespace, event), 'control-0');
    source = new KubernetesSource(loadKubeConfig(kubeconfig), quiet, (objects) => writer.update(objects, control.publish(objects).errors), { baseBackoffMs: 20, maxBackoffMs: 200, debounceMs: 5 });
    source.start();
  });

  after(async () => {
    source?.stop();
    await api?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a served policy is Accepted; a rejected one is not, with the reason', async () => {
    await until('both statuses', () => accepted('allow-shop') !== undefined && accepted('broken') !== undefined);
    assert.deepEqual([accepted('allow-shop')?.status, accepted('allow-shop')?.reason], ['True', 'Accepted']);
    assert.deepEqual([accepted('broken')?.status, accepted('broken')?.reason], ['False', 'Invalid']);
    assert.match(accepted('broken')!.message, /principals/);
    assert.equal(statusOf('broken')?.observedGeneration, 1);
  });

  it('writes once per change: the watch events of its own writes cause no more', async () => {
    const writes = api.statusPatches.length;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(api.statusPatches.length, writes);
  });

  it('a fixed policy becomes Accepted, for its new generation', async () => {
    api.apply(good('broken'));
    await until('the fixed status', () => accepted('broken')?.status === 'True');
    assert.equal(statusOf('broken')?.observedGeneration, 2);
    assert.equal(accepted('allow-shop')?.status, 'True');
  });

  it('an Event when a policy is rejected and when it is served again; none for a policy accepted from the start', async () => {
    await until('two events', () => api.events.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    const seen = api.events.map((e) => {
      const ev = e as StoredObject & { involvedObject: { kind: string; name: string }; reason: string; type: string; message: string; reportingInstance: string };
      return `${ev.involvedObject.kind}/${ev.involvedObject.name} ${ev.type} ${ev.reason} ${ev.metadata.namespace} ${ev.reportingInstance}`;
    });
    assert.deepEqual(seen, ['AuthorizationPolicy/broken Warning Rejected shop control-0', 'AuthorizationPolicy/broken Normal Accepted shop control-0']);
    assert.match(String((api.events[0] as { message?: string }).message), /^not served: .*principals/);
  });
});
