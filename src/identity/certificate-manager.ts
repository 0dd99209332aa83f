// The agent's workload certificates: one per identity of the workloads on
// its node, renewed at half-life. A renewal that fails keeps the still-valid
// certificate and retries with jittered backoff. Keys are kept in memory
// and, when a keep directory is given, in a root-only directory on tmpfs
// (/run: gone at reboot, never on disk), so an agent that restarts while the
// control plane is away still serves with the certificates it held.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../files/atomic-write';
import { NODE_METADATA, certificateServiceClient, type CreateCertificateRequest, type CreateCertificateResponse } from './certificate-protocol';
import { certificateInfo, createKeyAndCsr, renewAt } from './csr';

export type CertificateState = 'requesting' | 'valid' | 'renewing' | 'failed';

/**
 * One identity's certificate as the agent's status shows it: times are ISO
 * 8601, serial lowercase hex; failures counts requests failed in a row.
 */
export interface WorkloadCertificate {
  identity: string;
  state: CertificateState;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  renewAt?: string;
  lastError?: string;
  failures: number;
}

interface Held extends WorkloadCertificate {
  keyPem?: string;
  chainPem?: string[];
  nextAttempt: number;
  inFlight: boolean;
}

/**
 * target: the control plane's CertificateService as a gRPC target (host:port);
 * node: this node's name, sent with its token as the node credential. Retry
 * backoff after a failed request starts at initialBackoffMs (1000) and is
 * capped at maxBackoffMs (60000).
 */
export interface CertificateManagerOptions {
  target: string;
  node: string;
  /** This node's credential, read at every request (a projected token is rotated by the kubelet). */
  token: () => string;
  credentials?: grpc.ChannelCredentials;
  /** Lifetime to ask for; 0 = the CA's default. */
  validitySeconds?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Root-only directory (mode 0700, on tmpfs) where keys and chains outlive a restart; absent: memory only. */
  keepDir?: string;
}

/** What is kept per identity in the keep directory (mode 0600). */
interface KeptCredentials {
  identity: string;
  keyPem: string;
  chainPem: string[];
}

type Client = grpc.Client & {
  CreateCertificate(
    req: CreateCertificateRequest,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: CreateCertificateResponse) => void,
  ): void;
};

/**
 * Obtains and renews a workload certificate (SPIFFE X.509-SVID) for each
 * identity setIdentities names, from the control plane's CertificateService,
 * with a key generated on the agent for every request.
 */
export class CertificateManager {
  private readonly held = new Map<string, Held>();
  private readonly client: Client;
  private timer?: NodeJS.Timeout;
  readonly counters = { issued: 0, failures: 0 };

