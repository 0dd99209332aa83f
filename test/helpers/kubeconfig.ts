// A kubeconfig for the Kubernetes API stand-in (src/sim/kube-api-server.ts),
// as the tests of the Kubernetes source, TokenReview and policy status use it.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes the stand-in's kubeconfig into `dir`, authenticating with `token`
 * (default: the server's own), and returns its path.
 */
export function writeKubeconfig(dir: string, api: { token: string; kubeconfig(token?: string): string }, token = api.token): string {
  const file = path.join(dir, `kubeconfig-${token.slice(0, 6)}`);
  fs.writeFileSync(file, api.kubeconfig(token));
  return file;
}
