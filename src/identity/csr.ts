// Agent side of issuance: a key pair that never leaves the agent's memory
// (until it is handed to TLS), the CSR that asks the control plane's CA for
// a certificate for one SPIFFE ID, and what to show and when to renew.
// @peculiar/x509 needs the Reflect metadata API before it loads (see ca.ts).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as crypto from 'node:crypto';
import { parseSpiffeId } from './spiffe';

x509.cryptoProvider.set(crypto.webcrypto);

export type CryptoKey = crypto.webcrypto.CryptoKey;

/** A workload key pair's private half (as a WebCrypto key and as PEM) and the PEM PKCS#10 request for it. */
export interface KeyAndCsr {
  privateKey: CryptoKey;
  /** PKCS#8 PEM, for node:tls (`key`). */
  keyPem: string;
  csrPem: string;
}

/** What certificateInfo reads from a certificate, for display and renewal. */
export interface CertificateInfo {
  /** The URI SAN (the SPIFFE ID), if the certificate has one. */
  identity: string | undefined;
  /** Lowercase hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  issuer: string;
}

/** A fresh ECDSA P-256 key and a CSR for `identity` (empty subject, one URI SAN). Throws if `identity` is not a workload SPIFFE ID. */
export async function createKeyAndCsr(identity: string): Promise<KeyAndCsr> {
  const parsed = parseSpiffeId(identity);
  if (typeof parsed === 'string') throw new Error(`cannot request a certificate: ${parsed}`);
  // Extractable only so the key can be given to node:tls as PEM.
  const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }])],
  });
  const pkcs8 = await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    privateKey: keys.privateKey,
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
    csrPem: csr.toString('pem') + '\n',
  };
}

/** What an issued certificate says, for display (the first certificate of a PEM bundle). */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = new x509.X509Certificate(x509.PemConverter.decodeFirst(pem));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    identity: san?.names.items.find((n) => n.type === 'url')?.value,
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    issuer: cert.issuer,
  };
}

/** Half-way through the validity: early enough to retry for a long while before expiry, late enough not to churn. */
export function renewAt(notBefore: Date, notAfter: Date): Date {
  return new Date(notBefore.getTime() + Math.floor((notAfter.getTime() - notBefore.getTime()) / 2));
}
