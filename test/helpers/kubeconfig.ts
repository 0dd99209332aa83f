// A kubeconfig for the Kubernetes API stand-in (src/sim/kube-api-server.ts),
// as the tests of the Kubernetes source, TokenReview and policy status use it.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes a kubeconfig into `dir` for the API server at `api.url` (trusting
 * `api.caPem`), authenticating with `token` (default: the server's own), and
 * returns its path.
 */
export function writeKubeconfig(dir: string, api: { url: string; caPem: string; token: string }, token = api.token): string {
  const file = path.join(dir, `kubeconfig-${token.slice(0, 6)}`);
  fs.writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: stand-in\n  cluster:\n    server: ${api.url}\n    certificate-authority-data: ${Buffer.from(api.caPem).toString('base64')}`,
      'users:',
      `- name: tester\n  user:\n    token: ${token}`,
      'contexts:',
      '- name: test\n  context:\n    cluster: stand-in\n    user: tester',
      'current-context: test',
      '',
    ].join('\n'),
  );
  return file;
}
