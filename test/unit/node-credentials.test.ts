// Node credentials checked with a TokenReview: the rules on a fake review,
// then end to end through @kubernetes/client-node against the Kubernetes API
// stand-in (HTTPS, the real TokenReview shape): the agent's projected token
// for its own node works; another node's, an expired one, one for another
// audience and one of another service account are refused.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadKubeConfig } from '../../src/control/kubernetes-source';
import { apiServerTokenReviewer } from '../../src/control/token-review';
import { NODE_NAME_EXTRA, SharedSecretAuthenticator, TokenReviewAuthenticator, nodeToken, type TokenReviewStatus } from '../../src/identity/node-credential';
import { KubeApiStandIn } from '../../src/sim/kube-api-server';
import { writeKubeconfig } from '../helpers/kubeconfig';

const AGENT = { namespace: 'sluice-system', name: 'sluice-agent' };

describe('node credentials: the TokenReview rules', () => {
  const good: TokenReviewStatus = {
    authenticated: true,
    audiences: ['sluice'],
    user: { username: 'system:serviceaccount:sluice-system:sluice-agent', extra: { [NODE_NAME_EXTRA]: ['node-1'] } },
  };
  const judge = (status: TokenReviewStatus, node = 'node-1') => new TokenReviewAuthenticator(async () => status, { audience: 'sluice', serviceAccount: AGENT }).verify(node, 't');

  it('accepts the agent service account bound to the claimed node', async () => {
    assert.deepEqual(await judge(good), { ok: true });
  });

  it('refuses, saying why: another node, another account, no audience, unbound, unauthenticated', async () => {
    const cases: [TokenReviewStatus, string, RegExp][] = [
      [good, 'node-2', /bound to node node-1, not node-2/],
      [{ ...good, user: { ...good.user, username: 'system:serviceaccount:default:default' } }, 'node-1', /belongs to system:serviceaccount:default:default/],
      [{ ...good, audiences: [] }, 'node-1', /not for audience sluice/],
      [{ ...good, user: { username: good.user!.username } }, 'node-1', /not bound to a pod on a node/],
      [{ authenticated: false, error: 'token has expired' }, 'node-1', /did not authenticate the token: token has expired/],
    ];
    for (const [status, node, reason] of cases) {
      const verdict = await judge(status, node);
      assert.equal(verdict.ok, false);
      assert.match((verdict as { reason: string }).reason, reason);
    }
  });

  it('a review that fails is a refusal; an accepted token is kept for a while, a refused one never', async () => {
    let calls = 0;
    let answer: TokenReviewStatus | Error = new Error('connect ECONNREFUSED');
    const nodes = new TokenReviewAuthenticator(
      async () => {
        calls++;
        if (answer instanceof Error) throw answer;
        return answer;
      },
      { audience: 'sluice', serviceAccount: AGENT, cacheMs: 60_000 },
    );
    assert.match(((await nodes.verify('node-1', 't')) as { reason: string }).reason, /TokenReview failed: connect ECONNREFUSED/);
    answer = good;
    assert.deepEqual(await nodes.verify('node-1', 't'), { ok: true });
    assert.deepEqual(await nodes.verify('node-1', 't'), { ok: true });
    assert.equal(calls, 2, 'the second acceptance came from the cache');
    assert.equal((await nodes.verify('node-2', 't')).ok, false, 'the cache is per node and token');
  });

  it('the shared secret: each node only its own token', async () => {
    const nodes = new SharedSecretAuthenticator(Buffer.alloc(32, 7));
    assert.deepEqual(await nodes.verify('node-1', nodeToken(Buffer.alloc(32, 7), 'node-1')), { ok: true });
    assert.equal((await nodes.verify('node-2', nodeToken(Buffer.alloc(32, 7), 'node-1'))).ok, false);
  });
});

describe('node credentials: TokenReview against the API (stand-in)', () => {
  let api: KubeApiStandIn;
  let nodes: TokenReviewAuthenticator;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-tokenreview-'));
  const pod = { name: 'sluice-agent-x7k2p', uid: '6c0f4f0e-5d2a-4b57-9a43-1b1e2a8d3c11' };
  const issue = (over: Partial<Parameters<KubeApiStandIn['issueServiceAccountToken']>[0]> = {}) =>
    api.issueServiceAccountToken({ namespace: AGENT.namespace, serviceAccount: AGENT.name, audiences: ['sluice'], expirationSeconds: 3600, pod, node: 'node-1', ...over });

  before(async () => {
    api = await KubeApiStandIn.start();
    const kubeconfig = writeKubeconfig(dir, api);
    nodes = new TokenReviewAuthenticator(apiServerTokenReviewer(loadKubeConfig(kubeconfig)), { audience: 'sluice', serviceAccount: AGENT, cacheMs: 0 });
  });

  after(async () => {
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the agent's token for its own node works", async () => {
    assert.deepEqual(await nodes.verify('node-1', issue()), { ok: true });
  });

  it('another node, expired, another audience, another account, or a made-up token: refused', async () => {
    const cases: [string, string, RegExp][] = [
      ['node-2', issue(), /bound to node node-1, not node-2/],
      ['node-1', issue({ expirationSeconds: -1 }), /has expired/],
      ['node-1', issue({ audiences: ['https://kubernetes.default.svc'] }), /invalid for the target audiences/],
      ['node-1', issue({ namespace: 'default', serviceAccount: 'default' }), /belongs to system:serviceaccount:default:default/],
      ['node-1', 'sa.made-up', /invalid bearer token/],
    ];
    for (const [node, token, reason] of cases) {
      const verdict = await nodes.verify(node, token);
      assert.equal(verdict.ok, false, `${node} ${token}`);
      assert.match((verdict as { reason: string }).reason, reason);
    }
  });

  it('the control plane without the RBAC rule (or any review failure) refuses, naming the API error', async () => {
    const kubeconfig = writeKubeconfig(dir, api, 'not-the-token');
    const denied = new TokenReviewAuthenticator(apiServerTokenReviewer(loadKubeConfig(kubeconfig)), { audience: 'sluice', serviceAccount: AGENT });
    const verdict = await denied.verify('node-1', issue());
    assert.equal(verdict.ok, false);
    assert.match((verdict as { reason: string }).reason, /TokenReview failed: HTTP 401/);
  });
});
