// Node credentials: how an agent proves which node it runs on when it asks
// for certificates. The token of a node is HMAC-SHA256(secret, node name);
// the control plane holds the secret, each node only its own token (in a
// real cluster: a per-node Secret mounted into that node's agent, or a
// projected service account token checked with TokenReview instead).
import { createHmac, timingSafeEqual } from 'node:crypto';

export function nodeToken(secret: Buffer, node: string): string {
  return createHmac('sha256', secret).update(`sluice-node:${node}`).digest('hex');
}

export function verifyNodeToken(secret: Buffer, node: string, token: string): boolean {
  const want = Buffer.from(nodeToken(secret, node), 'hex');
  const got = Buffer.from(token, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
