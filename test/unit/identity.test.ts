// The CA and its issuance rules. Issued certificates are checked with
// node:crypto and node:tls (OpenSSL), the verifiers peers will use, never only
// with the library that produced them.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { CertificateAuthority, CLOCK_SKEW_SECONDS, MAX_TTL_SECONDS, ROOT_CERT_FILE, ROOT_KEY_FILE, type IssueResult } from '../../src/identity/ca';
import { certificateInfo, createKeyAndCsr, renewAt } from '../../src/identity/csr';
import { nodeScopedAuthorizer } from '../../src/identity/issuance-policy';
import { formatSpiffeId, parseSpiffeId, principalOf, validateTrustDomain } from '../../src/identity/spiffe';
import type { Workload } from '../../src/model/resources';

x509.cryptoProvider.set(crypto.webcrypto);

const TD = 'cluster.local';
const CHECKOUT = 'spiffe://cluster.local/ns/shop/sa/checkout';
const WEB = 'spiffe://cluster.local/ns/front/sa/web';

function workload(identity: string, node: string, name = 'p'): Workload {
  const id = parseSpiffeId(identity);
  assert.ok(typeof id !== 'string', id as string);
  return { uid: `${id.namespace}/${name}`, name, namespace: id.namespace, node, ips: ['10.244.1.2'], serviceAccount: id.serviceAccount, labels: {}, identity, captured: true, ready: true, nodeAddress: '' };
}

const allowAll = () => undefined;

/** A CSR built by hand, for the shapes createKeyAndCsr never makes. */
async function csrWith(names: x509.JsonGeneralNames | undefined, opts: { key?: 'P-256' | 'P-384' | 'RSA'; extraSan?: x509.JsonGeneralNames } = {}): Promise<string> {
  const alg =
    opts.key === 'RSA'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: opts.key ?? 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const extensions: x509.Extension[] = [];
  if (names) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  if (opts.extraSan) extensions.push(new x509.SubjectAlternativeNameExtension(opts.extraSan));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg, extensions });
  return csr.toString('pem');
}

function csrDer(pem: string): Buffer {
  return Buffer.from(x509.PemConverter.decodeFirst(pem));
}

function csrPemOf(der: Buffer): string {
  return x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
}

function expectRefused(r: IssueResult, code: string, ...fragments: string[]): void {
  assert.equal(r.ok, false, 'expected a refusal');
  if (r.ok) return;
  assert.equal(r.code, code, r.reason);
  for (const f of fragments) assert.ok(r.reason.includes(f), `reason "${r.reason}" should mention "${f}"`);
}

