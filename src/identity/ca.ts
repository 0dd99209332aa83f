// The control plane's certificate authority: one self-signed ECDSA P-256 root
// that issues short-lived X.509-SVIDs (workload certificates whose only name
// is the SPIFFE ID in a URI SAN) to node agents, for the workloads scheduled
// on their node. What a node may obtain is decided by the authorizer the
// caller passes (see issuance-policy.ts); this module checks everything
// about the request itself.
// @peculiar/x509 resolves its algorithm classes through tsyringe, which
// refuses to load without the Reflect metadata API: this import must come first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomicAsync } from '../files/atomic-write';
import type { IssuanceAuthorizer } from './issuance-policy';
import { parseSpiffeId, validateTrustDomain } from './spiffe';

x509.cryptoProvider.set(crypto.webcrypto);

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
export const DEFAULT_ROOT_VALIDITY_DAYS = 3650;
export const DEFAULT_TTL_SECONDS = 3600;
export const MAX_TTL_SECONDS = 24 * 3600;
/** Issued certificates start this much in the past so a peer whose clock is a little behind accepts them. */
export const CLOCK_SKEW_SECONDS = 60;
/** A P-256 CSR with one SAN is well under 1 KiB; anything near this is not one of ours. */
export const MAX_CSR_PEM_LENGTH = 16 * 1024;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const SAN_OID = '2.5.29.17';
const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14';
const ROOT_CN_PREFIX = 'sluice root ';

/** For a new root: its trust domain and validity in days (DEFAULT_ROOT_VALIDITY_DAYS when absent). */
export interface CreateOptions {
  trustDomain: string;
  validityDays?: number;
  /** The clock, for tests. */
  now?: Date;
}

/** For loading an existing root (CertificateAuthority.load, fromPem). */
export interface LoadOptions {
  /** Required for a root the operator made; a root sluice generated names its trust domain and must agree. */
  trustDomain?: string;
  now?: Date;
}

/** A certificate request as the CA receives it: the PEM PKCS#10 CSR and the authenticated node it came from. */
export interface IssueRequest {
  csrPem: string;
  /** The node the request comes from, as the transport authenticated it. */
  node: string;
}

/** ttlSeconds: the leaf's lifetime, 1 .. MAX_TTL_SECONDS (default DEFAULT_TTL_SECONDS); now: the clock, for tests. */
export interface IssueOptions {
  ttlSeconds?: number;
  now?: Date;
}

export type IssueErrorCode = 'BAD_CSR' | 'BAD_IDENTITY' | 'NOT_AUTHORIZED';

export type IssueResult =
  | {
      ok: true;
      certPem: string;
      /** From the issuer up to and including the root; the leaf is not in it. */
      chainPem: string[];
      identity: string;
      /** Lowercase hex. */
      serial: string;
      notBefore: Date;
      notAfter: Date;
    }
  | { ok: false; code: IssueErrorCode; reason: string };

type Refusal = Extract<IssueResult, { ok: false }>;

/**
 * The mesh CA: a self-signed ECDSA P-256 root (no intermediates) and its key.
 * Obtained with create, load, fromPem or loadOrCreate; issue() signs workload
 * X.509-SVIDs in its trust domain.
 */
export class CertificateAuthority {
  readonly rootPem: string;
  /** SHA-256 of the root certificate's DER, lowercase hex (as `sha256sum` of the DER would show it). */
  readonly rootFingerprint: string;

  private constructor(
    readonly trustDomain: string,
    private readonly root: x509.X509Certificate,
    private readonly rootNode: crypto.X509Certificate,
    private readonly key: crypto.webcrypto.CryptoKey,
    private readonly authorityKeyId: string,
  ) {
    this.rootPem = pemWithNewline(root.toString('pem'));
    this.rootFingerprint = crypto.createHash('sha256').update(rootNode.raw).digest('hex');
  }

  /** When the root certificate expires; no leaf is issued to outlive it. */
  get rootNotAfter(): Date {
    return this.root.notAfter;
  }

