// L4 authorization, evaluated once per connection when it is accepted, on the
// destination workload's behalf, with Istio's semantics:
//
//   applicable = policies of ROOT_NAMESPACE with no selector or a matching one
//              + policies of the workload's namespace with no selector or a matching one
//   1. an applicable DENY policy with a matching rule  -> denied
//   2. some ALLOW policy applies: one with a matching rule -> allowed, none -> denied
//   3. no ALLOW policy applies                         -> allowed
//
// Policies are compiled once into a PolicySet (patterns sorted by kind, CIDRs
// parsed, ports in sets); per connection only the source address is parsed.
import { policyKey, ROOT_NAMESPACE, type AuthorizationAction, type AuthorizationPolicy, type Operation, type Rule, type Source } from '../model/policy';
import { cidrContains, parseCidr, parseIp, type Cidr, type IpAddress } from '../model/ip-match';

export interface Destination {
  namespace: string;
  labels: Record<string, string>;
}

export interface Peer {
  /** Verified identity ("cluster.local/ns/shop/sa/web"); absent for plaintext or unknown peers. */
  principal?: string;
  /** Verified namespace; absent when unknown. */
  namespace?: string;
  ip: string;
}

export interface Decision {
  allowed: boolean;
  /** "namespace/name" of the policy that decided, when one did. */
  policy?: string;
  reason: string;
}

/** The connection as compiled matchers see it. */
interface Connection {
  principal: string | undefined;
  namespace: string | undefined;
  ip: IpAddress | undefined;
  port: number;
}

type Matcher = (c: Connection) => boolean;

interface CompiledPolicy {
  policy: AuthorizationPolicy;
  key: string;
  action: AuthorizationAction;
  selector: [string, string][] | undefined;
  /** One matcher per rule, in order (the index is reported in decisions). */
  rules: Matcher[];
  usesIpBlocks: boolean;
}

export class PolicySet {
  private readonly byNamespace = new Map<string, CompiledPolicy[]>();

  /** Throws on a policy that validation would have rejected (an ipBlock that is not an address or CIDR). */
  constructor(policies: readonly AuthorizationPolicy[]) {
    for (const policy of policies) {
      const compiled = compilePolicy(policy);
      const list = this.byNamespace.get(policy.namespace);
      if (list) list.push(compiled);
      else this.byNamespace.set(policy.namespace, [compiled]);
    }
  }

  static empty(): PolicySet {
    return new PolicySet([]);
  }

  /** The policies that apply to a workload: the root namespace's first, then its own, each in the order given. */
  applicableTo(destination: Destination): AuthorizationPolicy[] {
    return this.applicable(destination).map((c) => c.policy);
  }

  authorize(destination: Destination, source: Peer, port: number): Decision {
    const applicable = this.applicable(destination);
    if (applicable.length === 0) return { allowed: true, reason: 'no policy applies' };

    let ip: IpAddress | undefined;
    if (applicable.some((p) => p.usesIpBlocks)) {
      ip = parseIp(source.ip);
      // The address comes from the accepted socket, so this cannot happen; if it does, fail closed.
      if (!ip) return { allowed: false, reason: `source address ${JSON.stringify(source.ip)} is not an IP address` };
    }
    // An empty identity is no identity: it must not match principals ["*"].
    const connection: Connection = { principal: source.principal || undefined, namespace: source.namespace || undefined, ip, port };

    let denyPolicies = 0;
    for (const p of applicable) {
      if (p.action !== 'DENY') continue;
      denyPolicies++;
      const rule = p.rules.findIndex((matches) => matches(connection));
      if (rule >= 0) return { allowed: false, policy: p.key, reason: `denied by DENY policy ${p.key} (rule ${rule})` };
    }
    const allowPolicies = applicable.length - denyPolicies;
    for (const p of applicable) {
      if (p.action !== 'ALLOW') continue;
      const rule = p.rules.findIndex((matches) => matches(connection));
      if (rule >= 0) return { allowed: true, policy: p.key, reason: `allowed by ALLOW policy ${p.key} (rule ${rule})` };
    }
    if (allowPolicies > 0) return { allowed: false, reason: `no ALLOW policy matched (${count(allowPolicies)})` };
    return { allowed: true, reason: `no DENY policy matched (${count(denyPolicies)}) and no ALLOW policy applies` };
  }

