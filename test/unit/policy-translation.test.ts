import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject, SourcedObject } from '../../src/control/kubernetes-objects';
import { formatTranslationError } from '../../src/control/translate';
import { translatePolicies } from '../../src/control/translate-policy';
import type { AuthorizationPolicy } from '../../src/model/policy';
import { PolicySet } from '../../src/proxy/authorization';
import { parseCidr } from '../../src/model/ip-match';

const API = 'security.sluice.dev/v1alpha1';
const src = (object: object, source = 'policies.yaml'): SourcedObject => ({ object: object as KubeObject, source });
const authz = (name: string, spec?: object, namespace = 'shop') =>
  src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name, namespace }, ...(spec === undefined ? {} : { spec }) });
const peer = (name: string, spec?: object, namespace = 'shop') =>
  src({ apiVersion: API, kind: 'PeerAuthentication', metadata: { name, namespace }, ...(spec === undefined ? {} : { spec }) });
/** One ALLOW rule with one source and/or one operation. */
const withSource = (source: object) => ({ rules: [{ from: [{ source }] }] });
const withOperation = (operation: object) => ({ rules: [{ to: [{ operation }] }] });

describe('translation of security policies', () => {
  it('translates a full AuthorizationPolicy to the model', () => {
    const { authorizationPolicies, peerAuthentications, errors } = translatePolicies([
      authz('web', {
        selector: { matchLabels: { app: 'web' } },
        action: 'DENY',
        rules: [
          {
            from: [
              {
                source: {
                  principals: ['cluster.local/ns/front/sa/frontend', 'cluster.local/ns/ops/*', '*/sa/admin', '*'],
                  notPrincipals: ['cluster.local/ns/front/sa/legacy'],
                  namespaces: ['front', 'team-*', '*-prod'],
                  notNamespaces: ['kube-system'],
                  ipBlocks: ['10.244.0.0/16', '10.0.0.1', '2001:db8::/32', '::ffff:10.1.0.0/112'],
                  notIpBlocks: ['10.244.9.0/24'],
                },
              },
              { source: { namespaces: ['ops'] } },
            ],
            to: [{ operation: { ports: ['8080', 8443], notPorts: [9090, '9091'] } }],
          },
          { from: [{ source: { ipBlocks: ['192.168.0.0/16'] } }] },
          { to: [{ operation: { ports: ['22'] } }] },
        ],
      }),
    ]);
    assert.deepEqual(errors, []);
    assert.deepEqual(peerAuthentications, []);
    const expected: AuthorizationPolicy = {
      name: 'web',
      namespace: 'shop',
      selector: { app: 'web' },
      action: 'DENY',
      rules: [
        {
          from: [
            {
              source: {
                principals: ['cluster.local/ns/front/sa/frontend', 'cluster.local/ns/ops/*', '*/sa/admin', '*'],
                notPrincipals: ['cluster.local/ns/front/sa/legacy'],
                namespaces: ['front', 'team-*', '*-prod'],
                notNamespaces: ['kube-system'],
                ipBlocks: ['10.244.0.0/16', '10.0.0.1', '2001:db8::/32', '::ffff:10.1.0.0/112'],
                notIpBlocks: ['10.244.9.0/24'],
              },
            },
            { source: { namespaces: ['ops'] } },
          ],
          to: [{ operation: { ports: [8080, 8443], notPorts: [9090, 9091] } }],
        },
        { from: [{ source: { ipBlocks: ['192.168.0.0/16'] } }], to: [] },
        { from: [], to: [{ operation: { ports: [22] } }] },
      ],
    };
    assert.deepEqual(authorizationPolicies, [expected]);
    // Plain data: survives JSON (no undefined fields, no class instances).
    assert.deepEqual(JSON.parse(JSON.stringify(authorizationPolicies)), authorizationPolicies);
  });

  it('follows Istio for defaults and empty rules', () => {
    const { authorizationPolicies, errors } = translatePolicies([
      authz('allow-nothing', {}),
      authz('no-spec'),
      authz('empty-rules', { action: 'ALLOW', rules: [] }),
      authz('allow-all', { rules: [{}] }),
      authz('deny-nothing', { action: 'DENY' }),
      authz('deny-all', { action: 'DENY', rules: [{}] }),
      // YAML "key:" with nothing after it is null: treated as absent, as Kubernetes does.
      authz('nulls', { selector: null, action: null, rules: [{ from: null, to: null }] }),
      authz('empty-selector', { selector: { matchLabels: {} }, rules: [{}] }),
      src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'default-ns' }, spec: {} }),
    ]);
    assert.deepEqual(errors, []);
    assert.deepEqual(
      authorizationPolicies.map((p) => [`${p.namespace}/${p.name}`, p.action, p.selector, p.rules]),
      [
        ['shop/allow-nothing', 'ALLOW', undefined, []],
        ['shop/no-spec', 'ALLOW', undefined, []],
        ['shop/empty-rules', 'ALLOW', undefined, []],
        ['shop/allow-all', 'ALLOW', undefined, [{ from: [], to: [] }]],
        ['shop/deny-nothing', 'DENY', undefined, []],
        ['shop/deny-all', 'DENY', undefined, [{ from: [], to: [] }]],
        ['shop/nulls', 'ALLOW', undefined, [{ from: [], to: [] }]],
        ['shop/empty-selector', 'ALLOW', undefined, [{ from: [], to: [] }]],
        ['default/default-ns', 'ALLOW', undefined, []],
      ],
    );
    assert.ok(authorizationPolicies.every((p) => !('selector' in p)), 'no selector key when there is no selector');
  });

  it('drops empty lists inside a source or operation, as Istio treats them as unset', () => {
    const { authorizationPolicies, errors } = translatePolicies([authz('p', { rules: [{ from: [{ source: { principals: [], namespaces: ['front'] } }], to: [{ operation: { ports: [80], notPorts: [] } }] }] })]);
    assert.deepEqual(errors, []);
    assert.deepEqual(authorizationPolicies[0].rules, [{ from: [{ source: { namespaces: ['front'] } }], to: [{ operation: { ports: [80] } }] }]);
  });

  it('translates PeerAuthentication', () => {
    const { peerAuthentications, authorizationPolicies, errors } = translatePolicies([
      peer('mesh', { mtls: { mode: 'STRICT' } }, 'sluice-system'),
      peer('shop', { mtls: { mode: 'PERMISSIVE' } }),
      peer('legacy', { selector: { matchLabels: { app: 'legacy' } }, mtls: { mode: 'DISABLE' } }),
    ]);
    assert.deepEqual(errors, []);
    assert.deepEqual(authorizationPolicies, []);
    assert.deepEqual(peerAuthentications, [
      { name: 'mesh', namespace: 'sluice-system', mode: 'STRICT' },
      { name: 'shop', namespace: 'shop', mode: 'PERMISSIVE' },
      { name: 'legacy', namespace: 'shop', selector: { app: 'legacy' }, mode: 'DISABLE' },
    ]);
  });

  it('ignores other kinds and API versions', () => {
    const { authorizationPolicies, peerAuthentications, errors } = translatePolicies([
      src({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'istio', namespace: 'shop' }, spec: { action: 'CUSTOM' } }),
      src({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: {} }),
      src({ apiVersion: API, kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'shop' }, spec: {} }),
    ]);
    assert.deepEqual([authorizationPolicies, peerAuthentications, errors], [[], [], []]);
  });

  it('rejects each malformed object alone, naming file, object, field and reason', () => {
    const { authorizationPolicies, peerAuthentications, errors } = translatePolicies([
      authz('good', withSource({ namespaces: ['front'] })),
      authz('bad-action', { action: 'AUDIT', rules: [{}] }),
      authz('lower-case-action', { action: 'deny', rules: [{}] }),
      authz('spec-field', { targetRef: { kind: 'Service', name: 'web' }, rules: [{}] }),
      authz('selector-field', { selector: { matchExpressions: [] } }),
      authz('label-value', { selector: { matchLabels: { app: 7 } } }),
      authz('rule-field', { rules: [{ from: [{ source: { namespaces: ['front'] } }], when: [{ key: 'source.ip', values: ['10.0.0.1'] }] }] }),
      authz('from-field', { rules: [{ from: [{ source: { namespaces: ['front'] }, sources: {} }] }] }),
      authz('source-field', withSource({ namespaces: ['front'], requestPrincipals: ['*'] })),
      authz('source-typo', withSource({ principal: ['*'] })),
      authz('to-field', { rules: [{ to: [{ operation: { ports: [80] }, operations: {} }] }] }),
      authz('operation-field', withOperation({ ports: [80], methods: ['GET'] })),
      authz('port-zero', withOperation({ ports: [0] })),
      authz('port-high', withOperation({ ports: ['70000'] })),
      authz('port-name', withOperation({ notPorts: ['http'] })),
      authz('port-fraction', withOperation({ ports: [80.5] })),
      authz('ip-prefix', withSource({ ipBlocks: ['10.0.0.0/33'] })),
      authz('ip-octet', withSource({ notIpBlocks: ['10.0.0.300'] })),
      authz('ip-zone', withSource({ ipBlocks: ['fe80::1%eth0'] })),
      authz('ip-name', withSource({ ipBlocks: ['10.0.0.0/8', 'localhost'] })),
      authz('principal-bare', withSource({ principals: ['frontend'] })),
      authz('principal-scheme', withSource({ principals: ['spiffe://cluster.local/ns/front/sa/frontend'] })),
      authz('principal-middle-star', withSource({ notPrincipals: ['cluster.local/ns/*/sa/frontend'] })),
      authz('principal-two-stars', withSource({ principals: ['*front*'] })),
      authz('principal-typo', withSource({ principals: ['cluster.local/namespace/front/*'] })),
      authz('principal-empty', withSource({ principals: [''] })),
      authz('namespace-case', withSource({ namespaces: ['Front'] })),
      authz('namespace-type', withSource({ notNamespaces: 'front' })),
      authz('rules-type', { rules: { from: [] } }),
      authz('rule-null', { rules: [null] }),
      authz('from-empty', { rules: [{ from: [] }] }),
      authz('to-empty', { rules: [{ to: [] }] }),
      authz('source-missing', { rules: [{ from: [{}] }] }),
      authz('source-empty', withSource({})),
      authz('source-only-empty-lists', withSource({ principals: [] })),
      authz('operation-empty', withOperation({})),
      authz('good', withSource({ namespaces: ['ops'] })),
      peer('good', { mtls: { mode: 'STRICT' } }),
      peer('bad-mode', { mtls: { mode: 'UNSET' } }),
      peer('no-mode', {}),
      peer('port-level', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { 8080: { mode: 'DISABLE' } } }),
      src({ apiVersion: API, kind: 'AuthorizationPolicy', metadata: { namespace: 'shop' }, spec: {} }, 'other.yaml'),
      peer('good-too', { mtls: { mode: 'PERMISSIVE' } }),
    ]);
    assert.deepEqual(authorizationPolicies.map((p) => p.name), ['good']);
    assert.deepEqual(peerAuthentications.map((p) => p.name), ['good', 'good-too']);
    assert.deepEqual(errors.map(formatTranslationError), [
      'policies.yaml: AuthorizationPolicy shop/bad-action: spec.action: unknown action "AUDIT" (allowed: ALLOW, DENY)',
      'policies.yaml: AuthorizationPolicy shop/lower-case-action: spec.action: unknown action "deny" (allowed: ALLOW, DENY)',
      'policies.yaml: AuthorizationPolicy shop/spec-field: spec: unknown field "targetRef" (allowed: selector, action, rules)',
      'policies.yaml: AuthorizationPolicy shop/selector-field: spec.selector: unknown field "matchExpressions" (allowed: matchLabels)',
      'policies.yaml: AuthorizationPolicy shop/label-value: spec.selector.matchLabels.app: must be a string (got 7)',
      'policies.yaml: AuthorizationPolicy shop/rule-field: spec.rules[0]: unknown field "when" (allowed: from, to; sluice authorizes at L4 only)',
      'policies.yaml: AuthorizationPolicy shop/from-field: spec.rules[0].from[0]: unknown field "sources" (allowed: source)',
      'policies.yaml: AuthorizationPolicy shop/source-field: spec.rules[0].from[0].source: unknown field "requestPrincipals" (allowed: principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks; sluice authorizes at L4 only)',
      'policies.yaml: AuthorizationPolicy shop/source-typo: spec.rules[0].from[0].source: unknown field "principal" (allowed: principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks)',
      'policies.yaml: AuthorizationPolicy shop/to-field: spec.rules[0].to[0]: unknown field "operations" (allowed: operation)',
      'policies.yaml: AuthorizationPolicy shop/operation-field: spec.rules[0].to[0].operation: unknown field "methods" (allowed: ports, notPorts; sluice authorizes at L4 only)',
      'policies.yaml: AuthorizationPolicy shop/port-zero: spec.rules[0].to[0].operation.ports[0]: must be an integer 1-65535 (got 0)',
      'policies.yaml: AuthorizationPolicy shop/port-high: spec.rules[0].to[0].operation.ports[0]: must be an integer 1-65535 (got "70000")',
      'policies.yaml: AuthorizationPolicy shop/port-name: spec.rules[0].to[0].operation.notPorts[0]: must be an integer 1-65535 (got "http")',
      'policies.yaml: AuthorizationPolicy shop/port-fraction: spec.rules[0].to[0].operation.ports[0]: must be an integer 1-65535 (got 80.5)',
      'policies.yaml: AuthorizationPolicy shop/ip-prefix: spec.rules[0].from[0].source.ipBlocks[0]: not an IPv4/IPv6 address or CIDR (got "10.0.0.0/33")',
      'policies.yaml: AuthorizationPolicy shop/ip-octet: spec.rules[0].from[0].source.notIpBlocks[0]: not an IPv4/IPv6 address or CIDR (got "10.0.0.300")',
      'policies.yaml: AuthorizationPolicy shop/ip-zone: spec.rules[0].from[0].source.ipBlocks[0]: not an IPv4/IPv6 address or CIDR (got "fe80::1%eth0")',
      'policies.yaml: AuthorizationPolicy shop/ip-name: spec.rules[0].from[0].source.ipBlocks[1]: not an IPv4/IPv6 address or CIDR (got "localhost")',
      'policies.yaml: AuthorizationPolicy shop/principal-bare: spec.rules[0].from[0].source.principals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "frontend")',
      'policies.yaml: AuthorizationPolicy shop/principal-scheme: spec.rules[0].from[0].source.principals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "spiffe://cluster.local/ns/front/sa/frontend")',
      'policies.yaml: AuthorizationPolicy shop/principal-middle-star: spec.rules[0].from[0].source.notPrincipals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "cluster.local/ns/*/sa/frontend")',
      'policies.yaml: AuthorizationPolicy shop/principal-two-stars: spec.rules[0].from[0].source.principals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "*front*")',
      'policies.yaml: AuthorizationPolicy shop/principal-typo: spec.rules[0].from[0].source.principals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "cluster.local/namespace/front/*")',
      'policies.yaml: AuthorizationPolicy shop/principal-empty: spec.rules[0].from[0].source.principals[0]: must be "<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix" (got "")',
      'policies.yaml: AuthorizationPolicy shop/namespace-case: spec.rules[0].from[0].source.namespaces[0]: must be a namespace name, "*", "prefix*" or "*suffix" (got "Front")',
      'policies.yaml: AuthorizationPolicy shop/namespace-type: spec.rules[0].from[0].source.notNamespaces: must be a list (got "front")',
      'policies.yaml: AuthorizationPolicy shop/rules-type: spec.rules: must be a list (got {"from":[]})',
      'policies.yaml: AuthorizationPolicy shop/rule-null: spec.rules[0]: must be an object',
      'policies.yaml: AuthorizationPolicy shop/from-empty: spec.rules[0].from: must not be empty (omit it to match any source)',
      'policies.yaml: AuthorizationPolicy shop/to-empty: spec.rules[0].to: must not be empty (omit it to match any operation)',
      'policies.yaml: AuthorizationPolicy shop/source-missing: spec.rules[0].from[0].source: required',
      'policies.yaml: AuthorizationPolicy shop/source-empty: spec.rules[0].from[0].source: must not be empty (set at least one of principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks)',
      'policies.yaml: AuthorizationPolicy shop/source-only-empty-lists: spec.rules[0].from[0].source: must not be empty (set at least one of principals, notPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks)',
      'policies.yaml: AuthorizationPolicy shop/operation-empty: spec.rules[0].to[0].operation: must not be empty (set at least one of ports, notPorts)',
      'policies.yaml: AuthorizationPolicy shop/good: metadata.name: duplicate: AuthorizationPolicy shop/good is already defined in policies.yaml',
      'policies.yaml: PeerAuthentication shop/bad-mode: spec.mtls.mode: unknown mode "UNSET" (allowed: STRICT, PERMISSIVE, DISABLE)',
      'policies.yaml: PeerAuthentication shop/no-mode: spec.mtls.mode: required (one of STRICT, PERMISSIVE, DISABLE)',
      'policies.yaml: PeerAuthentication shop/port-level: spec: unknown field "portLevelMtls" (allowed: selector, mtls)',
      'other.yaml: AuthorizationPolicy shop/(unnamed): metadata.name: required',
    ]);
  });

  it('reports every problem of one object', () => {
    const { authorizationPolicies, errors } = translatePolicies([
      authz('many', { action: 'AUDIT', rules: [{ from: [{ source: { ipBlocks: ['x'], namespaces: ['*'] } }], to: [{ operation: { ports: [1, 0, 'a'] } }] }] }),
    ]);
    assert.deepEqual(authorizationPolicies, []);
    assert.deepEqual(errors.map((e) => `${e.field}: ${e.reason}`), [
      'spec.action: unknown action "AUDIT" (allowed: ALLOW, DENY)',
      'spec.rules[0].from[0].source.ipBlocks[0]: not an IPv4/IPv6 address or CIDR (got "x")',
      'spec.rules[0].to[0].operation.ports[1]: must be an integer 1-65535 (got 0)',
      'spec.rules[0].to[0].operation.ports[2]: must be an integer 1-65535 (got "a")',
    ]);
  });

  it('a name may be reused by another kind or namespace', () => {
    const { authorizationPolicies, peerAuthentications, errors } = translatePolicies([
      authz('p', { rules: [{}] }),
      authz('p', { rules: [{}] }, 'other'),
      peer('p', { mtls: { mode: 'STRICT' } }),
    ]);
    assert.deepEqual(errors, []);
    assert.equal(authorizationPolicies.length, 2);
    assert.equal(peerAuthentications.length, 1);
  });

  const principalPatterns: [string, boolean][] = [
    ['*', true],
    ['cluster.local/ns/front/sa/frontend', true],
    ['example.org/ns/front/sa/frontend.v2', true],
    ['cluster.local/ns/front/sa/front*', true],
    ['cluster.local/ns/front/sa/*', true],
    ['cluster.local/ns/front/*', true],
    ['cluster.local/ns/*', true],
    ['cluster.local/*', true],
    ['cluster*', true],
    ['*/ns/front/sa/frontend', true],
    ['*.local/ns/front/sa/frontend', true],
    ['*/sa/frontend', true],
    ['*a/frontend', true],
    ['*frontend', true],
    ['**', false],
    ['cluster.local/ns/front', false],
    ['cluster.local/ns/front/sa/frontend/extra', false],
    ['cluster.local/ns/front/sa/frontend/*', false],
    ['cluster.local/nx/*', false],
    ['*/ns/front/as/frontend', false],
    ['cluster.local/ns/front/sa/', false],
    ['cluster.local/ns/Front/sa/frontend', false],
    [' cluster.local/ns/front/sa/frontend', false],
  ];
  for (const [value, ok] of principalPatterns) {
    it(`${ok ? 'accepts' : 'refuses'} the principal ${JSON.stringify(value)}`, () => {
      const { errors } = translatePolicies([authz('p', withSource({ principals: [value] }))]);
      assert.equal(errors.length === 0, ok, errors.map(formatTranslationError).join('\n'));
    });
  }

  const namespacePatterns: [string, boolean][] = [
    ['front', true], ['team-a', true], ['*', true], ['team-*', true], ['*-prod', true],
    ['', false], ['-front', false], ['Front', false], ['front_end', false], ['*front*', false], ['fr*nt', false], ['a'.repeat(64), false],
  ];
  for (const [value, ok] of namespacePatterns) {
    it(`${ok ? 'accepts' : 'refuses'} the namespace ${JSON.stringify(value)}`, () => {
      const { errors } = translatePolicies([authz('p', withSource({ namespaces: [value] }))]);
      assert.equal(errors.length === 0, ok, errors.map(formatTranslationError).join('\n'));
    });
  }

  // Validation (node:net) and the proxy's parser must agree: what the control
  // plane accepts, the proxy can compile, and nothing else passes.
  const ipBlocks = [
    '10.0.0.0/8', '10.0.0.1', '10.0.0.1/8', '0.0.0.0/0', '10.0.0.0/32', '10.0.0.0/33', '10.0.0.0/08', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/ 8',
    '256.0.0.0/8', '01.0.0.0/8', '10.0.0', '10.0.0.0.0', ' 10.0.0.0', '',
    '::', '::/0', '::1', '2001:db8::/32', '2001:DB8::/32', '2001:db8::/128', '2001:db8::/129', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8',
    '::ffff:10.0.0.0/104', '::ffff:10.0.0.1', '64:ff9b::192.0.2.33/128', '1:2:3:4:5:6:1.2.3.4',
    '1:2:3:4:5:6:7:8:9', '1::2::3', ':::1', '12345::', 'fe80::1%eth0', 'fe80::1%eth0/64', '1:2:3:4:5:6:7:1.2.3.4', '::ffff:01.2.3.4', 'g::', 'localhost',
  ];
  it('accepts exactly the ipBlocks the proxy can parse', () => {
    const disagreements = ipBlocks.filter((block) => {
      const { errors } = translatePolicies([authz('p', withSource({ ipBlocks: [block] }))]);
      return (errors.length === 0) !== (parseCidr(block) !== undefined);
    });
    assert.deepEqual(disagreements, []);
  });

  it('translated policies compile and evaluate as written', () => {
    const { authorizationPolicies, errors } = translatePolicies([
      authz('require-mtls', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] }, 'sluice-system'),
      authz('web', {
        selector: { matchLabels: { app: 'web' } },
        rules: [{ from: [{ source: { namespaces: ['front'], ipBlocks: ['10.244.0.0/16'] } }], to: [{ operation: { ports: ['8080'] } }] }],
      }),
    ]);
    assert.deepEqual(errors, []);
    const set = new PolicySet(authorizationPolicies);
    const web = { namespace: 'shop', labels: { app: 'web' } };
    const frontend = { principal: 'cluster.local/ns/front/sa/frontend', namespace: 'front', ip: '::ffff:10.244.1.5' };
    assert.deepEqual(set.authorize(web, frontend, 8080), { allowed: true, policy: 'shop/web', reason: 'allowed by ALLOW policy shop/web (rule 0)' });
    assert.deepEqual(set.authorize(web, frontend, 8081), { allowed: false, reason: 'no ALLOW policy matched (1 applies)' });
    assert.deepEqual(set.authorize(web, { ip: '10.244.1.5' }, 8080), {
      allowed: false,
      policy: 'sluice-system/require-mtls',
      reason: 'denied by DENY policy sluice-system/require-mtls (rule 0)',
    });
  });
});
