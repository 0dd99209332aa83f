import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthorizationPolicy, Operation, Rule, Source } from '../../src/model/policy';
import { PolicySet, type Decision, type Destination, type Peer } from '../../src/proxy/authorization';
import { cidrContains, parseCidr, parseIp } from '../../src/model/ip-match';

const rule = (from: Source[] = [], to: Operation[] = []): Rule => ({
  from: from.map((source) => ({ source })),
  to: to.map((operation) => ({ operation })),
});
const policy = (namespace: string, name: string, action: 'ALLOW' | 'DENY', rules: Rule[], selector?: Record<string, string>): AuthorizationPolicy => ({
  name,
  namespace,
  ...(selector ? { selector } : {}),
  action,
  rules,
});
const allow = (name: string, rules: Rule[], selector?: Record<string, string>) => policy('shop', name, 'ALLOW', rules, selector);
const deny = (name: string, rules: Rule[], selector?: Record<string, string>) => policy('shop', name, 'DENY', rules, selector);

const allowedBy = (p: string, r = 0): Decision => ({ allowed: true, policy: p, reason: `allowed by ALLOW policy ${p} (rule ${r})` });
const deniedBy = (p: string, r = 0): Decision => ({ allowed: false, policy: p, reason: `denied by DENY policy ${p} (rule ${r})` });
const noAllowMatched = (n: number): Decision => ({ allowed: false, reason: `no ALLOW policy matched (${n === 1 ? '1 applies' : `${n} apply`})` });
const noDenyMatched = (n: number): Decision => ({
  allowed: true,
  reason: `no DENY policy matched (${n === 1 ? '1 applies' : `${n} apply`}) and no ALLOW policy applies`,
});
const noPolicy: Decision = { allowed: true, reason: 'no policy applies' };

// The connection of every case unless it says otherwise.
const web: Destination = { namespace: 'shop', labels: { app: 'web', tier: 'front' } };
const frontend: Peer = { principal: 'cluster.local/ns/front/sa/frontend', namespace: 'front', ip: '10.244.1.5' };
const plaintext: Peer = { ip: '10.244.1.5' };

interface Case {
  name: string;
  policies: AuthorizationPolicy[];
  destination?: Destination;
  source?: Peer;
  port?: number;
  expect: Decision;
}

