// The CRDs of security.sluice.dev/v1alpha1, offline: deploy/base/crds/ is what
// src/control/policy-crds.ts generates, every CRD is structural enough for
// the API server (no $ref, types everywhere, status subresource, printer
// columns), and its OpenAPI schema, run with ajv, accepts and refuses the
// same policies as the translation does. ajv stands in for the API server:
// additionalProperties: false is added where properties are listed (what
// server-side field validation Strict does), x-kubernetes-int-or-string
// becomes integer-or-string, and the CEL rules (x-kubernetes-validations)
// run as the equivalent checks.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import Ajv from 'ajv';
import { parse, stringify } from 'yaml';
import type { KubeObject } from '../../src/control/kubernetes-objects';
import { POLICY_CRDS, crdFileText } from '../../src/control/policy-crds';
import { translatePolicies } from '../../src/control/translate-policy';
import { parseCidr } from '../../src/model/ip-match';

const crdDir = path.resolve(__dirname, '..', '..', '..', 'deploy', 'base', 'crds');

/** The CRD schema as ajv sees it under Strict field validation. */
function forAjv(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forAjv);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  const s = schema as Record<string, unknown>;
  for (const [k, v] of Object.entries(s)) {
    if (k === 'x-kubernetes-validations') out.cel = v;
    else if (k.startsWith('x-kubernetes-') || k === 'description') continue;
    else if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v as object).map(([p, sub]) => [p, forAjv(sub)]));
    else out[k] = forAjv(v);
  }
  if (s.properties && s.additionalProperties === undefined && !(s.properties as Record<string, unknown>).metadata) out.additionalProperties = false;
  return out;
}

const QUALIFIED = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const ajv = new Ajv({ allErrors: true, strict: false });
// The CEL rules of the CRDs, as the same checks in JavaScript.
ajv.addKeyword({
  keyword: 'cel',
  validate: (rules: { rule: string }[], data: unknown) =>
    rules.every(({ rule }) =>
      rule.startsWith('self.all(k')
        ? Object.keys(data as object).every((k) => QUALIFIED.test(k))
        : rule === 'isCIDR(self) || isIP(self)'
          ? typeof data === 'string' && (net.isIP(data) !== 0 || (data.includes('/') && parseCidr(data) !== undefined))
          : false,
    ),
});

function validator(kind: string) {
  const crd = Object.values(POLICY_CRDS).find((c) => (c as { spec: { names: { kind: string } } }).spec.names.kind === kind) as {
    spec: { versions: { schema: { openAPIV3Schema: object } }[] };
  };
  return ajv.compile(forAjv(crd.spec.versions[0].schema.openAPIV3Schema) as object);
}

const API = 'security.sluice.dev/v1alpha1';
const ap = (spec: unknown) => ({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec });
const pa = (spec: unknown) => ({ apiVersion: API, kind: 'PeerAuthentication', metadata: { name: 'p', namespace: 'shop' }, spec });
const from = (source: object) => ap({ rules: [{ from: [{ source }] }] });
const to = (operation: object) => ap({ rules: [{ to: [{ operation }] }] });