  /** A new root with a fresh key pair; nothing is written (see save, loadOrCreate). */
  static async create(opts: CreateOptions): Promise<CertificateAuthority> {
    const { trustDomain, validityDays = DEFAULT_ROOT_VALIDITY_DAYS } = opts;
    const tdProblem = validateTrustDomain(trustDomain);
    if (tdProblem) throw new Error(`cannot create a CA: ${tdProblem}`);
    if (!Number.isInteger(validityDays) || validityDays < 1) throw new RangeError(`validityDays must be a positive integer (got ${validityDays})`);
    const now = wholeSeconds(opts.now ?? new Date());
    const keys = (await crypto.webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
    const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `O=sluice, CN=${ROOT_CN_PREFIX}${trustDomain}`,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
      notAfter: new Date(now.getTime() + validityDays * 86400 * 1000),
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ski,
      ],
    });
    return new CertificateAuthority(trustDomain, root, new crypto.X509Certificate(root.toString('pem')), keys.privateKey, ski.keyId);
  }

  /**
   * The root in `dir` (ROOT_CERT_FILE, ROOT_KEY_FILE), generated by sluice or
   * put there by an operator. Refuses, naming the file, anything that cannot
   * serve as this CA: not a self-signed CA, not allowed to sign certificates,
   * expired, a key that is not ECDSA P-256 or does not match the certificate.
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<CertificateAuthority> {
    const certPath = path.join(dir, ROOT_CERT_FILE);
    const keyPath = path.join(dir, ROOT_KEY_FILE);
    return CertificateAuthority.fromPem(await readText(certPath), await readText(keyPath), { cert: certPath, key: keyPath }, opts);
  }

  /**
   * The root from its PEM texts, checked as `load` checks files; `where`
   * names each text's origin in errors (a file path, or "Secret
   * sluice-system/sluice-ca, key root-cert.pem").
   */
  static async fromPem(certPem: string, keyPem: string, where: { cert: string; key: string }, opts: LoadOptions = {}): Promise<CertificateAuthority> {
    const certPath = where.cert;
    const keyPath = where.key;
    const now = opts.now ?? new Date();

    const blocks = certPem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
    if (blocks === 0) throw new Error(`${certPath}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
    if (blocks > 1) throw new Error(`${certPath}: holds ${blocks} certificates; it must hold the root certificate alone (intermediate CAs are not supported yet)`);
    let rootNode: crypto.X509Certificate;
    let root: x509.X509Certificate;
    try {
      rootNode = new crypto.X509Certificate(certPem);
      root = new x509.X509Certificate(rootNode.raw);
    } catch (err) {
      throw new Error(`${certPath}: not a readable X.509 certificate: ${(err as Error).message}`);
    }
    // Read directly rather than through X509Certificate.ca, which OpenSSL also
    // makes false for a missing keyCertSign: each fault gets its own message.
    if (!root.getExtension(x509.BasicConstraintsExtension)?.ca) throw new Error(`${certPath}: not a CA certificate (its basic constraints do not say CA:true)`);
    const keyUsage = root.getExtension(x509.KeyUsagesExtension);
    if (keyUsage && !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign)) {
      throw new Error(`${certPath}: its key usage does not allow signing certificates (keyCertSign)`);
    }
    if (!rootNode.checkIssued(rootNode) || !rootNode.verify(rootNode.publicKey)) {
      throw new Error(`${certPath}: not self-signed; the CA needs a root certificate (intermediate CAs are not supported yet)`);
    }
    if (now < root.notBefore) throw new Error(`${certPath}: not valid before ${root.notBefore.toISOString()}`);
    if (now >= root.notAfter) throw new Error(`${certPath}: expired on ${root.notAfter.toISOString()}`);

    let keyObject: crypto.KeyObject;
    try {
      keyObject = crypto.createPrivateKey(keyPem);
    } catch (err) {
      throw new Error(`${keyPath}: not a readable private key (unencrypted PKCS#8 or SEC1 PEM): ${(err as Error).message}`);
    }
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    if (keyObject.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      const what = keyObject.asymmetricKeyType === 'ec' ? `EC ${curve}` : keyObject.asymmetricKeyType ?? 'unknown';
      throw new Error(`${keyPath}: a ${what} key; the CA signs with ECDSA P-256 only`);
    }
    if (!rootNode.checkPrivateKey(keyObject)) {
      throw new Error(`${keyPath}: does not match the certificate in ${certPath} (it is the private half of another key pair)`);
    }

    // A root sluice generated says which trust domain it was made for; starting
    // with another one would issue identities peers do not expect.
    const cn = root.subjectName.getField('CN')[0];
    const generatedFor = root.subjectName.getField('O')[0] === 'sluice' && cn?.startsWith(ROOT_CN_PREFIX) ? cn.slice(ROOT_CN_PREFIX.length) : undefined;
    const trustDomain = opts.trustDomain ?? generatedFor;
    if (trustDomain === undefined) throw new Error(`${certPath}: not a root sluice generated, so its trust domain must be given`);
    const tdProblem = validateTrustDomain(trustDomain);
    if (tdProblem) throw new Error(`cannot load the CA: ${tdProblem}`);
    if (generatedFor !== undefined && generatedFor !== trustDomain) {
      throw new Error(`${certPath}: a root for trust domain ${generatedFor}, not ${trustDomain}`);
    }

    const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
    const key = await crypto.webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, true, ['sign']);
    // Leaves must name the root's key the way the root itself does, when it does.
    const ski = root.getExtension(x509.SubjectKeyIdentifierExtension);
    const authorityKeyId = ski?.keyId ?? Buffer.from(await root.publicKey.getKeyIdentifier()).toString('hex');
    return new CertificateAuthority(trustDomain, root, rootNode, key, authorityKeyId);
  }

  /** The root's private key as unencrypted PKCS#8 PEM: for the file or Secret that keeps it, nothing else. */
  async keyPem(): Promise<string> {
    const pkcs8 = await crypto.webcrypto.subtle.exportKey('pkcs8', this.key);
    return pemWithNewline(x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'));
  }

  /** Writes the root certificate and key (mode 0600) into `dir`, each atomically. */
  async save(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // The key goes first: loadOrCreate treats a key without a certificate as
    // the operator's unfinished work, never overwriting it.
    await writeFileAtomicAsync(path.join(dir, ROOT_KEY_FILE), await this.keyPem(), { mode: 0o600 });
    await writeFileAtomicAsync(path.join(dir, ROOT_CERT_FILE), this.rootPem, { mode: 0o644 });
  }

  /** The root in `dir`; on first start (neither file there) a new one, saved there. */
  static async loadOrCreate(dir: string, opts: CreateOptions): Promise<CertificateAuthority> {
    const certPath = path.join(dir, ROOT_CERT_FILE);
    const keyPath = path.join(dir, ROOT_KEY_FILE);
    const [haveCert, haveKey] = await Promise.all([exists(certPath), exists(keyPath)]);
    if (haveCert && haveKey) return CertificateAuthority.load(dir, { trustDomain: opts.trustDomain, now: opts.now });
    if (haveCert !== haveKey) {
      const [present, missing] = haveCert ? [certPath, keyPath] : [keyPath, certPath];
      throw new Error(`${missing}: missing while ${present} exists; put both the root certificate and its key there, or remove ${present} to have a new root generated`);
    }
    const ca = await CertificateAuthority.create(opts);
    await ca.save(dir);
    return ca;
  }

  /**
   * Issues a workload certificate for the SPIFFE ID the CSR asks for, if the
   * CSR is sound and `authorizer(identity, request.node)` allows it. Only the
   * CSR's public key and URI SAN are used; its subject and other extensions
   * are ignored. Throws RangeError for a ttl outside 1 s .. MAX_TTL_SECONDS,
   * since that is the caller's choice, not the requester's.
   */
  async issue(request: IssueRequest, authorizer: IssuanceAuthorizer, opts: IssueOptions = {}): Promise<IssueResult> {
    const ttlSeconds = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
      throw new RangeError(`ttlSeconds must be an integer from 1 to ${MAX_TTL_SECONDS} (got ${ttlSeconds})`);
    }
    // X.509 times have whole seconds: truncating first makes the returned
    // dates exactly the certificate's.
    const now = wholeSeconds(opts.now ?? new Date());
    if (now >= this.root.notAfter) throw new Error(`the root certificate expired on ${this.root.notAfter.toISOString()}`);

    const inspected = await inspectCsr(request.csrPem, this.trustDomain);
    if ('code' in inspected) return inspected;
    const { csr, identity } = inspected;

    const denied = authorizer(identity, request.node);
    if (denied !== undefined) return { ok: false, code: 'NOT_AUTHORIZED', reason: denied };

    const notBefore = new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000);
    // A leaf that outlives its root would be refused by every peer after the root expires.
    const notAfter = new Date(Math.min(now.getTime() + ttlSeconds * 1000, this.root.notAfter.getTime()));
    const serial = randomSerial();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      // SPIFFE X.509-SVID: the identity is the URI SAN; an empty subject makes
      // that the certificate's only name, so the SAN must be critical.
      subject: undefined,
      issuer: this.root.subjectName,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.key,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true),
        new x509.AuthorityKeyIdentifierExtension(this.authorityKeyId, false),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      ],
    });
    const certPem = pemWithNewline(leaf.toString('pem'));
    // Never hand out a certificate that would not chain: checked with OpenSSL
    // (node:crypto), the verifier peers will use, not with the library that made it.
    const leafNode = new crypto.X509Certificate(certPem);
    if (!leafNode.checkIssued(this.rootNode) || !leafNode.verify(this.rootNode.publicKey)) {
      throw new Error(`internal error: the certificate issued for ${identity} does not verify against the root`);
    }
    return { ok: true, certPem, chainPem: [this.rootPem], identity, serial: leaf.serialNumber.toLowerCase(), notBefore: leaf.notBefore, notAfter: leaf.notAfter };
  }
}