const cases: Case[] = [
  // --- which policies apply ---
  { name: 'no policy at all allows', policies: [], expect: noPolicy },
  { name: 'a policy of another namespace does not apply', policies: [policy('other', 'p', 'ALLOW', [])], expect: noPolicy },
  { name: 'a selector that does not match does not apply', policies: [allow('db-only', [], { app: 'db' })], expect: noPolicy },
  { name: 'a selector must match every label', policies: [allow('p', [], { app: 'web', tier: 'back' })], expect: noPolicy },
  { name: 'a matching selector applies', policies: [allow('p', [], { app: 'web' })], expect: noAllowMatched(1) },
  { name: 'an empty selector applies to the whole namespace', policies: [allow('p', [], {})], expect: noAllowMatched(1) },
  { name: 'no selector applies to the whole namespace', policies: [allow('p', [])], expect: noAllowMatched(1) },
  { name: 'root namespace without selector applies mesh-wide', policies: [policy('sluice-system', 'mesh', 'DENY', [rule()])], expect: deniedBy('sluice-system/mesh') },
  {
    name: 'root namespace with a selector applies to matching workloads of every namespace',
    policies: [policy('sluice-system', 'web', 'DENY', [rule()], { app: 'web' })],
    expect: deniedBy('sluice-system/web'),
  },
  { name: 'root namespace with a selector that does not match does not apply', policies: [policy('sluice-system', 'db', 'DENY', [rule()], { app: 'db' })], expect: noPolicy },
  {
    name: 'root and namespace ALLOW policies both count',
    policies: [policy('sluice-system', 'mesh', 'ALLOW', [rule([{ namespaces: ['ops'] }])]), allow('p', [rule([{ namespaces: ['back'] }])])],
    expect: noAllowMatched(2),
  },
  {
    name: 'a workload of the root namespace sees its policies once',
    policies: [policy('sluice-system', 'mesh', 'ALLOW', [rule([{ namespaces: ['ops'] }])])],
    destination: { namespace: 'sluice-system', labels: {} },
    expect: noAllowMatched(1),
  },
  {
    name: 'the root namespace is evaluated first',
    policies: [deny('local', [rule()]), policy('sluice-system', 'mesh', 'DENY', [rule()])],
    expect: deniedBy('sluice-system/mesh'),
  },

  // --- the three outcomes ---
  { name: 'DENY wins over a matching ALLOW', policies: [allow('all', [rule()]), deny('block-8080', [rule([], [{ ports: [8080] }])])], expect: deniedBy('shop/block-8080') },
  { name: 'a DENY that does not match lets ALLOW decide', policies: [allow('all', [rule()]), deny('block-22', [rule([], [{ ports: [22] }])])], expect: allowedBy('shop/all') },
  { name: 'an ALLOW that does not match denies', policies: [allow('ops', [rule([{ namespaces: ['ops'] }])])], expect: noAllowMatched(1) },
  { name: 'only non-matching DENY policies: allowed', policies: [deny('block-22', [rule([], [{ ports: [22] }])])], expect: noDenyMatched(1) },
  { name: 'ALLOW with an empty rules list denies everything', policies: [allow('allow-nothing', [])], expect: noAllowMatched(1) },
  { name: 'ALLOW with one empty rule allows everything', policies: [allow('allow-all', [rule()])], expect: allowedBy('shop/allow-all') },
  { name: 'DENY with an empty rules list denies nothing', policies: [deny('deny-nothing', [])], expect: noDenyMatched(1) },
  { name: 'DENY with one empty rule denies everything', policies: [deny('deny-all', [rule()])], expect: deniedBy('shop/deny-all') },
  {
    name: 'an ALLOW-nothing policy next to a matching ALLOW does not deny',
    policies: [allow('allow-nothing', []), allow('front', [rule([{ namespaces: ['front'] }])])],
    expect: allowedBy('shop/front'),
  },

  // --- OR and AND ---
  {
    name: 'rules are ORed; the decision names the matching rule',
    policies: [allow('p', [rule([{ namespaces: ['ops'] }]), rule([{ namespaces: ['front'] }])])],
    expect: allowedBy('shop/p', 1),
  },
  {
    name: 'ALLOW policies are ORed; the decision names the matching policy',
    policies: [allow('a', [rule([{ namespaces: ['ops'] }])]), allow('b', [rule([{ namespaces: ['front'] }])])],
    expect: allowedBy('shop/b'),
  },
  {
    name: 'no ALLOW policy matched counts the applicable ones',
    policies: [allow('a', [rule([{ namespaces: ['ops'] }])]), allow('b', [rule([{ namespaces: ['back'] }])]), policy('other', 'c', 'ALLOW', [rule()])],
    expect: noAllowMatched(2),
  },
  { name: 'sources are ORed', policies: [allow('p', [rule([{ namespaces: ['ops'] }, { ipBlocks: ['10.244.0.0/16'] }])])], expect: allowedBy('shop/p') },
  { name: 'operations are ORed', policies: [allow('p', [rule([], [{ ports: [80] }, { ports: [8080] }])])], expect: allowedBy('shop/p') },
  {
    name: 'the fields of a source are ANDed (principal matches, address does not)',
    policies: [allow('p', [rule([{ principals: ['cluster.local/ns/front/sa/frontend'], ipBlocks: ['192.168.0.0/16'] }])])],
    expect: noAllowMatched(1),
  },
  {
    name: 'the fields of a source are ANDed (both match)',
    policies: [allow('p', [rule([{ principals: ['cluster.local/ns/front/sa/frontend'], ipBlocks: ['10.244.0.0/16'] }])])],
    expect: allowedBy('shop/p'),
  },
  { name: 'the fields of an operation are ANDed', policies: [allow('p', [rule([], [{ ports: [8080, 9090], notPorts: [8080] }])])], expect: noAllowMatched(1) },
  { name: 'from and to are ANDed', policies: [allow('p', [rule([{ namespaces: ['front'] }], [{ ports: [9090] }])])], expect: noAllowMatched(1) },
  { name: 'from and to both matching', policies: [allow('p', [rule([{ namespaces: ['front'] }], [{ ports: [8080] }])])], expect: allowedBy('shop/p') },
  { name: 'empty lists in a source do not constrain', policies: [allow('p', [rule([{ principals: [], namespaces: ['front'] }])])], expect: allowedBy('shop/p') },

  // --- principals / notPrincipals ---
  { name: 'principals: exact', policies: [allow('p', [rule([{ principals: ['cluster.local/ns/front/sa/frontend'] }])])], expect: allowedBy('shop/p') },
  { name: 'principals: exact, other identity', policies: [allow('p', [rule([{ principals: ['cluster.local/ns/front/sa/admin'] }])])], expect: noAllowMatched(1) },
  { name: 'principals: "*" matches any identity', policies: [allow('p', [rule([{ principals: ['*'] }])])], expect: allowedBy('shop/p') },
  { name: 'principals: "*" does not match plaintext', policies: [allow('p', [rule([{ principals: ['*'] }])])], source: plaintext, expect: noAllowMatched(1) },
  {
    name: 'principals: an empty identity is no identity',
    policies: [allow('p', [rule([{ principals: ['*'] }])])],
    source: { principal: '', ip: '10.244.1.5' },
    expect: noAllowMatched(1),
  },
  { name: 'principals: prefix*', policies: [allow('p', [rule([{ principals: ['cluster.local/ns/front/*'] }])])], expect: allowedBy('shop/p') },
  { name: 'principals: prefix*, other namespace', policies: [allow('p', [rule([{ principals: ['cluster.local/ns/back/*'] }])])], expect: noAllowMatched(1) },
  { name: 'principals: *suffix', policies: [allow('p', [rule([{ principals: ['*/sa/frontend'] }])])], expect: allowedBy('shop/p') },
  { name: 'principals: *suffix, other account', policies: [allow('p', [rule([{ principals: ['*/sa/admin'] }])])], expect: noAllowMatched(1) },
  { name: 'principals: one of several', policies: [allow('p', [rule([{ principals: ['cluster.local/ns/x/sa/y', '*/sa/frontend'] }])])], expect: allowedBy('shop/p') },
  { name: 'notPrincipals: the listed identity does not match', policies: [allow('p', [rule([{ notPrincipals: ['cluster.local/ns/front/sa/frontend'] }])])], expect: noAllowMatched(1) },
  { name: 'notPrincipals: another identity matches', policies: [allow('p', [rule([{ notPrincipals: ['cluster.local/ns/front/sa/admin'] }])])], expect: allowedBy('shop/p') },
  { name: 'notPrincipals: a wildcard excludes', policies: [allow('p', [rule([{ notPrincipals: ['cluster.local/ns/front/*'] }])])], expect: noAllowMatched(1) },
  {
    name: 'notPrincipals: plaintext matches (no identity is not in the list)',
    policies: [allow('p', [rule([{ notPrincipals: ['cluster.local/ns/front/sa/admin'] }])])],
    source: plaintext,
    expect: allowedBy('shop/p'),
  },
  { name: 'notPrincipals ["*"] in a DENY refuses plaintext', policies: [deny('require-mtls', [rule([{ notPrincipals: ['*'] }])])], source: plaintext, expect: deniedBy('shop/require-mtls') },
  { name: 'notPrincipals ["*"] in a DENY lets identities through', policies: [deny('require-mtls', [rule([{ notPrincipals: ['*'] }])])], expect: noDenyMatched(1) },

  // --- namespaces / notNamespaces ---
  { name: 'namespaces: exact', policies: [allow('p', [rule([{ namespaces: ['front'] }])])], expect: allowedBy('shop/p') },
  { name: 'namespaces: exact, other namespace', policies: [allow('p', [rule([{ namespaces: ['back'] }])])], expect: noAllowMatched(1) },
  { name: 'namespaces: prefix*', policies: [allow('p', [rule([{ namespaces: ['fr*'] }])])], expect: allowedBy('shop/p') },
  { name: 'namespaces: *suffix', policies: [allow('p', [rule([{ namespaces: ['*ont'] }])])], expect: allowedBy('shop/p') },
  { name: 'namespaces: *suffix, no match', policies: [allow('p', [rule([{ namespaces: ['*ops'] }])])], expect: noAllowMatched(1) },
  { name: 'namespaces: "*" does not match an unknown namespace', policies: [allow('p', [rule([{ namespaces: ['*'] }])])], source: plaintext, expect: noAllowMatched(1) },
  { name: 'notNamespaces: the listed namespace is denied', policies: [deny('not-shop', [rule([{ notNamespaces: ['shop'] }])])], expect: deniedBy('shop/not-shop') },
  {
    name: 'notNamespaces: a listed namespace is not',
    policies: [deny('not-shop', [rule([{ notNamespaces: ['shop', 'fr*'] }])])],
    expect: noDenyMatched(1),
  },
  { name: 'notNamespaces: an unknown namespace matches', policies: [deny('not-shop', [rule([{ notNamespaces: ['shop'] }])])], source: plaintext, expect: deniedBy('shop/not-shop') },

  // --- ipBlocks / notIpBlocks ---
  { name: 'ipBlocks: IPv4 CIDR', policies: [allow('p', [rule([{ ipBlocks: ['10.244.0.0/16'] }])])], expect: allowedBy('shop/p') },
  { name: 'ipBlocks: IPv4 CIDR, outside', policies: [allow('p', [rule([{ ipBlocks: ['10.245.0.0/16'] }])])], expect: noAllowMatched(1) },
  { name: 'ipBlocks: single IPv4 address', policies: [allow('p', [rule([{ ipBlocks: ['10.244.1.5'] }])])], expect: allowedBy('shop/p') },
  { name: 'ipBlocks: single IPv4 address, other', policies: [allow('p', [rule([{ ipBlocks: ['10.244.1.6'] }])])], expect: noAllowMatched(1) },
  { name: 'ipBlocks: host bits of a block are ignored', policies: [allow('p', [rule([{ ipBlocks: ['10.244.9.9/16'] }])])], expect: allowedBy('shop/p') },
  { name: 'ipBlocks: 0.0.0.0/0 matches any IPv4', policies: [allow('p', [rule([{ ipBlocks: ['0.0.0.0/0'] }])])], expect: allowedBy('shop/p') },
  {
    name: 'ipBlocks: IPv6 CIDR',
    policies: [allow('p', [rule([{ ipBlocks: ['2001:db8::/32'] }])])],
    source: { ...frontend, ip: '2001:db8:1::5' },
    expect: allowedBy('shop/p'),
  },
  {
    name: 'ipBlocks: IPv6 CIDR, outside (boundary inside a word)',
    policies: [allow('p', [rule([{ ipBlocks: ['2001:db8::/33'] }])])],
    source: { ...frontend, ip: '2001:db8:8000::1' },
    expect: noAllowMatched(1),
  },
  {
    name: 'ipBlocks: single IPv6 address, any spelling',
    policies: [allow('p', [rule([{ ipBlocks: ['2001:DB8:0:0:0:0:0:5'] }])])],
    source: { ...frontend, ip: '2001:db8::5' },
    expect: allowedBy('shop/p'),
  },
  {
    name: 'ipBlocks: IPv4-mapped source matches an IPv4 block',
    policies: [allow('p', [rule([{ ipBlocks: ['10.244.0.0/16'] }])])],
    source: { ...frontend, ip: '::ffff:10.244.1.5' },
    expect: allowedBy('shop/p'),
  },
  {
    name: 'ipBlocks: IPv4-mapped block matches an IPv4 source',
    policies: [allow('p', [rule([{ ipBlocks: ['::ffff:10.244.0.0/112'] }])])],
    expect: allowedBy('shop/p'),
  },
  { name: 'ipBlocks: an IPv6 block does not match IPv4', policies: [allow('p', [rule([{ ipBlocks: ['::/0'] }])])], expect: noAllowMatched(1) },
  {
    name: 'ipBlocks: an IPv4 block does not match IPv6',
    policies: [allow('p', [rule([{ ipBlocks: ['0.0.0.0/0'] }])])],
    source: { ...frontend, ip: '2001:db8::5' },
    expect: noAllowMatched(1),
  },
  { name: 'notIpBlocks: outside the block matches', policies: [deny('outside', [rule([{ notIpBlocks: ['10.0.0.0/8'] }])])], source: { ...frontend, ip: '192.168.1.1' }, expect: deniedBy('shop/outside') },
  { name: 'notIpBlocks: inside the block does not', policies: [deny('outside', [rule([{ notIpBlocks: ['10.0.0.0/8'] }])])], expect: noDenyMatched(1) },
  {
    name: 'notIpBlocks: IPv4-mapped source inside an IPv4 block does not',
    policies: [deny('outside', [rule([{ notIpBlocks: ['10.0.0.0/8'] }])])],
    source: { ...frontend, ip: '::ffff:10.1.2.3' },
    expect: noDenyMatched(1),
  },
  {
    name: 'notIpBlocks: IPv6 outside an IPv6 block matches',
    policies: [deny('outside', [rule([{ notIpBlocks: ['fd00::/8'] }])])],
    source: { ...frontend, ip: '2001:db8::5' },
    expect: deniedBy('shop/outside'),
  },
  {
    name: 'an unparseable source address fails closed when an address rule applies',
    policies: [allow('all', [rule()]), deny('outside', [rule([{ notIpBlocks: ['10.0.0.0/8'] }])])],
    source: { ...frontend, ip: 'not-an-ip' },
    expect: { allowed: false, reason: 'source address "not-an-ip" is not an IP address' },
  },
  { name: 'the source address is not needed without address rules', policies: [allow('all', [rule()])], source: { ...frontend, ip: 'not-an-ip' }, expect: allowedBy('shop/all') },

  // --- ports / notPorts ---
  { name: 'ports: listed', policies: [allow('p', [rule([], [{ ports: [80, 8080] }])])], expect: allowedBy('shop/p') },
  { name: 'ports: not listed', policies: [allow('p', [rule([], [{ ports: [80, 8080] }])])], port: 9090, expect: noAllowMatched(1) },
  { name: 'notPorts: listed', policies: [deny('only-web', [rule([], [{ notPorts: [8080, 8443] }])])], expect: noDenyMatched(1) },
  { name: 'notPorts: not listed', policies: [deny('only-web', [rule([], [{ notPorts: [8080, 8443] }])])], port: 22, expect: deniedBy('shop/only-web') },
];

