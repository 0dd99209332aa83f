// Node credentials: how an agent proves which node it runs on when it opens
// an xDS stream or asks for certificates. Two ways:
//   - a shared secret (the sim, or a cluster without the Kubernetes API at
//     hand): the token of a node is HMAC-SHA256(secret, node name); the
//     control plane holds the secret, each node only its own token;
//   - a projected service account token (deploy/): short-lived, with
//     audience "sluice", checked by the API server with a TokenReview and
//     bound to the node the agent's pod runs on.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The shared-secret credential of a node: HMAC-SHA256 of "sluice-node:<node>" under the secret, as hex. */
export function nodeToken(secret: Buffer, node: string): string {
  return createHmac('sha256', secret).update(`sluice-node:${node}`).digest('hex');
}

/** Whether `token` is the credential of `node` under the secret (constant-time compare; false for malformed hex). */
export function verifyNodeToken(secret: Buffer, node: string, token: string): boolean {
  const want = Buffer.from(nodeToken(secret, node), 'hex');
  const got = Buffer.from(token, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

export type NodeVerdict = { ok: true } | { ok: false; reason: string };

/** Decides whether `token` proves that its holder is the agent of `node`. */
export interface NodeAuthenticator {
  /** "shared secret" or "TokenReview", for logs and status. */
  readonly kind: string;
  /** Never rejects: a failure to decide is a refusal with its reason. */
  verify(node: string, token: string): Promise<NodeVerdict>;
}

/** Authenticates a node by the shared-secret credential (nodeToken); the sim's and the manifests' default. */
export class SharedSecretAuthenticator implements NodeAuthenticator {
  readonly kind = 'shared secret';
  constructor(private readonly secret: Buffer) {}

  /** Accepts `token` when it is nodeToken(secret, node); never rejects. */
  async verify(node: string, token: string): Promise<NodeVerdict> {
    return verifyNodeToken(this.secret, node, token) ? { ok: true } : { ok: false, reason: `node credential for ${node} does not verify` };
  }
}

/**
 * What the API server answered to a TokenReview (authentication.k8s.io/v1
 * TokenReviewStatus, the fields used here).
 */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** Sends a TokenReview for `token` with `audiences` and returns its status; rejects when the API server cannot be asked. */
export type TokenReviewer = (token: string, audiences: string[]) => Promise<TokenReviewStatus>;

/** The user extra key kube-apiserver sets on a pod-bound service account token (Kubernetes ≥ 1.30). */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/**
 * Checks an agent's projected service account token with the API server
 * (TokenReview, as the kubelet's and Istio's own token checks do): it must
 * be authenticated for `audience`, belong to the agent's service account
 * ("system:serviceaccount:NS:NAME"), and be bound to a pod on the node the
 * agent claims (user extra authentication.kubernetes.io/node-name). Expiry
 * and revocation are the API server's to judge. A positive answer is kept
 * for cacheMs, so a reconnect storm does not become a TokenReview storm;
 * refusals are never kept.
 */
export class TokenReviewAuthenticator implements NodeAuthenticator {
  readonly kind = 'TokenReview';
  private readonly accepted = new Map<string, number>();

  constructor(
    private readonly review: TokenReviewer,
    private readonly options: { audience: string; serviceAccount: { namespace: string; name: string }; cacheMs?: number; now?: () => number },
  ) {}

  /**
   * Accepts `token` when a TokenReview (or an acceptance cached less than
   * cacheMs ago, default 60 s) says it is the service account's and bound
   * to `node`. Never rejects: a failed TokenReview is a refusal.
   */
  async verify(node: string, token: string): Promise<NodeVerdict> {
    const now = (this.options.now ?? Date.now)();
    const key = createHash('sha256').update(`${node}\u0000${token}`).digest('hex');
    const until = this.accepted.get(key);
    if (until !== undefined && until > now) return { ok: true };
    this.accepted.delete(key);
    let status: TokenReviewStatus;
    try {
      status = await this.review(token, [this.options.audience]);
    } catch (err) {
      return { ok: false, reason: `TokenReview failed: ${(err as Error).message}` };
    }
    const verdict = this.judge(node, status);
    if (verdict.ok) {
      if (this.accepted.size > 10_000) this.accepted.clear();
      this.accepted.set(key, now + (this.options.cacheMs ?? 60_000));
    }
    return verdict;
  }

  private judge(node: string, status: TokenReviewStatus): NodeVerdict {
    const { audience, serviceAccount } = this.options;
    if (!status.authenticated) return { ok: false, reason: `the API server did not authenticate the token${status.error ? `: ${status.error}` : ''}` };
    if (!(status.audiences ?? []).includes(audience)) return { ok: false, reason: `the token is not for audience ${audience} (audiences: ${(status.audiences ?? []).join(', ') || 'none'})` };
    const want = `system:serviceaccount:${serviceAccount.namespace}:${serviceAccount.name}`;
    if (status.user?.username !== want) return { ok: false, reason: `the token belongs to ${status.user?.username ?? 'nobody'}, not ${want}` };
    const boundNode = status.user.extra?.[NODE_NAME_EXTRA]?.[0];
    if (!boundNode) return { ok: false, reason: `the token is not bound to a pod on a node (no ${NODE_NAME_EXTRA}; a projected token of a pod is)` };
    if (boundNode !== node) return { ok: false, reason: `the token is bound to node ${boundNode}, not ${node}` };
    return { ok: true };
  }
}
