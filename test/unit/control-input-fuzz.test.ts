// Field-type mutations of every kind sluice-control reads, fed through the
// code `sluice-control render` runs (files on disk -> renderManifests). The
// corpus is generated from a fixed seed, so a failure names a case that
// replays exactly. Each case must not throw, must leave the valid objects of
// the same file rendered, and the mutated object must either be rejected by
// an error naming it or come out valid: a Kubernetes-shaped SPIFFE identity,
// a clusterIP inside the service range, resources the agent accepts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { objectName, type KubeObject } from '../../src/control/kubernetes-objects';
import { renderManifests, type Rendering } from '../../src/control/render';
import { validateSnapshot } from '../../src/model/validate';
import { seededRandom } from '../helpers/seeded-random';

const SEED = 0x5151ce;

const API = 'security.sluice.dev/v1alpha1';
const BASES: Record<string, object> = {
  Namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team', labels: { 'sluice.dev/mesh': 'enabled' } } },
  Pod: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'target', namespace: 'team', uid: 'uid-1', labels: { app: 'target' } },
    spec: {
      nodeName: 'node-1',
      serviceAccountName: 'target-sa',
      containers: [{ name: 'main', command: ['node', 'x.js'], args: ['--port', '8080'], env: [{ name: 'A', value: 'b' }], workingDir: 'w', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }],
    },
    status: { podIP: '10.244.1.20', hostIP: '192.168.0.1', phase: 'Running' },
  },
  Service: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'target', namespace: 'team', labels: { app: 'target' } },
    spec: { clusterIP: '10.96.1.20', clusterIPs: ['10.96.1.20'], selector: { app: 'target' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  },
  AuthorizationPolicy: {
    apiVersion: API,
    kind: 'AuthorizationPolicy',
    metadata: { name: 'target', namespace: 'team' },
    spec: {
      selector: { matchLabels: { app: 'target' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/team/sa/target-sa'], namespaces: ['team'], ipBlocks: ['10.244.0.0/16'] } }], to: [{ operation: { ports: ['8080'] } }] }],
    },
  },
  PeerAuthentication: { apiVersion: API, kind: 'PeerAuthentication', metadata: { name: 'target', namespace: 'team' }, spec: { selector: { matchLabels: { app: 'target' } }, mtls: { mode: 'STRICT' } } },
};

/** Valid objects sharing the file with the mutated one: they must render whatever it holds. */
const NEIGHBOURS = `apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { sluice.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: neighbour, namespace: shop, labels: { app: neighbour } }
spec: { nodeName: node-1, serviceAccountName: neighbour, containers: [{ name: c, command: [x] }] }
status: { podIP: 10.244.1.2 }
---
apiVersion: v1
kind: Service
metadata: { name: neighbour, namespace: shop }
spec: { clusterIP: 10.96.0.10, selector: { app: neighbour }, ports: [{ port: 80 }] }
`;

type Path = (string | number)[];

/** Every field path of an object, parents before children. */
function paths(value: unknown, prefix: Path = []): Path[] {
  if (value === null || typeof value !== 'object') return [];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return entries.flatMap(([k, v]) => [[...prefix, k], ...paths(v, [...prefix, k])]);
}

const MISSING = Symbol('missing');

/** The mutations: field-type confusion, extremes, and strings aimed at names and paths. */
function mutations(next: () => number): { label: string; value: unknown }[] {
  const pick = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)];
  return [
    { label: 'missing', value: MISSING },
    { label: 'null', value: null },
    { label: 'string for number', value: '80' },
    { label: 'array for object', value: [] },
    { label: 'array of null', value: [null] },
    { label: 'object for string', value: { name: 'frontend' } },
    { label: 'huge number', value: pick([1e308, 2 ** 53 + 1, 4294967377, 65536]) },
    { label: 'negative', value: pick([-1, -65535, -0.5]) },
    { label: 'zero', value: 0 },
    { label: 'boolean', value: pick([true, false]) },
    { label: 'unicode', value: pick(['ẞhop', 'fröntend', 'web\u202eevil', '名前', 'a\u0000b', '😀']) },
    { label: 'path traversal', value: pick(['../', '../../etc/passwd', 'x/../../ns/trusted/sa/frontend', 'a/b', '..', '.']) },
    { label: 'very long string', value: 'a'.repeat(Math.floor(300 + next() * 20000)) },
    { label: 'empty string', value: '' },
    { label: 'look-alike address', value: pick(['10.244.1.2', '10.96.0.0', '010.96.0.1', '::ffff:10.96.0.1', '0.0.0.0', '10.96.0.10', '255.255.255.255']) },
  ];
}

