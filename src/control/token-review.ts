// TokenReviews sent to the Kubernetes API (authentication.k8s.io/v1), with
// the control plane's own credentials (RBAC: create tokenreviews). Loaded
// only with the Kubernetes source, as the client library is.
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { TokenReviewStatus, TokenReviewer } from '../identity/node-credential';
import { apiErrorMessage } from './kubernetes-api-errors';

/** How long one TokenReview may take before the stream or request it guards is refused, ms. */
const REVIEW_TIMEOUT_MS = 10_000;

/**
 * A TokenReviewer that asks the API server of `kubeConfig`. Rejects with the
 * API server's message when the review itself fails (403 without the RBAC
 * rule, the API server unreachable, no answer in 10 s).
 */
export function apiServerTokenReviewer(kubeConfig: KubeConfig): TokenReviewer {
  const api = kubeConfig.makeApiClient(AuthenticationV1Api);
  return async (token, audiences) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the API server in ${REVIEW_TIMEOUT_MS} ms`)), REVIEW_TIMEOUT_MS);
    });
    try {
      const review = await Promise.race([api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } }), timeout]);
      return (review.status ?? {}) as TokenReviewStatus;
    } catch (err) {
      throw new Error(apiErrorMessage(err));
    } finally {
      clearTimeout(timer);
    }
  };
}