/** [name, object, accepted by the translation (and so by the CRD)] */
const CASES: [string, object, boolean][] = [
  ['allow-nothing (no rules)', ap({}), true],
  ['allow-all (one empty rule)', ap({ rules: [{}] }), true],
  ['DENY by namespace', ap({ action: 'DENY', rules: [{ from: [{ source: { namespaces: ['legacy'] } }] }] }), true],
  ['full policy', ap({ selector: { matchLabels: { app: 'checkout' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/frontend/sa/web'] } }], to: [{ operation: { ports: ['8080'] } }] }] }), true],
  ['ports as numbers', to({ ports: [8080, 443], notPorts: ['22'] }), true],
  ['principal wildcards', from({ principals: ['*', 'cluster.local/ns/shop/*', '*/sa/web', 'cluster.local/*'], notPrincipals: ['*/ns/legacy/sa/x'] }), true],
  ['namespace wildcards', from({ namespaces: ['*', 'team-*', '*-prod'] }), true],
  ['ipBlocks', from({ ipBlocks: ['10.0.0.0/8', '192.168.1.1', 'fd00::/8'], notIpBlocks: ['10.1.2.3/32'] }), true],
  ['unknown action', ap({ action: 'AUDIT' }), false],
  ['action lower case', ap({ action: 'allow' }), false],
  ['rules not a list', ap({ rules: { from: [] } }), false],
  ['empty from', ap({ rules: [{ from: [] }] }), false],
  ['empty to', ap({ rules: [{ to: [] }] }), false],
  ['from entry without source', ap({ rules: [{ from: [{}] }] }), false],
  ['empty source', from({}), false],
  ['empty operation', to({}), false],
  ['L7 field (requestPrincipals)', from({ requestPrincipals: ['*'] }), false],
  ['L7 field (methods)', to({ methods: ['GET'] }), false],
  ['unknown spec field', ap({ selectr: { matchLabels: { app: 'x' } } }), false],
  ['unknown rule field', ap({ rules: [{ when: [] }] }), false],
  ['principal with a typo', from({ principals: ['cluster.local/namespace/shop/sa/web'] }), false],
  ['principal with two stars', from({ principals: ['*/ns/*'] }), false],
  ['principal star in the middle', from({ principals: ['cluster.local/ns/s*p/sa/web'] }), false],
  ['principal not a string', from({ principals: [7] }), false],
  ['namespace upper case', from({ namespaces: ['Shop'] }), false],
  ['namespace star in the middle', from({ namespaces: ['te*am'] }), false],
  ['ipBlock not an address', from({ ipBlocks: ['10.0.0.0/33'] }), false],
  ['ipBlock a name', from({ ipBlocks: ['example.com'] }), false],
  ['port 0', to({ ports: [0] }), false],
  ['port 70000', to({ ports: ['70000'] }), false],
  ['port a name', to({ ports: ['http'] }), false],
  ['selector label value bad', ap({ selector: { matchLabels: { app: 'not a label value' } } }), false],
  ['selector label key bad', ap({ selector: { matchLabels: { 'bad key': 'x' } } }), false],
  ['selector not an object', ap({ selector: 'app=web' }), false],
  ['PeerAuthentication STRICT', pa({ mtls: { mode: 'STRICT' } }), true],
  ['PeerAuthentication with selector', pa({ selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'PERMISSIVE' } }), true],
  ['PeerAuthentication DISABLE', pa({ mtls: { mode: 'DISABLE' } }), true],
  ['PeerAuthentication unknown mode', pa({ mtls: { mode: 'UNSET' } }), false],
  ['PeerAuthentication without mode', pa({ mtls: {} }), false],
  ['PeerAuthentication without mtls', pa({}), false],
  ['PeerAuthentication unknown field', pa({ mtls: { mode: 'STRICT' }, portLevelMtls: {} }), false],
];

describe('policy CRDs', () => {
  it('deploy/base/crds/ is what src/control/policy-crds.ts generates (node scripts/generate-crds.js)', () => {
    for (const [file, object] of Object.entries(POLICY_CRDS)) {
      const text = fs.readFileSync(path.join(crdDir, file), 'utf8');
      assert.equal(text, crdFileText(object, (o) => stringify(o, { lineWidth: 0 })), `${file} is stale: run node scripts/generate-crds.js`);
      assert.deepEqual(parse(text), object);
    }
  });

  it('are structural, with a status subresource and printer columns', () => {
    for (const [file, object] of Object.entries(POLICY_CRDS)) {
      const v = (object as { spec: { versions: { subresources: object; additionalPrinterColumns: { jsonPath: string }[]; schema: object }[] } }).spec.versions[0];
      assert.deepEqual(v.subresources, { status: {} }, file);
      assert.ok(v.additionalPrinterColumns.some((c) => c.jsonPath.startsWith('.spec.')), file);
      const walk = (s: unknown, at: string): void => {
        if (s === null || typeof s !== 'object') return;
        const o = s as Record<string, unknown>;
        assert.ok(!('$ref' in o), `${file} ${at}: $ref is not allowed in a CRD`);
        if (o.properties) {
          assert.ok(o.type === 'object', `${file} ${at}: properties need type object`);
          assert.ok(o.additionalProperties === undefined, `${file} ${at}: properties and additionalProperties together`);
        }
        for (const [k, v] of Object.entries(o)) walk(v, `${at}.${k}`);
      };
      walk(v.schema, 'schema');
    }
  });

  it('the schema accepts and refuses the same policies as the translation', () => {
    const validators = { AuthorizationPolicy: validator('AuthorizationPolicy'), PeerAuthentication: validator('PeerAuthentication') };
    const disagreements: string[] = [];
    for (const [name, object, expected] of CASES) {
      const translated = translatePolicies([{ object: object as KubeObject, source: 'case' }]);
      const byTranslation = translated.errors.length === 0;
      const byCrd = validators[(object as { kind: 'AuthorizationPolicy' | 'PeerAuthentication' }).kind](object);
      if (byTranslation !== expected) disagreements.push(`${name}: translation ${byTranslation ? 'accepts' : 'refuses'} (${translated.errors.map((e) => e.reason).join('; ')})`);
      if (byCrd !== expected) disagreements.push(`${name}: CRD schema ${byCrd ? 'accepts' : 'refuses'}`);
    }
    assert.deepEqual(disagreements, []);
  });
});