function issued(r: IssueResult): Extract<IssueResult, { ok: true }> {
  if (!r.ok) assert.fail(`expected a certificate, got ${r.code}: ${r.reason}`);
  return r;
}

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ca-'));
  tmpDirs.push(d);
  return d;
}
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('SPIFFE IDs', () => {
  it('parses workload IDs into their parts and formats them back', () => {
    for (const [s, parts] of [
      [CHECKOUT, { trustDomain: TD, namespace: 'shop', serviceAccount: 'checkout' }],
      ['spiffe://example-org_1.io/ns/kube-system/sa/coredns.v2', { trustDomain: 'example-org_1.io', namespace: 'kube-system', serviceAccount: 'coredns.v2' }],
      ['spiffe://td/ns/a/sa/b', { trustDomain: 'td', namespace: 'a', serviceAccount: 'b' }],
    ] as const) {
      assert.deepEqual(parseSpiffeId(s), parts);
      assert.equal(formatSpiffeId(parts), s);
    }
  });

  it('refuses every other form, saying why', () => {
    const cases: [string, string][] = [
      ['', 'must start with "spiffe://"'],
      ['http://cluster.local/ns/a/sa/b', 'must start with "spiffe://"'],
      ['SPIFFE://cluster.local/ns/a/sa/b', 'must start with "spiffe://"'],
      ['cluster.local/ns/a/sa/b', 'must start with "spiffe://"'],
      ['spiffe://Cluster.Local/ns/a/sa/b', 'only lowercase letters'],
      ['spiffe:///ns/a/sa/b', 'trust domain is empty'],
      ['spiffe://cluster.local:8443/ns/a/sa/b', 'user or a port'],
      ['spiffe://admin@cluster.local/ns/a/sa/b', 'user or a port'],
      ['spiffe://cluster.local', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/ns/a', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/ns/a/sa/b/', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local//ns/a/sa/b', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/sa/b/ns/a', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/ns/a/sa/b/extra', '/ns/<namespace>/sa/<service account>'],
      ['spiffe://cluster.local/ns/a/sa/b?x=1', 'no query or fragment'],
      ['spiffe://cluster.local/ns/a/sa/b#frag', 'no query or fragment'],
      ['spiffe://cluster.local/ns/../sa/b', 'namespace ".."'],
      ['spiffe://cluster.local/ns/Shop/sa/b', 'namespace "Shop"'],
      ['spiffe://cluster.local/ns/a%2Fb/sa/c', 'namespace "a%2Fb"'],
      ['spiffe://cluster.local/ns/a.b/sa/c', 'namespace "a.b"'],
      ['spiffe://cluster.local/ns/a/sa/', 'service account ""'],
      ['spiffe://cluster.local/ns/a/sa/-b', 'service account "-b"'],
      [`spiffe://cluster.local/ns/${'a'.repeat(64)}/sa/b`, 'namespace'],
      [`spiffe://cluster.local/ns/a/sa/${'b'.repeat(2100)}`, 'longer than 2048'],
    ];
    for (const [s, why] of cases) {
      const r = parseSpiffeId(s);
      assert.equal(typeof r, 'string', `${JSON.stringify(s)} should be refused`);
      assert.ok((r as string).includes(why), `${JSON.stringify(s)}: "${r}" should say "${why}"`);
    }
  });

  it('gives the principal form policies use, and validates trust domains', () => {
    assert.equal(principalOf(CHECKOUT), 'cluster.local/ns/shop/sa/checkout');
    assert.equal(principalOf('cluster.local/ns/shop/sa/checkout'), 'cluster.local/ns/shop/sa/checkout');
    assert.equal(validateTrustDomain('cluster.local'), undefined);
    assert.match(validateTrustDomain('Cluster.local') ?? '', /lowercase/);
    assert.match(validateTrustDomain('') ?? '', /empty/);
    assert.match(validateTrustDomain('a'.repeat(256)) ?? '', /longer than 255/);
  });
});

describe('node-scoped issuance policy', () => {
  const authorize = nodeScopedAuthorizer([
    workload(CHECKOUT, 'node-1', 'checkout-1'),
    workload(CHECKOUT, 'node-3', 'checkout-2'),
    workload(WEB, 'node-2'),
    workload('spiffe://cluster.local/ns/shop/sa/pending', ''),
  ]);

  it('allows an identity on each node where a workload with it is scheduled', () => {
    assert.equal(authorize(CHECKOUT, 'node-1'), undefined);
    assert.equal(authorize(CHECKOUT, 'node-3'), undefined);
    assert.equal(authorize(WEB, 'node-2'), undefined);
  });

  it('refuses it elsewhere, naming the identity and the node', () => {
    assert.equal(authorize(CHECKOUT, 'node-2'), `no workload with identity ${CHECKOUT} is scheduled on node-2`);
    assert.equal(authorize('spiffe://cluster.local/ns/x/sa/y', 'node-1'), 'no workload with identity spiffe://cluster.local/ns/x/sa/y is scheduled on node-1');
  });

  it('grants nothing for unscheduled pods or to a node without a name', () => {
    assert.match(authorize('spiffe://cluster.local/ns/shop/sa/pending', 'node-1') ?? '', /no workload/);
    assert.equal(authorize(CHECKOUT, ''), 'the requesting node has no name');
    assert.match(nodeScopedAuthorizer([])(CHECKOUT, 'node-1') ?? '', /no workload/);
  });
});

describe('certificate authority', () => {
  let ca: CertificateAuthority;
  let rootNode: crypto.X509Certificate;
  const onNode1 = nodeScopedAuthorizer([workload(CHECKOUT, 'node-1'), workload(WEB, 'node-1')]);

  before(async () => {
    ca = await CertificateAuthority.create({ trustDomain: TD });
    rootNode = new crypto.X509Certificate(ca.rootPem);
  });

  it('creates a self-signed ECDSA P-256 root that may sign certificates only', () => {
    assert.equal(rootNode.ca, true);
    assert.equal(rootNode.subject, 'O=sluice\nCN=sluice root cluster.local');
    assert.equal(rootNode.issuer, rootNode.subject);
    assert.ok(rootNode.checkIssued(rootNode) && rootNode.verify(rootNode.publicKey));
    assert.equal(rootNode.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(rootNode.serialNumber, /^[0-9A-F]{32}$/);
    const root = new x509.X509Certificate(ca.rootPem);
    assert.deepEqual(root.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } });
    const bc = root.getExtension(x509.BasicConstraintsExtension);
    assert.ok(bc?.ca && bc.critical);
    const ku = root.getExtension(x509.KeyUsagesExtension);
    assert.equal(ku?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.ok(ku?.critical);
    assert.ok(root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    assert.equal(ca.rootFingerprint, crypto.createHash('sha256').update(rootNode.raw).digest('hex'));
    assert.equal(ca.rootFingerprint, rootNode.fingerprint256.replace(/:/g, '').toLowerCase());
    assert.ok(ca.rootPem.startsWith('-----BEGIN CERTIFICATE-----\n') && ca.rootPem.endsWith('-----END CERTIFICATE-----\n'));
    assert.equal(ca.trustDomain, TD);
  });

  it('refuses to create a root for an invalid trust domain or validity', async () => {
    await assert.rejects(CertificateAuthority.create({ trustDomain: 'Bad Domain' }), /only lowercase letters/);
    await assert.rejects(CertificateAuthority.create({ trustDomain: TD, validityDays: 0 }), RangeError);
  });

  it('issues an X.509-SVID for an identity scheduled on the requesting node', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr(CHECKOUT);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 750);
    const calls: string[][] = [];
    const r = issued(
      await ca.issue({ csrPem, node: 'node-1' }, (id, node) => {
        calls.push([id, node]);
        return onNode1(id, node);
      }, { now }),
    );
    assert.deepEqual(calls, [[CHECKOUT, 'node-1']]);
    assert.equal(r.identity, CHECKOUT);
    assert.deepEqual(r.chainPem, [ca.rootPem]);

    // OpenSSL's view: signed by the root, named by the URI SAN only, usable for mTLS both ways.
    const leaf = new crypto.X509Certificate(r.certPem);
    assert.ok(leaf.checkIssued(rootNode), 'issued by the root');
    assert.ok(leaf.verify(rootNode.publicKey), 'signature verifies with the root key');
    assert.ok(leaf.checkIssued(new crypto.X509Certificate(r.chainPem[0])));
    assert.equal(leaf.subjectAltName, `URI:${CHECKOUT}`);
    assert.ok(!leaf.subject, `subject should be empty, got ${JSON.stringify(leaf.subject)}`);
    assert.equal(leaf.issuer, rootNode.subject);
    assert.equal(leaf.ca, false);
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // node calls the EKU "keyUsage"
    assert.ok(leaf.checkPrivateKey(crypto.createPrivateKey(keyPem)), 'certifies the key of the CSR');
    assert.equal(leaf.serialNumber.toLowerCase(), r.serial);
    assert.match(r.serial, /^[0-9a-f]{32}$/);

    // Validity: backdated for clock skew, one hour by default, whole seconds.
    const t = Math.floor(now.getTime() / 1000) * 1000;
    assert.equal(r.notBefore.getTime(), t - CLOCK_SKEW_SECONDS * 1000);
    assert.equal(r.notAfter.getTime(), t + 3600 * 1000);
    assert.equal(new Date(leaf.validFrom).getTime(), r.notBefore.getTime());
    assert.equal(new Date(leaf.validTo).getTime(), r.notAfter.getTime());

    // Extension by extension, with criticality.
    const cert = new x509.X509Certificate(r.certPem);
    assert.deepEqual(cert.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } });
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    assert.ok(bc && bc.ca === false && bc.critical);
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.ok(ku?.critical);
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    assert.ok(san?.critical, 'SAN is critical since the subject is empty');
    assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: CHECKOUT }]);
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
    assert.equal(aki?.keyId, new x509.X509Certificate(ca.rootPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);

    assert.deepEqual(certificateInfo(r.certPem), { identity: CHECKOUT, serial: r.serial, notBefore: r.notBefore, notAfter: r.notAfter, issuer: 'O=sluice, CN=sluice root cluster.local' });
  });

  it('gives every certificate its own serial', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add(issued(await ca.issue({ csrPem: (await createKeyAndCsr(WEB)).csrPem, node: 'node-1' }, onNode1)).serial);
    assert.equal(serials.size, 5);
  });

  it('refuses an identity whose workloads run on other nodes, naming identity and node', async () => {
    const { csrPem } = await createKeyAndCsr(CHECKOUT);
    const policy = nodeScopedAuthorizer([workload(CHECKOUT, 'node-1'), workload(WEB, 'node-2')]);
    expectRefused(await ca.issue({ csrPem, node: 'node-2' }, policy), 'NOT_AUTHORIZED', `no workload with identity ${CHECKOUT} is scheduled on node-2`);
    issued(await ca.issue({ csrPem, node: 'node-1' }, policy));
  });

  it('refuses identities it does not issue, before asking the authorizer', async () => {
    let asked = 0;
    const counting = () => {
      asked++;
      return undefined;
    };
    const refuse = async (csrPem: string, ...fragments: string[]) => expectRefused(await ca.issue({ csrPem, node: 'node-1' }, counting), 'BAD_IDENTITY', ...fragments);
    await refuse((await createKeyAndCsr('spiffe://evil.example/ns/shop/sa/checkout')).csrPem, 'spiffe://evil.example/ns/shop/sa/checkout', 'trust domain evil.example', 'cluster.local only');
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }, { type: 'url', value: WEB }]), '2 URI SANs', CHECKOUT, WEB);
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }, { type: 'dns', value: 'checkout.shop.svc' }]), 'DNS name "checkout.shop.svc"');
    await refuse(await csrWith([{ type: 'ip', value: '10.244.1.2' }, { type: 'url', value: CHECKOUT }]), 'IP address "10.244.1.2"');
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }, { type: 'email', value: 'a@b.c' }]), 'email address "a@b.c"');
    await refuse(await csrWith(undefined), 'no subject alternative name');
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }], { extraSan: [{ type: 'url', value: WEB }] }), '2 subjectAltName extensions');
    await refuse(await csrWith([{ type: 'url', value: 'spiffe://cluster.local/ns/shop' }]), '/ns/<namespace>/sa/<service account>');
    await refuse(await csrWith([{ type: 'url', value: 'https://cluster.local/ns/shop/sa/checkout' }]), 'must start with "spiffe://"');
    assert.equal(asked, 0);
  });

  it('refuses CSRs that are not sound', async () => {
    const refuse = async (csrPem: string, ...fragments: string[]) => expectRefused(await ca.issue({ csrPem, node: 'node-1' }, allowAll), 'BAD_CSR', ...fragments);
    const { csrPem } = await createKeyAndCsr(CHECKOUT);

    // A flipped bit in the signature.
    const der = csrDer(csrPem);
    const badSig = Buffer.from(der);
    badSig[badSig.length - 1] ^= 0x01;
    await refuse(csrPemOf(badSig), 'signature does not verify');

    // Someone else's CSR with the identity rewritten: the signature covers it.
    const at = der.indexOf(Buffer.from(CHECKOUT));
    assert.ok(at > 0);
    const rewritten = Buffer.from(der);
    rewritten.write('spiffe://cluster.local/ns/shop/sa/checkoux', at, 'latin1');
    await refuse(csrPemOf(rewritten), 'signature does not verify');

    await refuse('hello', 'not a PEM certificate request');
    await refuse(csrPem.replace('CERTIFICATE REQUEST', 'CERTIFICATE').replace('CERTIFICATE REQUEST', 'CERTIFICATE'), 'not a PEM certificate request');
    await refuse(csrPem + csrPem, '2 certificate requests');
    await refuse('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 'not a readable PKCS#10');
    await refuse('-----BEGIN CERTIFICATE REQUEST-----\n' + 'A'.repeat(20000) + '\n-----END CERTIFICATE REQUEST-----\n', 'larger than');
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }], { key: 'P-384' }), 'EC secp384r1', 'ECDSA P-256');
    await refuse(await csrWith([{ type: 'url', value: CHECKOUT }], { key: 'RSA' }), 'rsa', 'ECDSA P-256');
  });

  it('issues for up to 24 hours and refuses more', async () => {
    const { csrPem } = await createKeyAndCsr(WEB);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const r = issued(await ca.issue({ csrPem, node: 'node-1' }, onNode1, { ttlSeconds: MAX_TTL_SECONDS, now }));
    assert.equal(r.notAfter.getTime() - now.getTime(), 24 * 3600 * 1000);
    assert.equal(issued(await ca.issue({ csrPem, node: 'node-1' }, onNode1, { ttlSeconds: 300, now })).notAfter.getTime() - now.getTime(), 300_000);
    await assert.rejects(ca.issue({ csrPem, node: 'node-1' }, onNode1, { ttlSeconds: MAX_TTL_SECONDS + 1 }), { name: 'RangeError', message: /ttlSeconds must be an integer from 1 to 86400 \(got 86401\)/ });
    await assert.rejects(ca.issue({ csrPem, node: 'node-1' }, onNode1, { ttlSeconds: 0 }), RangeError);
    await assert.rejects(ca.issue({ csrPem, node: 'node-1' }, onNode1, { ttlSeconds: 1.5 }), RangeError);
  });

  it('does not issue past the root expiry', async () => {
    const shortLived = await CertificateAuthority.create({ trustDomain: TD, validityDays: 1 });
    const { csrPem } = await createKeyAndCsr(WEB);
    const nearEnd = new Date(shortLived.rootNotAfter.getTime() - 600_000);
    const r = issued(await shortLived.issue({ csrPem, node: 'node-1' }, onNode1, { now: nearEnd }));
    assert.equal(r.notAfter.getTime(), shortLived.rootNotAfter.getTime());
    await assert.rejects(shortLived.issue({ csrPem, node: 'node-1' }, onNode1, { now: new Date(shortLived.rootNotAfter.getTime() + 1000) }), /root certificate expired/);
  });

  it('renews at the half-life', async () => {
    assert.equal(renewAt(new Date(0), new Date(3600_000)).getTime(), 1800_000);
    const { csrPem } = await createKeyAndCsr(WEB);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const r = issued(await ca.issue({ csrPem, node: 'node-1' }, onNode1, { now }));
    // Valid from now - 60 s to now + 3600 s: the middle is now + 1770 s.
    assert.equal(renewAt(r.notBefore, r.notAfter).getTime(), now.getTime() + 1770_000);
  });

  it('makes CSRs only for valid identities, with a fresh P-256 key each time', async () => {
    await assert.rejects(createKeyAndCsr('spiffe://cluster.local/ns/a'), /cannot request a certificate/);
    const a = await createKeyAndCsr(WEB);
    const b = await createKeyAndCsr(WEB);
    assert.notEqual(a.keyPem, b.keyPem);
    assert.equal(a.privateKey.algorithm.name, 'ECDSA');
    assert.equal(crypto.createPrivateKey(a.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const csr = new x509.Pkcs10CertificateRequest(a.csrPem);
    assert.equal(csr.subject, '');
    assert.ok(await csr.verify());
  });
});