describe('authorization policy evaluation', () => {
  for (const c of cases) {
    it(c.name, () => {
      const set = new PolicySet(c.policies);
      assert.deepEqual(set.authorize(c.destination ?? web, c.source ?? frontend, c.port ?? 8080), c.expect);
    });
  }

  it('one PolicySet serves every destination and connection', () => {
    const set = new PolicySet([
      policy('sluice-system', 'require-mtls', 'DENY', [rule([{ notPrincipals: ['*'] }])]),
      allow('web-from-front', [rule([{ namespaces: ['front'] }], [{ ports: [8080] }])], { app: 'web' }),
      policy('back', 'db', 'ALLOW', [rule([{ principals: ['cluster.local/ns/shop/sa/*'] }], [{ ports: [5432] }])], { app: 'db' }),
    ]);
    const db: Destination = { namespace: 'back', labels: { app: 'db' } };
    const shopWeb: Peer = { principal: 'cluster.local/ns/shop/sa/web', namespace: 'shop', ip: '10.244.2.7' };
    assert.deepEqual(set.authorize(web, frontend, 8080), allowedBy('shop/web-from-front'));
    assert.deepEqual(set.authorize(web, frontend, 9090), noAllowMatched(1));
    assert.deepEqual(set.authorize(web, plaintext, 8080), deniedBy('sluice-system/require-mtls'));
    assert.deepEqual(set.authorize(db, shopWeb, 5432), allowedBy('back/db'));
    assert.deepEqual(set.authorize(db, frontend, 5432), noAllowMatched(1));
    assert.deepEqual(set.authorize({ namespace: 'back', labels: { app: 'cache' } }, frontend, 6379), noDenyMatched(1));
    assert.deepEqual(set.applicableTo(db).map((p) => p.name), ['require-mtls', 'db']);
  });

  it('an empty PolicySet allows everything', () => {
    assert.deepEqual(PolicySet.empty().authorize(web, plaintext, 1), noPolicy);
  });

  it('refuses to build from a policy with an ipBlock that is not an address', () => {
    assert.throws(
      () => new PolicySet([allow('p', [rule([{ namespaces: ['front'] }, { ipBlocks: ['10.0.0.0/8', '10.0.0.0/33'] }])])]),
      { message: 'authorization policy shop/p: rules[0].from[1].source.ipBlocks: not an IP address or CIDR (got "10.0.0.0/33")' },
    );
  });

  it('is compiled once: changing the input policies afterwards does not change decisions', () => {
    const rules = [rule([], [{ ports: [8080] }])];
    const set = new PolicySet([allow('p', rules)]);
    rules[0].to[0].operation.ports!.push(9090);
    assert.deepEqual(set.authorize(web, frontend, 9090), noAllowMatched(1));
  });
});

