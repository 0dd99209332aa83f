// TLS between agents and the control plane. The control plane serves with a
// certificate for its own SPIFFE ID, issued by its CA, written to files that
// grpc-js re-reads (so it renews without a restart); agents verify it
// against the mesh root they were given and check that exact identity.
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../files/atomic-write';
import type { CertificateAuthority } from './ca';
import { createKeyAndCsr } from './csr';
import { controlPlaneIdentity } from './spiffe';

const CERT_FILE = 'control-cert.pem';
const KEY_FILE = 'control-key.pem';
const TTL_SECONDS = 24 * 3600;
/** Renewed well before expiry; grpc-js picks the new files up within a minute. */
const RENEW_EVERY_MS = 8 * 3600 * 1000;

async function issueServing(ca: CertificateAuthority, dir: string): Promise<void> {
  const identity = controlPlaneIdentity(ca.trustDomain);
  const { keyPem, csrPem } = await createKeyAndCsr(identity);
  const r = await ca.issue({ csrPem, node: '' }, (id) => (id === identity ? undefined : `the control plane serves only as ${identity}`), { ttlSeconds: TTL_SECONDS });
  if (!r.ok) throw new Error(`control plane certificate: ${r.reason}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(path.join(dir, KEY_FILE), keyPem, { mode: 0o600 });
  writeFileAtomic(path.join(dir, CERT_FILE), [r.certPem, ...r.chainPem.slice(0, -1)].join(''), { mode: 0o644 });
}

/** Issues the serving certificate now and every few hours; returns server credentials that follow the files. */
export async function controlPlaneServerCredentials(ca: CertificateAuthority, dir: string, onError: (err: Error) => void): Promise<grpc.ServerCredentials> {
  await issueServing(ca, dir);
  setInterval(() => issueServing(ca, dir).catch(onError), RENEW_EVERY_MS).unref();
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: path.join(dir, CERT_FILE),
    privateKeyFile: path.join(dir, KEY_FILE),
    refreshIntervalMs: 60000,
  });
  return grpc.experimental.createCertificateProviderServerCredentials(provider, null, false);
}

/** Channel credentials that trust only the mesh root and only the control plane's identity. */
export function controlPlaneChannelCredentials(rootPemFile: string, trustDomain: string): grpc.ChannelCredentials {
  let root: Buffer;
  try {
    root = fs.readFileSync(rootPemFile);
  } catch (err) {
    throw new Error(`--control-plane-ca ${rootPemFile}: ${(err as Error).message}`);
  }
  const want = controlPlaneIdentity(trustDomain);
  return grpc.credentials.createSsl(root, null, null, {
    checkServerIdentity: (_host, cert) => {
      const uris = (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:'));
      return uris.length === 1 && uris[0] === `URI:${want}` ? undefined : new Error(`control plane presented ${uris.join(',') || 'no identity'}, expected ${want}`);
    },
  });
}