function mutate(base: object, at: Path, value: unknown): KubeObject {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let cur: Record<string | number, unknown> = copy;
  for (const k of at.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = at[at.length - 1];
  if (value === MISSING) {
    if (Array.isArray(cur)) cur.splice(last as number, 1);
    else delete cur[last];
  } else cur[last] = value;
  return copy as unknown as KubeObject;
}

interface Case {
  id: string;
  object: KubeObject;
}

function corpus(): Case[] {
  const next = seededRandom(SEED);
  const cases: Case[] = [];
  for (const [kind, base] of Object.entries(BASES)) {
    for (const at of paths(base)) {
      for (const m of mutations(next)) cases.push({ id: `${kind} ${at.join('.')} <- ${m.label}`, object: mutate(base, at, m.value) });
    }
  }
  // Several mutations at once: what a careless generator or a hostile author writes.
  for (let i = 0; i < 300; i++) {
    const [kind, base] = Object.entries(BASES)[Math.floor(next() * Object.keys(BASES).length)];
    let object = base as KubeObject;
    const labels: string[] = [];
    for (let j = 0; j < 2 + Math.floor(next() * 3); j++) {
      const all = paths(object);
      if (all.length === 0) break;
      const at = all[Math.floor(next() * all.length)];
      const ms = mutations(next);
      const m = ms[Math.floor(next() * ms.length)];
      object = mutate(object, at, m.value);
      labels.push(`${at.join('.')} <- ${m.label}`);
    }
    cases.push({ id: `${kind} combined #${i}: ${labels.join(', ')}`, object });
  }
  return cases;
}

// Kubernetes' own patterns, written out again here so that the oracle does not share code with what it checks.
const LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const IDENTITY = new RegExp(`^spiffe://cluster\\.local/ns/${LABEL}/sa/${LABEL}(\\.${LABEL})*$`);
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const SUBDOMAIN = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) return undefined;
  return m.slice(1).reduce((a, o) => a * 256 + Number(o), 0);
}
const SERVICE_FIRST = ipv4('10.96.0.0')!;
const SERVICE_LAST = ipv4('10.111.255.255')!;

const describe_ = (v: unknown) => JSON.stringify(v)?.slice(0, 100);
/** What must hold of everything rendered, whatever went in. */
function invariantViolations(r: Rendering): string[] {
  const out: string[] = [];
  const strings = (...vs: unknown[]) => vs.every((v) => typeof v === 'string');
  for (const w of r.workloads) {
    if (!strings(w.identity, w.name, w.namespace, w.serviceAccount)) {
      out.push(`workload ${describe_(w.name)}: a name or identity is not a string`);
      continue;
    }
    if (!IDENTITY.test(w.identity) || w.identity.length > 2048) out.push(`workload ${w.name}: identity ${JSON.stringify(w.identity.slice(0, 100))}`);
    if (!SUBDOMAIN.test(w.name) || w.name.length > 253) out.push(`workload name ${JSON.stringify(w.name.slice(0, 100))}`);
    if (!new RegExp(`^${LABEL}$`).test(w.namespace)) out.push(`workload namespace ${JSON.stringify(w.namespace.slice(0, 100))}`);
    if (!w.identity.endsWith(`/ns/${w.namespace}/sa/${w.serviceAccount}`)) out.push(`workload ${w.name}: identity does not match its namespace and service account`);
  }
  for (const s of r.services) {
    if (!Array.isArray(s.clusterIPs) || !Array.isArray(s.ports)) {
      out.push(`service ${describe_(s.name)}: clusterIPs or ports not a list`);
      continue;
    }
    for (const ip of s.clusterIPs) {
      const n = typeof ip === 'string' ? ipv4(ip) : undefined;
      if (n === undefined || n <= SERVICE_FIRST || n >= SERVICE_LAST) out.push(`service ${s.name}: clusterIP ${JSON.stringify(ip)} outside 10.96.0.0/12`);
    }
    for (const p of s.ports) {
      for (const v of [p.port, p.targetPort]) if (!Number.isInteger(v) || v < 1 || v > 65535) out.push(`service ${s.name}: port ${v}`);
    }
  }
  for (const p of [...r.authorizationPolicies, ...r.peerAuthentications]) {
    for (const v of Object.values(p.selector ?? {})) if (typeof v !== 'string' || !LABEL_VALUE.test(v)) out.push(`policy ${describe_(p.name)}: selector value ${describe_(v)}`);
    if (!strings(p.name, p.namespace) || !SUBDOMAIN.test(p.name) || !new RegExp(`^${LABEL}$`).test(p.namespace)) out.push(`policy ${JSON.stringify(p.name)} in ${JSON.stringify(p.namespace)}`);
  }
  // The agent validates what it receives; nothing rendered may be refused there.
  const agent = validateSnapshot(JSON.parse(JSON.stringify({ version: 'fuzz', workloads: r.workloads, services: r.services })));
  for (const x of agent.rejected) out.push(`agent refuses ${x.kind} ${x.name}: ${x.reason.slice(0, 200)}`);
  return out;
}