  private applicable(destination: Destination): CompiledPolicy[] {
    const root = this.byNamespace.get(ROOT_NAMESPACE) ?? [];
    const own = destination.namespace === ROOT_NAMESPACE ? [] : (this.byNamespace.get(destination.namespace) ?? []);
    const out: CompiledPolicy[] = [];
    for (const p of root) if (selects(p.selector, destination.labels)) out.push(p);
    for (const p of own) if (selects(p.selector, destination.labels)) out.push(p);
    return out;
  }
}

function count(n: number): string {
  return n === 1 ? '1 applies' : `${n} apply`;
}

function selects(selector: [string, string][] | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of selector) if (labels[k] !== v) return false;
  return true;
}

function compilePolicy(policy: AuthorizationPolicy): CompiledPolicy {
  const key = policyKey(policy);
  const selector = policy.selector && Object.keys(policy.selector).length ? Object.entries(policy.selector) : undefined;
  const rules = policy.rules.map((rule, i) => compileRule(rule, `authorization policy ${key}: rules[${i}]`));
  const usesIpBlocks = policy.rules.some((r) => (r.from ?? []).some(({ source }) => source.ipBlocks?.length || source.notIpBlocks?.length));
  return { policy, key, action: policy.action, selector, rules, usesIpBlocks };
}

function compileRule(rule: Rule, where: string): Matcher {
  const sources = (rule.from ?? []).map(({ source }, i) => compileSource(source, `${where}.from[${i}].source`));
  const operations = (rule.to ?? []).map(({ operation }) => compileOperation(operation));
  // An empty list does not constrain: a rule with neither matches every connection.
  return (c) => (sources.length === 0 || sources.some((m) => m(c))) && (operations.length === 0 || operations.some((m) => m(c)));
}

function compileSource(source: Source, where: string): Matcher {
  const fields: Matcher[] = [];
  // Unknown identity or namespace never matches a positive list and always matches a negative one.
  if (source.principals?.length) {
    const match = compilePatterns(source.principals);
    fields.push((c) => c.principal !== undefined && match(c.principal));
  }
  if (source.notPrincipals?.length) {
    const match = compilePatterns(source.notPrincipals);
    fields.push((c) => c.principal === undefined || !match(c.principal));
  }
  if (source.namespaces?.length) {
    const match = compilePatterns(source.namespaces);
    fields.push((c) => c.namespace !== undefined && match(c.namespace));
  }
  if (source.notNamespaces?.length) {
    const match = compilePatterns(source.notNamespaces);
    fields.push((c) => c.namespace === undefined || !match(c.namespace));
  }
  if (source.ipBlocks?.length) {
    const blocks = compileBlocks(source.ipBlocks, `${where}.ipBlocks`);
    fields.push((c) => c.ip !== undefined && blocks.some((b) => cidrContains(b, c.ip!)));
  }
  if (source.notIpBlocks?.length) {
    const blocks = compileBlocks(source.notIpBlocks, `${where}.notIpBlocks`);
    // authorize() has refused unparseable addresses before any address matcher runs.
    fields.push((c) => c.ip !== undefined && !blocks.some((b) => cidrContains(b, c.ip!)));
  }
  return (c) => fields.every((m) => m(c));
}

function compileOperation(operation: Operation): Matcher {
  const fields: Matcher[] = [];
  if (operation.ports?.length) {
    const ports = new Set(operation.ports);
    fields.push((c) => ports.has(c.port));
  }
  if (operation.notPorts?.length) {
    const ports = new Set(operation.notPorts);
    fields.push((c) => !ports.has(c.port));
  }
  return (c) => fields.every((m) => m(c));
}

function compileBlocks(blocks: string[], where: string): Cidr[] {
  return blocks.map((b) => {
    const cidr = parseCidr(b);
    if (!cidr) throw new Error(`${where}: not an IP address or CIDR (got ${JSON.stringify(b)})`);
    return cidr;
  });
}

/** Istio's string match: exact, "*" (any value), "prefix*" or "*suffix". */
function compilePatterns(values: string[]): (value: string) => boolean {
  if (values.includes('*')) return () => true;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  for (const v of values) {
    if (v.endsWith('*')) prefixes.push(v.slice(0, -1));
    else if (v.startsWith('*')) suffixes.push(v.slice(1));
    else exact.add(v);
  }
  return (value) => exact.has(value) || prefixes.some((p) => value.startsWith(p)) || suffixes.some((s) => value.endsWith(s));
}