  constructor(
    private readonly opts: CertificateManagerOptions,
    private readonly logger: Logger,
  ) {
    const Ctor = certificateServiceClient();
    // The channel's own reconnect backoff stays within ours (grpc-js's default grows to 120 s).
    this.client = new Ctor(opts.target, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': opts.initialBackoffMs ?? 1000,
      'grpc.max_reconnect_backoff_ms': Math.min(opts.maxBackoffMs ?? 60000, 30000),
      // A name, not an IP, as the TLS server name (see delta-client.ts).
      'grpc.ssl_target_name_override': 'sluice-control',
    }) as unknown as Client;
  }

  /** Starts the once-a-second check that requests what is missing and renews what is due. */
  start(): void {
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
    this.tick();
  }

  /** Stops requesting and renewing and drops every certificate held in memory. */
  stop(): void {
    this.stopRenewing();
    this.held.clear();
  }

  /**
   * Stops requesting and renewing but keeps the certificates held: an agent
   * that handed over to a newer one still serves its open connections (and
   * those it accepts until the new one does) with them.
   */
  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.client.close();
  }

  /** The identities this node needs now; others are dropped with their keys. */
  setIdentities(identities: Iterable<string>): void {
    const want = new Set(identities);
    let added = false;
    for (const id of [...this.held.keys()]) if (!want.has(id)) this.forget(id);
    for (const id of want) {
      if (this.held.has(id)) continue;
      this.held.set(id, this.restore(id) ?? { identity: id, state: 'requesting', failures: 0, nextAttempt: 0, inFlight: false });
      added = true;
    }
    if (added) this.tick();
  }

  /** True when every identity this node needs has a valid certificate now. */
  allValid(): boolean {
    for (const id of this.held.keys()) if (!this.credentials(id)) return false;
    return true;
  }

  /** Every identity held and the state of its certificate, without keys or chains. */
  list(): WorkloadCertificate[] {
    return [...this.held.values()].map(({ keyPem: _k, chainPem: _c, nextAttempt: _n, inFlight: _i, ...shown }) => shown);
  }

  /** Key and chain for TLS, while the certificate is valid. */
  credentials(identity: string): { keyPem: string; chainPem: string[] } | undefined {
    const h = this.held.get(identity);
    if (!h?.keyPem || !h.chainPem || !h.notAfter || Date.parse(h.notAfter) <= Date.now()) return undefined;
    return { keyPem: h.keyPem, chainPem: h.chainPem };
  }

  /**
   * The control plane is reachable again: retry what is due or failing now
   * instead of waiting out a backoff grown while it was away.
   */
  retryNow(): void {
    const now = Date.now();
    for (const h of this.held.values()) {
      const due = h.state !== 'valid' || (h.renewAt !== undefined && now >= Date.parse(h.renewAt));
      if (due) h.nextAttempt = 0;
    }
    this.tick();
  }

  /** The mesh root, as the CA sent it with the last certificate. */
  rootPem(): string | undefined {
    for (const h of this.held.values()) if (h.chainPem?.length) return h.chainPem[h.chainPem.length - 1];
    return undefined;
  }

  private keptFile(identity: string): string | undefined {
    if (!this.opts.keepDir) return undefined;
    return path.join(this.opts.keepDir, `${crypto.createHash('sha256').update(identity).digest('hex').slice(0, 32)}.json`);
  }

  /** Writes the credentials atomically, readable by root only; a failure only costs the restart case. */
  private keep(c: KeptCredentials): void {
    const file = this.keptFile(c.identity);
    if (!file) return;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeFileAtomic(file, JSON.stringify(c), { mode: 0o600 });
    } catch (err) {
      this.logger.warn({ identity: c.identity, err: (err as Error).message }, 'could not keep the certificate for a restart');
    }
  }

  private forget(identity: string): void {
    this.held.delete(identity);
    const file = this.keptFile(identity);
    try {
      if (file) fs.rmSync(file, { force: true });
    } catch (err) {
      this.logger.warn({ identity, err: (err as Error).message }, 'could not remove the kept certificate');
    }
  }

  /** A kept certificate for this identity that is still valid, as held state; renewed at its half-life as usual. */
  private restore(identity: string): Held | undefined {
    const file = this.keptFile(identity);
    if (!file || !fs.existsSync(file)) return undefined;
    try {
      const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as KeptCredentials;
      const info = certificateInfo(kept.chainPem[0] ?? '');
      if (kept.identity !== identity || info.identity !== identity || info.notAfter.getTime() <= Date.now()) return undefined;
      this.logger.info({ identity, serial: info.serial, notAfter: info.notAfter.toISOString() }, 'workload certificate restored from before the restart');
      return {
        identity,
        keyPem: kept.keyPem,
        chainPem: kept.chainPem,
        serial: info.serial,
        notBefore: info.notBefore.toISOString(),
        notAfter: info.notAfter.toISOString(),
        renewAt: renewAt(new Date(), info.notAfter).toISOString(),
        state: 'valid',
        failures: 0,
        nextAttempt: 0,
        inFlight: false,
      };
    } catch (err) {
      this.logger.warn({ identity, err: (err as Error).message }, 'kept certificate not used');
      return undefined;
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const h of this.held.values()) {
      if (h.inFlight || now < h.nextAttempt) continue;
      if (h.state === 'valid' && h.renewAt && now < Date.parse(h.renewAt)) continue;
      void this.request(h);
    }
  }

  private async request(h: Held): Promise<void> {
    h.inFlight = true;
    const stillValid = h.notAfter !== undefined && Date.parse(h.notAfter) > Date.now();
    h.state = stillValid ? 'renewing' : 'requesting';
    try {
      const { keyPem, csrPem } = await createKeyAndCsr(h.identity);
      const res = await new Promise<CreateCertificateResponse>((resolve, reject) => {
        const md = new grpc.Metadata();
        md.set(NODE_METADATA, this.opts.node);
        md.set('authorization', `Bearer ${this.opts.token()}`);
        this.client.CreateCertificate({ csr: csrPem, validity_seconds: this.opts.validitySeconds ?? 0 }, md, { deadline: Date.now() + 10000 }, (err, r) =>
          err ? reject(err) : resolve(r!),
        );
      });
      if (!this.held.has(h.identity)) return; // dropped meanwhile
      const info = certificateInfo(res.cert_chain[0] ?? '');
      if (info.identity !== h.identity) throw new Error(`the CA returned a certificate for ${info.identity ?? 'no identity'}`);
      Object.assign(h, {
        keyPem,
        chainPem: res.cert_chain,
        serial: info.serial,
        notBefore: info.notBefore.toISOString(),
        notAfter: info.notAfter.toISOString(),
        // Half of the lifetime left on receipt: notBefore is back-dated for
        // clock skew, which would pull a short-lived certificate's renewal to "now".
        renewAt: renewAt(new Date(), info.notAfter).toISOString(),
        state: 'valid',
        lastError: undefined,
        failures: 0,
        nextAttempt: 0,
      });
      this.counters.issued++;
      this.keep({ identity: h.identity, keyPem, chainPem: res.cert_chain });
      this.logger.info({ identity: h.identity, serial: info.serial, notAfter: h.notAfter }, 'workload certificate obtained');
    } catch (err) {
      const e = err as grpc.ServiceError;
      h.failures++;
      this.counters.failures++;
      h.lastError = e.details || e.message;
      const cap = Math.min(this.opts.maxBackoffMs ?? 60000, (this.opts.initialBackoffMs ?? 1000) * 2 ** (h.failures - 1));
      h.nextAttempt = Date.now() + cap / 2 + Math.random() * (cap / 2);
      h.state = stillValid ? 'valid' : 'failed';
      this.logger.warn({ identity: h.identity, failures: h.failures, keptValidCertificate: stillValid, retryInMs: Math.round(h.nextAttempt - Date.now()) }, `certificate request failed: ${h.lastError}`);
    } finally {
      h.inFlight = false;
    }
  }
}