describe('IP address and CIDR matching', () => {
  const parses: [string, boolean][] = [
    ['10.0.0.1', true], ['0.0.0.0', true], ['255.255.255.255', true], ['256.0.0.1', false], ['01.2.3.4', false], ['1.2.3', false], ['1.2.3.4.5', false],
    ['::', true], ['::1', true], ['1::', true], ['2001:db8::1', true], ['1:2:3:4:5:6:7:8', true], ['1:2:3:4:5:6:7::', true], ['::2:3:4:5:6:7:8', true],
    ['::ffff:10.0.0.1', true], ['1:2:3:4:5:6:1.2.3.4', true], ['64:ff9b::192.0.2.33', true],
    ['1:2:3:4:5:6:7:8:9', false], ['1::2::3', false], [':::1', false], ['12345::', false], ['1:2:3:4:5:6:7:1.2.3.4', false], ['::ffff:1.2.3', false],
    [':1.2.3.4', false], ['fe80::1%eth0', false], ['', false], ['g::1', false], ['1.2.3.4::', false],
  ];
  for (const [s, ok] of parses) {
    it(`${ok ? 'parses' : 'refuses'} ${JSON.stringify(s)}`, () => assert.equal(parseIp(s) !== undefined, ok));
  }

  it('folds IPv4-mapped IPv6 into IPv4, in either spelling', () => {
    assert.deepEqual(parseIp('::ffff:10.0.0.1'), parseIp('10.0.0.1'));
    assert.deepEqual(parseIp('::ffff:a00:1'), parseIp('10.0.0.1'));
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), parseCidr('10.0.0.0/8'));
    assert.equal(parseCidr('::ffff:0:0/95')?.family, 6);
  });

  it('checks prefix lengths', () => {
    assert.equal(parseCidr('10.0.0.0/32')?.prefixLength, 32);
    assert.equal(parseCidr('10.0.0.0/33'), undefined);
    assert.equal(parseCidr('10.0.0.0/08'), undefined);
    assert.equal(parseCidr('10.0.0.0/'), undefined);
    assert.equal(parseCidr('10.0.0.0/8/8'), undefined);
    assert.equal(parseCidr('::/128')?.prefixLength, 128);
    assert.equal(parseCidr('::/129'), undefined);
    assert.equal(parseCidr('2001:db8::1')?.prefixLength, 128);
  });

  it('matches at every prefix length across IPv6 words', () => {
    const a = parseIp('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')!;
    for (let len = 0; len <= 128; len++) {
      assert.equal(cidrContains(parseCidr(`2001:db8::/${len}`)!, a), len <= 32, `/${len}`);
    }
    const v4 = parseIp('10.255.255.255')!;
    for (let len = 0; len <= 32; len++) assert.equal(cidrContains(parseCidr(`10.0.0.0/${len}`)!, v4), len <= 8, `/${len}`);
  });
});
