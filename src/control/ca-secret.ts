// The mesh root kept in the cluster, as istiod keeps istio-ca-secret: on
// first start the control plane generates the root and creates the Secret
// (keys root-cert.pem, root-key.pem); every replica, and every later start,
// loads it from there. The root certificate alone is published in a
// ConfigMap that agents mount to verify the control plane. A Secret an
// operator created beforehand (`sluice-control ca`) is used as it is.
// Loaded only with the Kubernetes source, as the client library is.
import { CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { CertificateAuthority, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../identity/ca';
import { apiErrorMessage, apiStatusCode } from './kubernetes-api-errors';

/** "namespace/name" of a namespaced object. */
export interface ObjectRef {
  namespace: string;
  name: string;
}

/**
 * Where clusterMeshRoot keeps the mesh root: `secret` holds root-cert.pem and
 * root-key.pem; a new root is created for `trustDomain`; `log` is told what was
 * created or published.
 */
export interface ClusterRootOptions {
  secret: ObjectRef;
  /** Where the root certificate is published for agents; undefined: not published. */
  rootConfigMap?: ObjectRef;
  trustDomain: string;
  log: (message: string) => void;
}

/** Parses "namespace/name" (both DNS-1123 labels); throws naming the flag and the value. */
export function parseObjectRef(flag: string, value: string): ObjectRef {
  const m = /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?)$/.exec(value);
  if (!m) throw new Error(`--${flag} ${JSON.stringify(value)}: expected NAMESPACE/NAME`);
  return { namespace: m[1], name: m[3] };
}

function apiError(err: unknown, what: string): Error {
  return new Error(`${what}: ${apiErrorMessage(err)}`);
}

const code = apiStatusCode;

async function readSecret(api: CoreV1Api, ref: ObjectRef): Promise<V1Secret | undefined> {
  try {
    return await api.readNamespacedSecret(ref);
  } catch (err) {
    if (code(err) === 404) return undefined;
    throw apiError(err, `read Secret ${ref.namespace}/${ref.name}`);
  }
}

async function rootFromSecret(secret: V1Secret, ref: ObjectRef, trustDomain: string): Promise<CertificateAuthority> {
  const where = (key: string) => `Secret ${ref.namespace}/${ref.name}, key ${key}`;
  const text = (key: string): string => {
    const b64 = secret.data?.[key];
    if (b64 === undefined) throw new Error(`${where(key)}: missing (the Secret must hold ${ROOT_CERT_FILE} and ${ROOT_KEY_FILE}; it is left as it is)`);
    return Buffer.from(b64, 'base64').toString('utf8');
  };
  return CertificateAuthority.fromPem(text(ROOT_CERT_FILE), text(ROOT_KEY_FILE), { cert: where(ROOT_CERT_FILE), key: where(ROOT_KEY_FILE) }, { trustDomain });
}

/**
 * The mesh root from Secret `opts.secret`, created with a new root when
 * there is none. Two replicas starting together both try to create it; the
 * API server lets one win (409 AlreadyExists for the other), and the loser
 * loads the winner's. Then publishes the root certificate in
 * `opts.rootConfigMap` (created, or updated when it differs).
 *
 * Throws an Error naming the object, and the key, that is wrong: a Secret
 * without both keys, or whose root cannot serve as the CA, is never
 * overwritten. RBAC needed: secrets get + create, configmaps get + create +
 * update, in the Secret's and ConfigMap's namespace.
 */
export async function clusterMeshRoot(kubeConfig: KubeConfig, opts: ClusterRootOptions): Promise<CertificateAuthority> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const { secret: ref } = opts;
  let secret = await readSecret(api, ref);
  if (!secret) {
    const ca = await CertificateAuthority.create({ trustDomain: opts.trustDomain });
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'sluice' } },
      type: 'Opaque',
      data: { [ROOT_CERT_FILE]: Buffer.from(ca.rootPem).toString('base64'), [ROOT_KEY_FILE]: Buffer.from(await ca.keyPem()).toString('base64') },
    };
    try {
      secret = await api.createNamespacedSecret({ namespace: ref.namespace, body });
      opts.log(`created the mesh root in Secret ${ref.namespace}/${ref.name} (fingerprint ${ca.rootFingerprint})`);
    } catch (err) {
      if (code(err) !== 409) throw apiError(err, `create Secret ${ref.namespace}/${ref.name}`);
      // Another replica created it first: use theirs.
      secret = await readSecret(api, ref);
      if (!secret) throw new Error(`Secret ${ref.namespace}/${ref.name}: already exists, but cannot be read`);
    }
  }
  const ca = await rootFromSecret(secret, ref, opts.trustDomain);
  if (opts.rootConfigMap) await publishRoot(api, opts.rootConfigMap, ca.rootPem, opts.log);
  return ca;
}

/** Makes ConfigMap `ref` hold exactly `rootPem` under root-cert.pem (its other keys are kept). */
async function publishRoot(api: CoreV1Api, ref: ObjectRef, rootPem: string, log: (message: string) => void): Promise<void> {
  const what = `ConfigMap ${ref.namespace}/${ref.name}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let current: V1ConfigMap | undefined;
    try {
      current = await api.readNamespacedConfigMap(ref);
    } catch (err) {
      if (code(err) !== 404) throw apiError(err, `read ${what}`);
    }
    if (current?.data?.[ROOT_CERT_FILE] === rootPem) return;
    try {
      if (!current) {
        const body: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'sluice' } }, data: { [ROOT_CERT_FILE]: rootPem } };
        await api.createNamespacedConfigMap({ namespace: ref.namespace, body });
      } else {
        // resourceVersion makes the update conditional: a concurrent writer gets 409 and we read again.
        await api.replaceNamespacedConfigMap({ ...ref, body: { ...current, data: { ...(current.data ?? {}), [ROOT_CERT_FILE]: rootPem } } });
      }
      log(`published the mesh root certificate in ${what}`);
      return;
    } catch (err) {
      if (code(err) !== 409) throw apiError(err, `write ${what}`);
    }
  }
  throw new Error(`write ${what}: still conflicting after 5 attempts`);
}
