// Authorization policy end to end on one simulated node: policies applied with
// sluice-sim go through sluice-control and xDS to the agent, whose node proxy
// enforces them per connection on the destination's behalf, live, without
// restarts. Real clients (curl) in pods of different namespaces and service
// accounts.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SimFixture } from '../helpers/sim-fixture';

const NAME = 'e2e-policy';
const HELLO = '{{FIXTURES}}/../../examples/apps/hello-server.js';
const WEB_VIP = '10.96.0.10'; // port 80 -> 8080
const ADMIN_VIP = '10.96.0.11'; // port 7001 -> 7001, same pod
const API = 'security.sluice.dev/v1alpha1';

const client = (ns: string, name: string, sa?: string) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { role: client } }
spec:
  nodeName: node-1
  ${sa ? `serviceAccountName: ${sa}` : ''}
  containers: [{ name: c, command: ["sleep", "infinity"] }]
`;

const TOPOLOGY = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: frontend, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Namespace
metadata: { name: other, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: server, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-1
  serviceAccountName: web
  containers:
    - name: web
      command: ["sh", "-c", "PORT=7001 node ${HELLO} & PORT=8080 node ${HELLO} & wait"]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: ${WEB_VIP}
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: admin, namespace: shop }
spec:
  clusterIP: ${ADMIN_VIP}
  selector: { app: web }
  ports: [{ port: 7001, targetPort: 7001 }]
---
${client('frontend', 'client', 'storefront')}
---
${client('frontend', 'batch', 'batch')}
---
${client('other', 'client')}
`;

const ALLOW_FRONTEND = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
    - from: [{ source: { namespaces: ["frontend"] } }]
`;

const DENY_ADMIN_PORT = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: deny-admin-port, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: DENY
  rules:
    - to: [{ operation: { ports: ["7001"] } }]
`;

const ALLOW_STOREFRONT_SA = `
apiVersion: ${API}
kind: AuthorizationPolicy
metadata: { name: allow-storefront, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/frontend/sa/storefront"] } }]
`;

/** The same policy made malformed: an action that does not exist. */
const ALLOW_STOREFRONT_SA_BROKEN = ALLOW_STOREFRONT_SA.replace('action: ALLOW', 'action: PERMIT');

interface AgentView {
  pid: number;
  proxyCounters: Record<string, number>;
}

interface StatusWithLogs {
  agents: { node: string; pid: number; log: string }[];
}

const sim = new SimFixture(NAME);

function curl(pod: string, url: string) {
  return sim.exec(pod, ['curl', '-sS', '--max-time', '3', url], 20000);
}

function assertServed(pod: string, url: string, why: string): void {
  const r = curl(pod, url);
  assert.equal(r.code, 0, `${pod} -> ${url} must work (${why}): curl exited ${r.code}: ${r.stderr}`);
  assert.match(r.stdout, /^hello from shop\/server /, `${pod} -> ${url} is answered by the server`);
}

function assertRefused(pod: string, url: string, why: string): void {
  const r = curl(pod, url);
  assert.notEqual(r.code, 0, `${pod} -> ${url} must be refused (${why}), got: ${r.stdout}`);
  assert.doesNotMatch(r.stdout, /hello from/, 'no byte of the server reached the client');
}

const agentStatus = () => sim.ctlJson<AgentView>('node-1', 'status');

function agentLog(): string {
  const s = JSON.parse(sim.must(['status', '-o', 'json'])) as StatusWithLogs;
  const file = s.agents.find((a) => a.node === 'node-1')!.log;
  return fs.readFileSync(file, 'utf8');
}

/** Log lines (pino JSON) of denied connections written after `offset` characters. */
function deniedSince(offset: number): { msg: string; policy?: string; source?: string; principal?: string; port?: number }[] {
  return agentLog()
    .slice(offset)
    .split('\n')
    .filter((l) => l.includes('connection denied'))
    .map((l) => JSON.parse(l) as { msg: string; policy?: string; source?: string; principal?: string; port?: number });
}

/**
 * An object as the sim's Kubernetes API holds it, read with kubectl (the
 * real client) from the fabric namespace where the API listens.
 */
function apiObject(apiPath: string): { status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] }; metadata: { generation?: number } } {
  const r = spawnSync('ip', ['netns', 'exec', `sluice-${NAME}_fabric`, 'kubectl', '--kubeconfig', `/run/sluice-sim/${NAME}/kube-api/kubeconfig`, 'get', '--raw', apiPath], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) throw new Error(`kubectl get --raw ${apiPath}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ReturnType<typeof apiObject>;
}

async function waitForServer(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (sim.exec('frontend/client', ['curl', '-sf', '--max-time', '1', url], 10000).code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server never answered: ${url}`);
}

