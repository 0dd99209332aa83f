// sluice.v1.CertificateService: signs workload certificates for node agents.
// The caller proves its node with its node credential; it gets only the
// identities of workloads scheduled on that node. Every refusal is logged
// once with the reason and counted.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Workload } from '../model/resources';
import type { CertificateAuthority } from '../identity/ca';
import { NODE_METADATA, certificateServiceDefinition, type CreateCertificateRequest, type CreateCertificateResponse } from '../identity/certificate-protocol';
import { nodeScopedAuthorizer } from '../identity/issuance-policy';
import type { NodeAuthenticator } from '../identity/node-credential';

/** Certificates issued, and requests refused by kind (a gRPC status name or an IssueErrorCode), since start. */
export interface IssuanceCounters {
  issued: number;
  refused: Record<string, number>;
}

/**
 * The control plane's sluice.v1.CertificateService: authenticates the node
 * (metadata "sluice-node" and "authorization: Bearer <token>"), then has the
 * CA issue a certificate only for an identity of a workload scheduled on that
 * node. Refusals: UNAUTHENTICATED, UNAVAILABLE before the first sync,
 * PERMISSION_DENIED for another node's identity, INVALID_ARGUMENT for a bad CSR.
 */
export class CertificateService {
  readonly counters: IssuanceCounters = { issued: 0, refused: {} };

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly nodes: NodeAuthenticator,
    private readonly workloads: () => Iterable<Workload>,
    private readonly logger: Logger,
    /** False until the control plane has a whole view of the cluster: before that, no CSR is judged (UNAVAILABLE, retried). */
    private readonly synced: () => boolean = () => true,
  ) {}

  /** The gRPC service definition, to add to a server with implementation(). */
  definition(): grpc.ServiceDefinition {
    return certificateServiceDefinition();
  }

  /** The handlers of the service's one method, CreateCertificate. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      CreateCertificate: (call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>, done: grpc.sendUnaryData<CreateCertificateResponse>) => {
        this.create(call).then(
          (r) => done(null, r),
          (err: grpc.ServiceError) => done(err),
        );
      },
    };
  }

  private refuse(code: grpc.status, kind: string, node: string, reason: string): grpc.ServiceError {
    this.counters.refused[kind] = (this.counters.refused[kind] ?? 0) + 1;
    this.logger.warn({ node, refusal: kind }, `certificate refused: ${reason}`);
    return Object.assign(new Error(reason), { code, details: reason, metadata: new grpc.Metadata() }) as grpc.ServiceError;
  }

  private async create(call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>): Promise<CreateCertificateResponse> {
    const node = String(call.metadata.get(NODE_METADATA)[0] ?? '');
    const auth = String(call.metadata.get('authorization')[0] ?? '');
    const token = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
    if (!node || !token) throw this.refuse(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', node, `missing node credential (metadata ${NODE_METADATA} and authorization: Bearer <token>)`);
    const verdict = await this.nodes.verify(node, token);
    if (!verdict.ok) throw this.refuse(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', node, verdict.reason);
    // Judged against a partial view, a workload not listed yet would be refused as not on the node.
    if (!this.synced()) throw this.refuse(grpc.status.UNAVAILABLE, 'UNAVAILABLE', node, 'the control plane has not read the cluster yet; retry shortly');
    const result = await this.ca.issue(
      { csrPem: call.request.csr, node },
      nodeScopedAuthorizer(this.workloads()),
      call.request.validity_seconds ? { ttlSeconds: Math.min(call.request.validity_seconds, 24 * 3600) } : undefined,
    );
    if (!result.ok) {
      const code = result.code === 'NOT_AUTHORIZED' ? grpc.status.PERMISSION_DENIED : grpc.status.INVALID_ARGUMENT;
      throw this.refuse(code, result.code, node, result.reason);
    }
    this.counters.issued++;
    this.logger.info({ node, identity: result.identity, serial: result.serial, notAfter: result.notAfter }, 'certificate issued');
    return { cert_chain: [result.certPem, ...result.chainPem] };
  }
}
