// gRPC definition of sluice.v1.CertificateService, loaded from proto/.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';

const protoDir = path.resolve(__dirname, '..', '..', '..', 'proto');

/**
 * sluice.v1.CreateCertificateRequest: csr is a PEM PKCS#10 request with one URI
 * SAN, the SPIFFE ID wanted; validity_seconds is the lifetime asked for, 0 for
 * the CA's default.
 */
export interface CreateCertificateRequest {
  csr: string;
  validity_seconds: number;
}

/** sluice.v1.CreateCertificateResponse: PEM certificates, the leaf first, then the chain up to the root. */
export interface CreateCertificateResponse {
  cert_chain: string[];
}

export const NODE_METADATA = 'sluice-node';

let ctor: grpc.ServiceClientConstructor | undefined;

/** The generated client constructor of sluice.v1.CertificateService (proto/sluice/v1/certificate.proto), loaded once. */
export function certificateServiceClient(): grpc.ServiceClientConstructor {
  if (!ctor) {
    const def = protoLoader.loadSync('sluice/v1/certificate.proto', { includeDirs: [protoDir], keepCase: true, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { sluice: { v1: { CertificateService: grpc.ServiceClientConstructor } } };
    ctor = pkg.sluice.v1.CertificateService;
  }
  return ctor;
}

/** The service definition of sluice.v1.CertificateService, for servers. */
export function certificateServiceDefinition(): grpc.ServiceDefinition {
  return certificateServiceClient().service;
}