/** The CSR and the one SPIFFE ID it asks for, or why it cannot be served. */
async function inspectCsr(csrPem: string, trustDomain: string): Promise<{ csr: x509.Pkcs10CertificateRequest; identity: string } | Refusal> {
  const bad = (code: IssueErrorCode, reason: string): Refusal => ({ ok: false, code, reason });
  if (csrPem.length > MAX_CSR_PEM_LENGTH) return bad('BAD_CSR', `CSR is larger than ${MAX_CSR_PEM_LENGTH} bytes`);
  // The library would also take DER, hex or base64; only PEM is part of the protocol.
  const blocks = csrPem.match(/-----BEGIN CERTIFICATE REQUEST-----/g)?.length ?? 0;
  if (blocks !== 1) return bad('BAD_CSR', blocks === 0 ? 'not a PEM certificate request (expected -----BEGIN CERTIFICATE REQUEST-----)' : `holds ${blocks} certificate requests; expected one`);

  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    return bad('BAD_CSR', `not a readable PKCS#10 certificate request: ${(err as Error).message}`);
  }
  let keyObject: crypto.KeyObject;
  try {
    keyObject = crypto.createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    return bad('BAD_CSR', `its public key cannot be read: ${(err as Error).message}`);
  }
  const curve = keyObject.asymmetricKeyDetails?.namedCurve;
  if (keyObject.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const what = keyObject.asymmetricKeyType === 'ec' ? `EC ${curve}` : keyObject.asymmetricKeyType ?? 'unknown';
    return bad('BAD_CSR', `its public key is ${what}; workload keys must be ECDSA P-256`);
  }
  let signed: boolean;
  try {
    signed = await csr.verify();
  } catch (err) {
    return bad('BAD_CSR', `its signature cannot be checked: ${(err as Error).message}`);
  }
  // Proof that the requester holds the private key: without it a node could
  // get a certificate for a key it copied from elsewhere.
  if (!signed) return bad('BAD_CSR', 'its signature does not verify with its public key (the request was altered or not signed by that key)');

  if (csr.getAttributes(EXTENSION_REQUEST_OID).length > 1) return bad('BAD_CSR', 'it has more than one extensionRequest attribute');
  let sans: x509.SubjectAlternativeNameExtension[];
  try {
    sans = csr.extensions.filter((e) => e.type === SAN_OID).map((e) => (e instanceof x509.SubjectAlternativeNameExtension ? e : new x509.SubjectAlternativeNameExtension(e.rawData)));
  } catch (err) {
    return bad('BAD_CSR', `its requested extensions cannot be read: ${(err as Error).message}`);
  }
  if (sans.length === 0) return bad('BAD_IDENTITY', 'it requests no subject alternative name; it must request exactly one URI SAN, the SPIFFE ID');
  if (sans.length > 1) return bad('BAD_IDENTITY', `it requests ${sans.length} subjectAltName extensions; expected one`);
  const names = sans[0].names.items;
  const other = names.find((n) => n.type !== 'url');
  if (other) return bad('BAD_IDENTITY', `it requests ${describeName(other)} "${other.value}"; only one URI SAN, the SPIFFE ID, is allowed`);
  if (names.length !== 1) {
    const uris = names.map((n) => n.value).join(', ');
    return bad('BAD_IDENTITY', names.length === 0 ? 'its subjectAltName is empty' : `it requests ${names.length} URI SANs (${uris}); exactly one is allowed`);
  }
  const identity = names[0].value;
  const parsed = parseSpiffeId(identity);
  if (typeof parsed === 'string') return bad('BAD_IDENTITY', parsed);
  if (parsed.trustDomain !== trustDomain) return bad('BAD_IDENTITY', `${identity} is in trust domain ${parsed.trustDomain}; this CA issues for ${trustDomain} only`);
  return { csr, identity };
}

function describeName(name: x509.GeneralName): string {
  switch (name.type) {
    case 'dns':
      return 'the DNS name';
    case 'ip':
      return 'the IP address';
    case 'email':
      return 'the email address';
    case 'dn':
      return 'the directory name';
    default:
      return `a ${name.type} name`;
  }
}

/** 16 random bytes, top bit clear so the DER INTEGER is positive, next bit set so it keeps all 16 bytes. */
function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function pemWithNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : pem + '\n';
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`${file}: cannot read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