describe('root persistence', () => {
  it('generates the root on first start, keeps the key private, and loads the same root afterwards', async () => {
    const dir = path.join(tmpDir(), 'ca');
    const first = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
    assert.deepEqual(fs.readdirSync(dir).sort(), [ROOT_CERT_FILE, ROOT_KEY_FILE].sort(), 'no temporary files left behind');
    assert.equal(fs.statSync(path.join(dir, ROOT_KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path.join(dir, ROOT_CERT_FILE), 'utf8'), first.rootPem);
    assert.match(fs.readFileSync(path.join(dir, ROOT_KEY_FILE), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);

    const second = await CertificateAuthority.loadOrCreate(dir, { trustDomain: TD });
    assert.equal(second.rootFingerprint, first.rootFingerprint);
    assert.equal(second.rootPem, first.rootPem);
    assert.equal((await CertificateAuthority.load(dir)).trustDomain, TD, 'a sluice root names its trust domain');

    // The re-loaded key signs certificates that chain to the first root.
    const { csrPem } = await createKeyAndCsr(WEB);
    const r = issued(await second.issue({ csrPem, node: 'node-1' }, allowAll));
    assert.ok(new crypto.X509Certificate(r.certPem).verify(new crypto.X509Certificate(first.rootPem).publicKey));
  });

  it('refuses a key that does not belong to the certificate, naming the file', async () => {
    const dir = tmpDir();
    await (await CertificateAuthority.create({ trustDomain: TD })).save(dir);
    const other = tmpDir();
    await (await CertificateAuthority.create({ trustDomain: TD })).save(other);
    fs.copyFileSync(path.join(other, ROOT_KEY_FILE), path.join(dir, ROOT_KEY_FILE));
    const keyPath = path.join(dir, ROOT_KEY_FILE);
    await assert.rejects(CertificateAuthority.load(dir), (err: Error) => {
      assert.ok(err.message.startsWith(`${keyPath}: does not match the certificate in ${path.join(dir, ROOT_CERT_FILE)}`), err.message);
      return true;
    });
    await assert.rejects(CertificateAuthority.loadOrCreate(dir, { trustDomain: TD }), new RegExp(`${reEscape(keyPath)}: does not match`));
  });

  it('says what is wrong with root material an operator put there', async () => {
    const material = async (cert: string | undefined, key: string | undefined) => {
      const dir = tmpDir();
      if (cert !== undefined) fs.writeFileSync(path.join(dir, ROOT_CERT_FILE), cert);
      if (key !== undefined) fs.writeFileSync(path.join(dir, ROOT_KEY_FILE), key, { mode: 0o600 });
      return dir;
    };
    const good = await CertificateAuthority.create({ trustDomain: TD });
    const goodDir = tmpDir();
    await good.save(goodDir);
    const goodKey = fs.readFileSync(path.join(goodDir, ROOT_KEY_FILE), 'utf8');

    // A workload certificate is not a CA.
    const { keyPem, csrPem } = await createKeyAndCsr(WEB);
    const leaf = issued(await good.issue({ csrPem, node: 'n' }, allowAll));
    let dir = await material(leaf.certPem, keyPem);
    await assert.rejects(CertificateAuthority.load(dir, { trustDomain: TD }), { message: `${path.join(dir, ROOT_CERT_FILE)}: not a CA certificate (its basic constraints do not say CA:true)` });

    dir = await material('not a certificate', goodKey);
    await assert.rejects(CertificateAuthority.load(dir), { message: `${path.join(dir, ROOT_CERT_FILE)}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)` });
    dir = await material(good.rootPem + leaf.certPem, goodKey);
    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: holds 2 certificates`));
    dir = await material('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', goodKey);
    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: not a readable X.509 certificate`));
    dir = await material(good.rootPem, 'garbage');
    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_KEY_FILE))}: not a readable private key`));
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    dir = await material(good.rootPem, p384);
    await assert.rejects(CertificateAuthority.load(dir), { message: `${path.join(dir, ROOT_KEY_FILE)}: a EC secp384r1 key; the CA signs with ECDSA P-256 only` });

    // Only one of the two files: never generate over the operator's half.
    dir = await material(undefined, goodKey);
    await assert.rejects(CertificateAuthority.loadOrCreate(dir, { trustDomain: TD }), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: missing while ${reEscape(path.join(dir, ROOT_KEY_FILE))} exists`));
    assert.equal(fs.readFileSync(path.join(dir, ROOT_KEY_FILE), 'utf8'), goodKey);
    dir = tmpDir();
    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: cannot read: no such file`));

    // A sluice root belongs to the trust domain it was made for.
    await assert.rejects(CertificateAuthority.loadOrCreate(goodDir, { trustDomain: 'other.local' }), {
      message: `${path.join(goodDir, ROOT_CERT_FILE)}: a root for trust domain cluster.local, not other.local`,
    });

    // An expired root.
    const old = await CertificateAuthority.create({ trustDomain: TD, validityDays: 1, now: new Date(Date.now() - 3 * 86400_000) });
    dir = tmpDir();
    await old.save(dir);
    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: expired on `));

    // The same key as SEC1 ("BEGIN EC PRIVATE KEY", what openssl ecparam writes) is accepted.
    const sec1 = crypto.createPrivateKey(goodKey).export({ type: 'sec1', format: 'pem' }) as string;
    dir = await material(good.rootPem, sec1);
    assert.equal((await CertificateAuthority.load(dir)).rootFingerprint, good.rootFingerprint);
  });

  it('serves an operator root of its own making, with the trust domain given', async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
    // Printable strings in the name and no subject key identifier: unlike sluice's own root.
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'C=US, O=Example Corp, CN=Example Mesh Root',
      keys,
      notBefore: new Date(Date.now() - 86400_000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, ROOT_CERT_FILE), root.toString('pem'));
    fs.writeFileSync(path.join(dir, ROOT_KEY_FILE), x509.PemConverter.encode(await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), { mode: 0o600 });

    await assert.rejects(CertificateAuthority.load(dir), new RegExp(`${reEscape(path.join(dir, ROOT_CERT_FILE))}: not a root sluice generated, so its trust domain must be given`));
    const ca = await CertificateAuthority.loadOrCreate(dir, { trustDomain: 'example.org' });
    assert.equal(ca.trustDomain, 'example.org');
    const { csrPem } = await createKeyAndCsr('spiffe://example.org/ns/shop/sa/checkout');
    const r = issued(await ca.issue({ csrPem, node: 'node-1' }, allowAll));
    const leaf = new crypto.X509Certificate(r.certPem);
    const rootNode = new crypto.X509Certificate(root.toString('pem'));
    assert.ok(leaf.checkIssued(rootNode) && leaf.verify(rootNode.publicKey));
    const aki = new x509.X509Certificate(r.certPem).getExtension(x509.AuthorityKeyIdentifierExtension);
    assert.equal(aki?.keyId, Buffer.from(await root.publicKey.getKeyIdentifier()).toString('hex'));
    assert.equal(certificateInfo(r.certPem).issuer, 'C=US, O=Example Corp, CN=Example Mesh Root');

    // An operator's root that may not sign certificates is refused.
    const noSign = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=Not For Signing',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    });
    fs.writeFileSync(path.join(dir, ROOT_CERT_FILE), noSign.toString('pem'));
    await assert.rejects(CertificateAuthority.load(dir, { trustDomain: 'example.org' }), { message: `${path.join(dir, ROOT_CERT_FILE)}: its key usage does not allow signing certificates (keyCertSign)` });
  });
});

