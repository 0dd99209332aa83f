// Workload certificates: sluice-control's CA over gRPC with node credentials,
// and the agent-side manager that obtains, rotates and keeps them.
import * as assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { CertificateService } from '../../src/control/certificate-service';
import { CertificateAuthority } from '../../src/identity/ca';
import { CertificateManager } from '../../src/identity/certificate-manager';
import { NODE_METADATA, certificateServiceClient, certificateServiceDefinition, type CreateCertificateResponse } from '../../src/identity/certificate-protocol';
import { createKeyAndCsr } from '../../src/identity/csr';
import { SharedSecretAuthenticator, nodeToken, verifyNodeToken } from '../../src/identity/node-credential';
import type { Workload } from '../../src/model/resources';

const quiet = pino({ level: 'silent' });
const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const wl = (name: string, node: string, sa: string): Workload => ({
  uid: name,
  name,
  namespace: 'shop',
  node,
  ips: ['10.244.1.2'],
  serviceAccount: sa,
  labels: {},
  identity: `spiffe://cluster.local/ns/shop/sa/${sa}`,
  captured: true,
  ready: true,
  nodeAddress: '',
});
const workloads = [wl('web-1', 'node-1', 'web'), wl('db-1', 'node-2', 'db')];

describe('node credentials', () => {
  it('verify only for the node they were made for', () => {
    const t = nodeToken(secret, 'node-1');
    assert.equal(verifyNodeToken(secret, 'node-1', t), true);
    assert.equal(verifyNodeToken(secret, 'node-2', t), false);
    assert.equal(verifyNodeToken(Buffer.from('another secret, 32 bytes long!!!'), 'node-1', t), false);
    assert.equal(verifyNodeToken(secret, 'node-1', 'abcd'), false);
  });
});

describe('certificate service and manager (gRPC on loopback)', { timeout: 60000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-certs-'));
  let server: grpc.Server;
  let port = 0;
  let ca: CertificateAuthority;
  let service: CertificateService;

  const ask = async (node: string, token: string, csr: string): Promise<{ err?: grpc.ServiceError; res?: CreateCertificateResponse }> => {
    const Ctor = certificateServiceClient();
    const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
      CreateCertificate(r: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: CreateCertificateResponse) => void): void;
      close(): void;
    };
    const md = new grpc.Metadata();
    md.set(NODE_METADATA, node);
    md.set('authorization', `Bearer ${token}`);
    return new Promise((resolve) =>
      client.CreateCertificate({ csr, validity_seconds: 0 }, md, (err, res) => {
        client.close();
        resolve(err ? { err } : { res });
      }),
    );
  };

  before(async () => {
    ca = await CertificateAuthority.loadOrCreate(path.join(dir, 'ca'), { trustDomain: 'cluster.local' });
    service = new CertificateService(ca, new SharedSecretAuthenticator(secret), () => workloads, quiet);
    server = new grpc.Server();
    server.addService(certificateServiceDefinition(), service.implementation());
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });
  after(async () => {
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('issues a certificate for an identity running on the asking node, chained to the root', async () => {
    const { csrPem } = await createKeyAndCsr('spiffe://cluster.local/ns/shop/sa/web');
    const { err, res } = await ask('node-1', nodeToken(secret, 'node-1'), csrPem);
    assert.equal(err, undefined);
    const leaf = new X509Certificate(res!.cert_chain[0]);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/web');
    assert.ok(leaf.verify(new X509Certificate(ca.rootPem).publicKey));
  });

  it('refuses an identity of another node, a bad credential and a malformed CSR, each saying why', async () => {
    const { csrPem } = await createKeyAndCsr('spiffe://cluster.local/ns/shop/sa/db');
    let r = await ask('node-1', nodeToken(secret, 'node-1'), csrPem);
    assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED);
    assert.match(r.err!.details, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db.*node-1/);
    r = await ask('node-2', nodeToken(secret, 'node-1'), csrPem);
    assert.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
    assert.match(r.err!.details, /node credential for node-2 does not verify/);
    r = await ask('node-2', nodeToken(secret, 'node-2'), '-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n');
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(service.counters.refused, { NOT_AUTHORIZED: 1, UNAUTHENTICATED: 1, BAD_CSR: 1 });
  });

  it('the agent-side manager obtains, rotates at half-life, and keeps a valid certificate when renewal fails', async () => {
    const keepDir = path.join(dir, 'credentials');
    const options = { target: `127.0.0.1:${port}`, node: 'node-1', token: () => nodeToken(secret, 'node-1'), validitySeconds: 6, initialBackoffMs: 200, maxBackoffMs: 400, keepDir };
    const manager = new CertificateManager(options, quiet);
    const until = async (check: () => boolean, what: string) => {
      for (let i = 0; i < 200; i++) {
        if (check()) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out: ${what} (${JSON.stringify(manager.list())})`);
    };
    manager.start();
    try {
      manager.setIdentities(['spiffe://cluster.local/ns/shop/sa/web']);
      await until(() => manager.list()[0]?.state === 'valid', 'first certificate');
      const first = manager.list()[0];
      assert.ok(manager.credentials(first.identity)?.keyPem.includes('PRIVATE KEY'), 'key held in memory for TLS');
      // A 6 s certificate is renewed about 3 s after it arrives, not before.
      const renewAt = Date.parse(first.renewAt!);
      assert.ok(renewAt > Date.now() + 1500 && renewAt < Date.now() + 4000, `renewal planned at half-life: ${first.renewAt}`);
      await until(() => manager.list()[0]?.serial !== first.serial, 'rotation at half-life');
      // The CA goes away: the still-valid certificate stays, the failure is shown.
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      const held = manager.list()[0];
      await until(() => (manager.list()[0]?.failures ?? 0) > 0, 'a failed renewal');
      const after = manager.list()[0];
      assert.equal(after.serial, held.serial, 'kept the certificate it had');
      assert.equal(after.state, 'valid');
      assert.match(after.lastError ?? '', /UNAVAILABLE|No connection|ECONNREFUSED/);
    } finally {
      manager.stop();
    }
    // The agent restarts while the CA is still away: the certificate it held
    // is served at once from the root-only keep directory.
    assert.equal(fs.statSync(keepDir).mode & 0o777, 0o700);
    const [kept] = fs.readdirSync(keepDir);
    assert.equal(fs.statSync(path.join(keepDir, kept)).mode & 0o777, 0o600);
    const restarted = new CertificateManager(options, quiet);
    try {
      restarted.setIdentities(['spiffe://cluster.local/ns/shop/sa/web']);
      assert.equal(restarted.list()[0].state, 'valid');
      assert.ok(restarted.credentials('spiffe://cluster.local/ns/shop/sa/web'), 'credentials for TLS right after the restart');
      assert.equal(restarted.allValid(), true);
      // An identity no longer on the node is forgotten, its key removed.
      restarted.setIdentities([]);
      assert.deepEqual(fs.readdirSync(keepDir), []);
    } finally {
      restarted.stop();
    }
  });
});