describe('authorization policy in a simulated cluster', { timeout: 300000 }, () => {
  let agentPid = 0;

  before(async () => {
    // Leftovers of a crashed earlier run: `up` removes the cluster of the same
    // name first; the fixture's temporary manifest directories are ours to clear.
    for (const e of fs.readdirSync(os.tmpdir())) {
      if (e.startsWith(`sluice-test-${NAME}-`) && !e.endsWith(path.basename((sim as unknown as { dir: string }).dir))) {
        fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
      }
    }
    sim.up(TOPOLOGY);
    const ip = sim.status().pods.find((p) => p.name === 'server')!.ip;
    await waitForServer(`http://${ip}:8080/`);
    await waitForServer(`http://${ip}:7001/`);
    agentPid = agentStatus().pid;
  });
  after(() => sim.down());

  it('without policies every client reaches both ports', () => {
    for (const pod of ['frontend/client', 'frontend/batch', 'other/client']) {
      assertServed(pod, `http://${WEB_VIP}/`, 'no policy applies');
      assertServed(pod, `http://${ADMIN_VIP}:7001/`, 'no policy applies');
    }
  });

  it('an ALLOW policy for namespace frontend: frontend keeps working, other is refused, counted and logged', () => {
    const countersBefore = agentStatus().proxyCounters;
    const logOffset = agentLog().length;
    sim.apply(ALLOW_FRONTEND);
    assertServed('frontend/client', `http://${WEB_VIP}/`, 'frontend is allowed');
    assertServed('frontend/batch', `http://${WEB_VIP}/`, 'frontend is allowed, whatever the service account');
    assertRefused('other/client', `http://${WEB_VIP}/`, 'namespace other is not allowed');
    const counters = agentStatus().proxyCounters;
    assert.ok(counters.policyDenied > countersBefore.policyDenied, `policyDenied grew: ${countersBefore.policyDenied} -> ${counters.policyDenied}`);
    assert.ok(counters.policyAllowed >= countersBefore.policyAllowed + 2, 'the allowed connections were counted as allowed');
    const denied = deniedSince(logOffset);
    assert.ok(denied.length >= 1, 'the agent logged the denied connection');
    const line = denied.find((d) => d.source === 'other/client');
    assert.ok(line, `a denial names the source pod: ${JSON.stringify(denied)}`);
    assert.match(JSON.stringify(line), /shop\/allow-frontend/, `the denial names the policy that decided it: ${JSON.stringify(line)}`);
    assert.equal(deniedSince(logOffset).filter((d) => d.source?.startsWith('frontend/')).length, 0, 'no frontend connection was denied');
  });

  it('the policy object in the API says it is served: condition Accepted True for its generation', async () => {
    const objectPath = `/apis/${API}/namespaces/shop/authorizationpolicies/allow-frontend`;
    let accepted: { status: string; observedGeneration?: number } | undefined;
    let generation: number | undefined;
    for (let i = 0; i < 50 && !accepted; i++) {
      const o = apiObject(objectPath);
      generation = o.metadata.generation;
      accepted = o.status?.conditions?.find((c) => c.type === 'Accepted');
      if (!accepted) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(accepted, 'sluice-control wrote an Accepted condition into the policy\'s status');
    assert.equal(accepted.status, 'True');
    assert.equal(accepted.observedGeneration, generation);
  });

  it('a DENY policy on one port refuses that port only', () => {
    assertServed('frontend/client', `http://${ADMIN_VIP}:7001/`, 'before the DENY policy');
    const logOffset = agentLog().length;
    sim.apply(DENY_ADMIN_PORT);
    assertRefused('frontend/client', `http://${ADMIN_VIP}:7001/`, 'port 7001 is denied');
    assertServed('frontend/client', `http://${WEB_VIP}/`, 'port 8080 of the same pod is not');
    const line = deniedSince(logOffset).find((d) => d.source === 'frontend/client');
    assert.ok(line, 'the denial was logged');
    assert.equal(line.policy, 'shop/deny-admin-port');
    assert.equal(line.port, 7001);
  });

  it('policy changes apply live to new connections, with no restart', () => {
    // Deleting the ALLOW policy opens the server to namespace other again.
    sim.delete(ALLOW_FRONTEND);
    assertServed('other/client', `http://${WEB_VIP}/`, 'no ALLOW policy applies any more');
    // A principal-based ALLOW: only service account storefront of namespace frontend.
    sim.apply(ALLOW_STOREFRONT_SA);
    assertServed('frontend/client', `http://${WEB_VIP}/`, 'service account storefront is allowed');
    assertRefused('frontend/batch', `http://${WEB_VIP}/`, 'service account batch is not, though in the same namespace');
    assertRefused('other/client', `http://${WEB_VIP}/`, 'namespace other is not');
    // The port DENY still holds alongside.
    assertRefused('frontend/client', `http://${ADMIN_VIP}:7001/`, 'port 7001 is still denied');
    assert.equal(agentStatus().pid, agentPid, 'the agent was never restarted');
    const pods = sim.status().pods;
    assert.ok(pods.every((p) => p.running), 'no pod was restarted or stopped');
  });

  it('a malformed policy is rejected by sluice-sim apply with a clear message', () => {
    const file = sim.manifest(ALLOW_STOREFRONT_SA_BROKEN);
    const r = sim.run(['apply', '-f', file]);
    assert.equal(r.code, 2, `exit code 2 for a rejected apply (got ${r.code}; stdout: ${r.stdout.trim()}; stderr: ${r.stderr.trim()})`);
    assert.match(r.stderr, /rejected, nothing was changed/);
    assert.match(r.stderr, /AuthorizationPolicy (shop\/)?allow-storefront: spec\.action: unknown action "PERMIT"/);
  });

  it('after a malformed policy, the previous policy keeps working', () => {
    assertServed('frontend/client', `http://${WEB_VIP}/`, 'the previous ALLOW policy still allows storefront');
    assertRefused('frontend/batch', `http://${WEB_VIP}/`, 'and still refuses the others');
    assertRefused('other/client', `http://${WEB_VIP}/`, 'and still refuses the others');
    assert.equal(agentStatus().pid, agentPid, 'the agent was never restarted');
  });
});