describe('issued certificates in mutual TLS 1.3 (node:tls)', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  before(async () => {
    ca = await CertificateAuthority.create({ trustDomain: TD });
    otherCa = await CertificateAuthority.create({ trustDomain: TD });
  });

  interface Creds {
    key: string;
    cert: string;
  }
  async function credsFor(from: CertificateAuthority, identity: string): Promise<Creds> {
    const { keyPem, csrPem } = await createKeyAndCsr(identity);
    const r = issued(await from.issue({ csrPem, node: 'node-1' }, nodeScopedAuthorizer([workload(identity, 'node-1')])));
    return { key: keyPem, cert: r.certPem };
  }

  interface Outcome {
    /** What each side saw of the other once the handshake completed on its side. */
    serverSawPeer?: string;
    clientSawPeer?: string;
    protocol?: string | null;
    serverError?: Error;
    clientError?: Error;
    received: string;
  }

  /** One connection on loopback; the server answers with the identity it saw. Settles once both sides are done. */
  async function handshake(server: Creds, client: Creds | undefined, expectServerIdentity: string, trust = { server: ca.rootPem, client: ca.rootPem }): Promise<Outcome> {
    const outcome: Outcome = { received: '' };
    let serverDone!: () => void;
    const serverSettled = new Promise<void>((resolve) => (serverDone = resolve));
    const srv = tls.createServer({ ...server, ca: trust.server, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (sock) => {
      outcome.serverSawPeer = sock.getPeerCertificate().subjectaltname;
      sock.on('error', () => {});
      sock.end(`you are ${outcome.serverSawPeer}`, serverDone);
    });
    srv.on('tlsClientError', (err) => {
      outcome.serverError = err;
      serverDone();
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address() as { port: number };
    try {
      await new Promise<void>((resolve) => {
        const sock = tls.connect({
          host: '127.0.0.1',
          port,
          ...client,
          ca: trust.client,
          minVersion: 'TLSv1.3',
          // The agent will check the peer's SPIFFE ID, not a host name.
          checkServerIdentity: (_host, cert) => (cert.subjectaltname === `URI:${expectServerIdentity}` ? undefined : new Error(`server is ${cert.subjectaltname}, expected ${expectServerIdentity}`)),
        });
        sock.on('secureConnect', () => {
          outcome.protocol = sock.getProtocol();
          outcome.clientSawPeer = sock.getPeerCertificate().subjectaltname;
        });
        sock.on('data', (d: Buffer) => (outcome.received += d.toString()));
        sock.on('error', (err) => (outcome.clientError = err));
        sock.on('close', () => resolve());
      });
      await serverSettled;
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    return outcome;
  }

  it('completes a handshake where each side proves its own SPIFFE ID', async () => {
    const server = await credsFor(ca, CHECKOUT);
    const client = await credsFor(ca, WEB);
    const o = await handshake(server, client, CHECKOUT);
    assert.equal(o.clientError, undefined, o.clientError?.message);
    assert.equal(o.serverError, undefined, o.serverError?.message);
    assert.equal(o.protocol, 'TLSv1.3');
    assert.equal(o.serverSawPeer, `URI:${WEB}`);
    assert.equal(o.clientSawPeer, `URI:${CHECKOUT}`);
    assert.equal(o.received, `you are URI:${WEB}`);
  });

  it('rejects a client certificate from another root', async () => {
    const o = await handshake(await credsFor(ca, CHECKOUT), await credsFor(otherCa, WEB), CHECKOUT);
    assert.ok(o.serverError, 'the server refuses the handshake');
    assert.equal(o.serverSawPeer, undefined);
    assert.equal(o.received, '');
  });

  it('rejects a server certificate from another root', async () => {
    const o = await handshake(await credsFor(otherCa, CHECKOUT), await credsFor(ca, WEB), CHECKOUT);
    assert.ok(o.clientError, 'the client refuses the handshake');
    assert.match(o.clientError.message, /unable to verify|self.signed|certificate/i);
    assert.equal(o.received, '');
  });

  it('rejects a client without a certificate, and a server with another identity', async () => {
    let o = await handshake(await credsFor(ca, CHECKOUT), undefined, CHECKOUT);
    assert.ok(o.serverError, 'no client certificate, no connection');
    assert.equal(o.received, '');
    o = await handshake(await credsFor(ca, WEB), await credsFor(ca, WEB), CHECKOUT);
    assert.match(o.clientError?.message ?? '', new RegExp(`server is URI:${reEscape(WEB)}, expected ${reEscape(CHECKOUT)}`));
    assert.equal(o.received, '');
  });
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