describe('control plane input fuzz (seeded field-type mutations)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-fuzz-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases = corpus();

  it(`feeds ${cases.length} mutated objects through render: no crash, each rejected by name or rendered valid`, (t) => {
    assert.ok(cases.length >= 500, `only ${cases.length} cases`);
    const file = path.join(dir, 'app.yaml');
    const failures: string[] = [];
    const tally = { rejected: 0, rendered: 0, ignored: 0, fileRejected: 0 };
    for (const c of cases) {
      const fail = (why: string) => failures.push(`${c.id}: ${why}`);
      fs.writeFileSync(file, `${NEIGHBOURS}---\n${stringify(c.object)}`);
      let result: ReturnType<typeof renderManifests>;
      try {
        result = renderManifests(dir);
      } catch (err) {
        fail(`threw ${(err as Error).stack}`);
        continue;
      }
      const { rendering: r, fileErrors } = result;
      for (const v of invariantViolations(r)) fail(v);
      if (fileErrors.length) {
        // Only a document that is not an object at all (no kind) may cost the whole file; the error names the document.
        if (typeof c.object.kind === 'string' && c.object.kind !== '') fail(`file rejected: ${fileErrors.join('; ')}`);
        else if (!fileErrors.every((e) => e.startsWith(`${file} (document 4)`))) fail(`file error does not name the document: ${fileErrors.join('; ')}`);
        tally.fileRejected++;
        continue;
      }
      // The neighbours render, untouched by their bad company.
      if (!r.workloads.some((w) => w.name === 'neighbour' && w.identity === 'spiffe://cluster.local/ns/shop/sa/neighbour')) fail('neighbour pod missing');
      if (!r.services.some((s) => s.name === 'neighbour' && s.clusterIPs[0] === '10.96.0.10')) fail('neighbour service missing');
      const errors = r.errors.filter((e) => e.source === `${file} (document 4)`);
      if (r.errors.length !== errors.length) fail(`errors about other documents: ${r.errors.filter((e) => !errors.includes(e)).map((e) => e.object).join(', ')}`);
      if (errors.length) {
        const name = objectName(c.object);
        if (!errors.every((e) => e.object === name && e.field !== '' && e.reason !== '')) fail(`error does not name the object ${name}: ${JSON.stringify(errors[0])}`);
        if (errors.some((e) => /could not be validated/.test(e.reason))) fail(`a check threw: ${errors[0].reason}`);
        tally.rejected++;
      } else if (
        r.workloads.some((w) => w.name !== 'neighbour') ||
        r.services.some((s) => s.name !== 'neighbour') ||
        r.authorizationPolicies.length + r.peerAuthentications.length > 0 ||
        c.object.kind === 'Namespace'
      ) {
        tally.rendered++;
      } else {
        // Not an error and not rendered: a pod with no IP yet, another API group, an ignored kind.
        const o = c.object as { kind: unknown; apiVersion: unknown; status?: { podIP?: unknown } };
        // Or valid and reported as not served (a headless Service, a UDP port, an IPv6 cluster IP).
        const warned = r.warnings.some((w) => w.object === objectName(c.object) && w.field !== '' && w.reason !== '');
        const explained = warned || (o.kind === 'Pod' && !o.status?.podIP) || o.kind !== (c.id.split(' ')[0]) || (typeof o.apiVersion === 'string' && o.apiVersion.includes('/') && o.apiVersion !== API) || (o.apiVersion !== API && (o.kind === 'AuthorizationPolicy' || o.kind === 'PeerAuthentication'));
        if (!explained) fail('neither rejected nor rendered');
        tally.ignored++;
      }
    }
    t.diagnostic(`${cases.length} cases: ${JSON.stringify(tally)}`);
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failing cases`);
  });

  it('the dangerous values are among those rejected, never rendered', () => {
    const dangerous = cases.filter((c) => /serviceAccountName <- (path traversal|object for string|unicode)|clusterIPs?(\.0)? <- look-alike/.test(c.id));
    assert.ok(dangerous.length >= 8);
    const file = path.join(dir, 'app.yaml');
    for (const c of dangerous) {
      fs.writeFileSync(file, `${NEIGHBOURS}---\n${stringify(c.object)}`);
      let r: Rendering;
      try {
        r = renderManifests(dir).rendering;
      } catch (err) {
        assert.fail(`${c.id}: threw ${(err as Error).message}`);
      }
      const rendered = r.workloads.some((w) => w.name === 'target') || r.services.some((s) => s.name === 'target');
      const value = c.object.kind === 'Pod' ? (c.object.spec as { serviceAccountName?: unknown }).serviceAccountName : (c.object.spec as { clusterIP?: unknown }).clusterIP;
      // A look-alike that is a fine address (10.96.0.10 is taken by the neighbour, so it is refused too) may only render when valid.
      if (rendered) assert.equal(invariantViolations(r).length, 0, `${c.id}: ${JSON.stringify(value)}`);
      else assert.ok(r.errors.some((e) => e.object === objectName(c.object)), c.id);
    }
  });
});
