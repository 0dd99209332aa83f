// The mesh root kept in the cluster (--ca-secret): created on first start,
// loaded by every later start and every replica, published for agents, and
// never overwritten when it is wrong. Against the Kubernetes API stand-in,
// which answers Secret and ConfigMap requests as kube-apiserver does.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadKubeConfig } from '../../src/control/kubernetes-source';
import { clusterMeshRoot, parseObjectRef, type ClusterRootOptions } from '../../src/control/ca-secret';
import { CertificateAuthority } from '../../src/identity/ca';
import { KubeApiStandIn } from '../../src/sim/kube-api-server';
import { loadControlConfig } from '../../src/config/control-config';
import { writeKubeconfig } from '../helpers/kubeconfig';

const dataOf = (o: unknown): Record<string, string> => ((o ?? {}) as { data?: Record<string, string> }).data ?? {};

describe('mesh root in a Secret', () => {
  let api: KubeApiStandIn;
  let dir: string;
  let kubeconfig: string;
  const logs: string[] = [];

  before(async () => {
    api = await KubeApiStandIn.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cluster-ca-'));
    kubeconfig = writeKubeconfig(dir, api);
  });
  after(async () => {
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const options = (secret: string, configMap?: string): ClusterRootOptions => ({
    secret: parseObjectRef('ca-secret', secret),
    rootConfigMap: configMap ? parseObjectRef('ca-root-configmap', configMap) : undefined,
    trustDomain: 'cluster.local',
    log: (m) => logs.push(m),
  });

  it('is created on first start, and every later start loads the same root', async () => {
    const first = await clusterMeshRoot(loadKubeConfig(kubeconfig), options('sluice-system/sluice-ca', 'sluice-system/sluice-ca-root'));
    const secret = api.plainObjectOf('Secret', 'sluice-system', 'sluice-ca');
    assert.ok(secret, 'the Secret exists');
    assert.deepEqual(Object.keys(dataOf(secret)).sort(), ['root-cert.pem', 'root-key.pem']);
    assert.deepEqual(dataOf(api.plainObjectOf('ConfigMap', 'sluice-system', 'sluice-ca-root')), { 'root-cert.pem': first.rootPem }, 'the root certificate alone is published, no key');
    const writes = api.plainWrites.length;
    const again = await clusterMeshRoot(loadKubeConfig(kubeconfig), options('sluice-system/sluice-ca', 'sluice-system/sluice-ca-root'));
    assert.equal(again.rootFingerprint, first.rootFingerprint);
    assert.equal(api.plainWrites.length, writes, 'nothing is written when all is in place');
  });

  it('two replicas starting together end with one root', async () => {
    const [a, b] = await Promise.all([1, 2].map(() => clusterMeshRoot(loadKubeConfig(kubeconfig), options('race/sluice-ca', 'race/sluice-ca-root'))));
    assert.equal(a.rootFingerprint, b.rootFingerprint);
    assert.equal(api.plainWrites.filter((w) => w === 'POST secrets race/sluice-ca').length, 1, 'one create won; the other replica loaded it');
  });

  it('uses a root the operator created (sluice-control ca), and republishes a stale ConfigMap', async () => {
    const own = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    api.putPlainObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'own-ca', namespace: 'ops' },
      data: { 'root-cert.pem': Buffer.from(own.rootPem).toString('base64'), 'root-key.pem': Buffer.from(await own.keyPem()).toString('base64') },
    });
    api.putPlainObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'own-ca-root', namespace: 'ops' }, data: { 'root-cert.pem': 'an old root', note: 'kept' } });
    const ca = await clusterMeshRoot(loadKubeConfig(kubeconfig), options('ops/own-ca', 'ops/own-ca-root'));
    assert.equal(ca.rootFingerprint, own.rootFingerprint);
    assert.deepEqual(dataOf(api.plainObjectOf('ConfigMap', 'ops', 'own-ca-root')), { 'root-cert.pem': own.rootPem, note: 'kept' });
  });

  it('a Secret without the key is refused by name and key, and left as it is', async () => {
    const own = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    api.putPlainObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'half', namespace: 'ops' }, data: { 'root-cert.pem': Buffer.from(own.rootPem).toString('base64') } });
    await assert.rejects(clusterMeshRoot(loadKubeConfig(kubeconfig), options('ops/half')), /Secret ops\/half, key root-key\.pem: missing/);
    assert.equal(api.plainWrites.some((w) => w.includes('ops/half')), false, 'never overwritten');
  });

  it('a Secret whose key is not the certificate\'s is refused, naming where', async () => {
    const a = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    const b = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    api.putPlainObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'mixed', namespace: 'ops' },
      data: { 'root-cert.pem': Buffer.from(a.rootPem).toString('base64'), 'root-key.pem': Buffer.from(await b.keyPem()).toString('base64') },
    });
    await assert.rejects(clusterMeshRoot(loadKubeConfig(kubeconfig), options('ops/mixed')), /Secret ops\/mixed, key root-key\.pem: does not match the certificate in Secret ops\/mixed, key root-cert\.pem/);
  });

  it('flags: --ca-secret needs the Kubernetes API, --ca-root-configmap needs --ca-secret, both are NAMESPACE/NAME', () => {
    assert.throws(() => loadControlConfig(['--manifests', dir, '--ca-secret', 'a/b'], {}), /--ca-secret needs the Kubernetes API/);
    assert.throws(() => loadControlConfig(['--in-cluster', '--ca-root-configmap', 'a/b'], {}), /--ca-root-configmap publishes the root of --ca-secret/);
    assert.throws(() => loadControlConfig(['--in-cluster', '--ca-secret', 'sluice-ca'], {}), /caSecret|ca-secret/);
    assert.throws(() => parseObjectRef('ca-secret', 'Bad/Name'), /--ca-secret "Bad\/Name": expected NAMESPACE\/NAME/);
    assert.equal(loadControlConfig(['--in-cluster', '--ca-secret', 'sluice-system/sluice-ca'], {}).caSecret, 'sluice-system/sluice-ca');
  });
});
