// Translation of security.sluice.dev/v1alpha1 AuthorizationPolicy and
// PeerAuthentication manifests (Istio's shape, L4 fields only) to the policy
// model. Validation is strict because a field silently ignored in a security
// policy changes what it allows: every unknown field, bad value or empty
// match is an error, and the object is rejected alone.
//
// Meaning of rules, as in Istio (see also model/policy.ts):
//   - ALLOW with no `rules` key, or `rules: []`: matches nothing, so it allows
//     nothing and, because an ALLOW policy now applies, the workload denies
//     everything ("allow-nothing").
//   - ALLOW with `rules: [{}]`: the empty rule matches everything (allow-all).
//   - DENY with no rules: matches nothing, so it denies nothing. Istio's
//     validator refuses it as meaningless; sluice accepts it, it is harmless.
//   - DENY with `rules: [{}]`: denies everything.
//   - `from`/`to` absent (or null) match anything; present but empty (`[]`) is
//     refused, as in Istio, since it reads like "match nothing".
//   - An empty list inside a source or operation (`principals: []`) is unset,
//     as in Istio; a source or operation with nothing set is refused.
import { defaultClusterRanges } from '../model/cluster-ranges';
import { parseCidr } from '../model/ip-match';
import type { AuthorizationAction, AuthorizationPolicy, MtlsMode, Operation, PeerAuthentication, Rule, Source } from '../model/policy';
import { objectName, type KubeObject, type SourcedObject } from './kubernetes-objects';
import { labelProblems, validateObject } from './object-validation';
import type { TranslationError } from './translate';

export const SECURITY_API_VERSION = 'security.sluice.dev/v1alpha1';

/** The policies translated from the valid security objects, and one error per problem in each rejected one. */
export interface PolicyTranslation {
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
  errors: TranslationError[];
}

const NO_RANGES = defaultClusterRanges();
const ACTIONS: readonly AuthorizationAction[] = ['ALLOW', 'DENY'];
const MTLS_MODES: readonly MtlsMode[] = ['STRICT', 'PERMISSIVE', 'DISABLE'];
const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const;
const OPERATION_FIELDS = ['ports', 'notPorts'] as const;
/** Istio fields that need HTTP or request attributes: named in the error so that the refusal is not a surprise. */
const ISTIO_L7_FIELDS = new Set([
  'requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks',
  'hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths', 'when',
]);

/** A problem found inside one object: the object is rejected if it has any. */
interface Problem {
  field: string;
  reason: string;
}

/**
 * Translates the security objects among `objects`; other kinds and API
 * versions are ignored. Each object is checked alone: its metadata as
 * Kubernetes checks a custom resource's (name IsDNS1123Subdomain, namespace
 * IsDNS1123Label, see object-validation.ts), then every field of its spec;
 * one with any problem is rejected with errors naming file, object, field
 * and reason. Never throws on what the objects hold.
 */
export function translatePolicies(objects: SourcedObject[]): PolicyTranslation {
  const out: PolicyTranslation = { authorizationPolicies: [], peerAuthentications: [], errors: [] };
  // Names are per kind and namespace; the first object with a name keeps it, valid or not.
  const firstSeen = new Map<string, string>();
  for (const s of objects) {
    const o = s.object;
    if (o.apiVersion !== SECURITY_API_VERSION || (o.kind !== 'AuthorizationPolicy' && o.kind !== 'PeerAuthentication')) continue;
    const fail = (field: string, reason: string) => out.errors.push({ source: s.source, object: objectName(o), field, reason });
    // Cluster ranges only matter to Services; policies need none.
    const invalid = validateObject(s, NO_RANGES);
    if (invalid.length) {
      out.errors.push(...invalid);
      continue;
    }
    const name = o.metadata.name;
    if (name === '') {
      fail('metadata.name', 'required');
      continue;
    }
    const namespace = o.metadata.namespace || 'default';
    const key = `${o.kind} ${namespace}/${name}`;
    const earlier = firstSeen.get(key);
    if (earlier !== undefined) {
      fail('metadata.name', `duplicate: ${key} is already defined in ${earlier}`);
      continue;
    }
    firstSeen.set(key, s.source);

    const problems: Problem[] = [];
    if (o.kind === 'AuthorizationPolicy') {
      const policy = readAuthorizationPolicy(o, name, namespace, problems);
      if (problems.length === 0) out.authorizationPolicies.push(policy);
    } else {
      const peer = readPeerAuthentication(o, name, namespace, problems);
      if (problems.length === 0) out.peerAuthentications.push(peer);
    }
    for (const p of problems) fail(p.field, p.reason);
  }
  return out;
}

function readAuthorizationPolicy(o: KubeObject, name: string, namespace: string, problems: Problem[]): AuthorizationPolicy {
  const spec = readObject(o.spec, 'spec', ['selector', 'action', 'rules'], problems) ?? {};
  const selector = readSelector(spec.selector, problems);

  let action: AuthorizationAction = 'ALLOW';
  if (isPresent(spec.action)) {
    if (ACTIONS.includes(spec.action as AuthorizationAction)) action = spec.action as AuthorizationAction;
    else problems.push({ field: 'spec.action', reason: `unknown action ${JSON.stringify(spec.action)} (allowed: ${ACTIONS.join(', ')})` });
  }

  const rules: Rule[] = [];
  const rawRules = readList(spec.rules, 'spec.rules', problems) ?? [];
  for (const [i, raw] of rawRules.entries()) {
    const rule = readRule(raw, `spec.rules[${i}]`, problems);
    if (rule) rules.push(rule);
  }
  return { name, namespace, ...(selector ? { selector } : {}), action, rules };
}

function readPeerAuthentication(o: KubeObject, name: string, namespace: string, problems: Problem[]): PeerAuthentication {
  const spec = readObject(o.spec, 'spec', ['selector', 'mtls'], problems) ?? {};
  const selector = readSelector(spec.selector, problems);
  const mtls = readObject(spec.mtls, 'spec.mtls', ['mode'], problems) ?? {};
  let mode: MtlsMode = 'STRICT';
  // Istio's UNSET (inherit from the namespace or mesh) is not modelled: an absent mode is refused rather than guessed.
  if (!isPresent(mtls.mode)) problems.push({ field: 'spec.mtls.mode', reason: `required (one of ${MTLS_MODES.join(', ')})` });
  else if (MTLS_MODES.includes(mtls.mode as MtlsMode)) mode = mtls.mode as MtlsMode;
  else problems.push({ field: 'spec.mtls.mode', reason: `unknown mode ${JSON.stringify(mtls.mode)} (allowed: ${MTLS_MODES.join(', ')})` });
  return { name, namespace, ...(selector ? { selector } : {}), mode };
}

function readSelector(raw: unknown, problems: Problem[]): Record<string, string> | undefined {
  const selector = readObject(raw, 'spec.selector', ['matchLabels'], problems);
  const labels = readObject(selector?.matchLabels, 'spec.selector.matchLabels', undefined, problems);
  if (!labels) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v === 'string') out[k] = v;
    else problems.push({ field: `spec.selector.matchLabels.${k}`, reason: `must be a string (got ${JSON.stringify(v)})` });
  }
  // Keys and values as Kubernetes labels (Istio validates workload selectors the same way).
  labelProblems(problems, 'spec.selector.matchLabels', out);
  // An empty selector selects every workload, like no selector.
  return Object.keys(out).length ? out : undefined;
}

function readRule(raw: unknown, field: string, problems: Problem[]): Rule | undefined {
  if (!isObject(raw)) {
    problems.push({ field, reason: 'must be an object' });
    return undefined;
  }
  checkFields(raw, field, ['from', 'to'], problems);
  const from: Rule['from'] = [];
  for (const [i, entry] of (readNonEmptyList(raw.from, `${field}.from`, 'source', problems) ?? []).entries()) {
    const f = `${field}.from[${i}]`;
    const source = readEntry(entry, f, 'source', problems);
    if (source) {
      const s = readSource(source, `${f}.source`, problems);
      if (s) from.push({ source: s });
    }
  }
  const to: Rule['to'] = [];
  for (const [i, entry] of (readNonEmptyList(raw.to, `${field}.to`, 'operation', problems) ?? []).entries()) {
    const f = `${field}.to[${i}]`;
    const operation = readEntry(entry, f, 'operation', problems);
    if (operation) {
      const op = readOperation(operation, `${f}.operation`, problems);
      if (op) to.push({ operation: op });
    }
  }
  return { from, to };
}

/** `from` and `to` may be absent (match anything) but not empty. */
function readNonEmptyList(raw: unknown, field: string, what: string, problems: Problem[]): unknown[] | undefined {
  const list = readList(raw, field, problems);
  if (list && list.length === 0) {
    problems.push({ field, reason: `must not be empty (omit it to match any ${what})` });
    return undefined;
  }
  return list;
}

/** `{ source: {...} }` / `{ operation: {...} }` */
function readEntry(raw: unknown, field: string, key: string, problems: Problem[]): Record<string, unknown> | undefined {
  const entry = readObject(raw, field, [key], problems);
  if (!entry) {
    if (!isPresent(raw)) problems.push({ field, reason: 'must be an object' });
    return undefined;
  }
  if (!isPresent(entry[key])) {
    problems.push({ field: `${field}.${key}`, reason: 'required' });
    return undefined;
  }
  return readObject(entry[key], `${field}.${key}`, undefined, problems);
}

function readSource(raw: Record<string, unknown>, field: string, problems: Problem[]): Source | undefined {
  const before = problems.length;
  checkFields(raw, field, SOURCE_FIELDS, problems);
  const source: Source = {};
  const set = (key: keyof Source, check: (value: string) => string | undefined) => {
    const values = readStrings(raw[key], `${field}.${key}`, check, problems);
    if (values?.length) source[key] = values;
  };
  set('principals', checkPrincipal);
  set('notPrincipals', checkPrincipal);
  set('namespaces', checkNamespace);
  set('notNamespaces', checkNamespace);
  set('ipBlocks', checkIpBlock);
  set('notIpBlocks', checkIpBlock);
  if (problems.length > before) return undefined;
  if (Object.keys(source).length === 0) {
    problems.push({ field, reason: `must not be empty (set at least one of ${SOURCE_FIELDS.join(', ')})` });
    return undefined;
  }
  return source;
}

function readOperation(raw: Record<string, unknown>, field: string, problems: Problem[]): Operation | undefined {
  const before = problems.length;
  checkFields(raw, field, OPERATION_FIELDS, problems);
  const operation: Operation = {};
  for (const key of OPERATION_FIELDS) {
    const ports = readPorts(raw[key], `${field}.${key}`, problems);
    if (ports?.length) operation[key] = ports;
  }
  if (problems.length > before) return undefined;
  if (Object.keys(operation).length === 0) {
    problems.push({ field, reason: `must not be empty (set at least one of ${OPERATION_FIELDS.join(', ')})` });
    return undefined;
  }
  return operation;
}

/** Ports are strings in Istio's API; YAML authors write numbers too. */
function readPorts(raw: unknown, field: string, problems: Problem[]): number[] | undefined {
  const list = readList(raw, field, problems);
  if (!list) return undefined;
  const ports: number[] = [];
  for (const [i, value] of list.entries()) {
    const port = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
    if (Number.isInteger(port) && port >= 1 && port <= 65535) ports.push(port);
    else problems.push({ field: `${field}[${i}]`, reason: `must be an integer 1-65535 (got ${JSON.stringify(value)})` });
  }
  return ports;
}

function readStrings(raw: unknown, field: string, check: (value: string) => string | undefined, problems: Problem[]): string[] | undefined {
  const list = readList(raw, field, problems);
  if (!list) return undefined;
  const values: string[] = [];
  for (const [i, value] of list.entries()) {
    const reason = typeof value === 'string' ? check(value) : `must be a string (got ${JSON.stringify(value)})`;
    if (reason === undefined) values.push(value as string);
    else problems.push({ field: `${field}[${i}]`, reason });
  }
  return values;
}

// --- value checks: undefined when valid, else the reason ---

const PRINCIPAL_FORM = '"<trust-domain>/ns/<namespace>/sa/<service-account>", "*", "prefix*" or "*suffix"';
/** The five segments of a principal: literal segments and the characters allowed in named ones. */
const PRINCIPAL_SEGMENTS: readonly (string | RegExp)[] = [/^[a-z0-9._-]+$/, 'ns', /^[a-z0-9-]+$/, 'sa', /^[a-z0-9.-]+$/];

function checkPrincipal(value: string): string | undefined {
  return isPrincipalPattern(value) ? undefined : `must be ${PRINCIPAL_FORM} (got ${JSON.stringify(value)})`;
}

/**
 * Istio allows one "*" at the start or the end. The fixed part of a pattern
 * must still fit the principal's shape, so that a typo such as
 * "cluster.local/namespace/shop/*" is refused instead of never matching.
 */
function isPrincipalPattern(value: string): boolean {
  if (value === '*') return true;
  const star = value.indexOf('*');
  if (star < 0) {
    const parts = value.split('/');
    return parts.length === PRINCIPAL_SEGMENTS.length && parts.every((part, i) => fitsSegment(i, part, 'whole'));
  }
  if (value.indexOf('*', star + 1) >= 0) return false;
  if (star === value.length - 1) {
    const parts = value.slice(0, -1).split('/');
    return parts.length <= PRINCIPAL_SEGMENTS.length && parts.every((part, i) => fitsSegment(i, part, i === parts.length - 1 ? 'start' : 'whole'));
  }
  if (star === 0) {
    const parts = value.slice(1).split('/');
    const offset = PRINCIPAL_SEGMENTS.length - parts.length;
    return offset >= 0 && parts.every((part, i) => fitsSegment(offset + i, part, i === 0 ? 'end' : 'whole'));
  }
  return false;
}

/** 'start'/'end': the part is the start/end of the segment, the rest is behind the wildcard. */
function fitsSegment(index: number, part: string, extent: 'whole' | 'start' | 'end'): boolean {
  const segment = PRINCIPAL_SEGMENTS[index];
  if (typeof segment === 'string') return extent === 'start' ? segment.startsWith(part) : extent === 'end' ? segment.endsWith(part) : segment === part;
  return (extent !== 'whole' && part === '') || segment.test(part);
}

const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAMESPACE_PART = /^[-a-z0-9]{1,63}$/;

function checkNamespace(value: string): string | undefined {
  const valid =
    value === '*' ||
    NAMESPACE_NAME.test(value) ||
    (value.endsWith('*') && NAMESPACE_PART.test(value.slice(0, -1))) ||
    (value.startsWith('*') && NAMESPACE_PART.test(value.slice(1)));
  return valid ? undefined : `must be a namespace name, "*", "prefix*" or "*suffix" (got ${JSON.stringify(value)})`;
}

/** The proxy parses blocks with the same parser, so what passes here is what it can match. */
function checkIpBlock(value: string): string | undefined {
  return parseCidr(value) ? undefined : `not an IPv4/IPv6 address or CIDR (got ${JSON.stringify(value)})`;
}

// --- shape helpers ---

function isPresent(v: unknown): boolean {
  // null is how YAML spells an empty key ("rules:"); Kubernetes treats it as absent.
  return v !== undefined && v !== null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The object at `field`, or undefined when absent or malformed (then a problem is recorded). */
function readObject(raw: unknown, field: string, allowed: readonly string[] | undefined, problems: Problem[]): Record<string, unknown> | undefined {
  if (!isPresent(raw)) return undefined;
  if (!isObject(raw)) {
    problems.push({ field, reason: `must be an object (got ${JSON.stringify(raw)})` });
    return undefined;
  }
  if (allowed) checkFields(raw, field, allowed, problems);
  return raw;
}

function readList(raw: unknown, field: string, problems: Problem[]): unknown[] | undefined {
  if (!isPresent(raw)) return undefined;
  if (!Array.isArray(raw)) {
    problems.push({ field, reason: `must be a list (got ${JSON.stringify(raw)})` });
    return undefined;
  }
  return raw;
}

function checkFields(raw: Record<string, unknown>, field: string, allowed: readonly string[], problems: Problem[]): void {
  for (const key of Object.keys(raw)) {
    if (allowed.includes(key)) continue;
    const l7 = ISTIO_L7_FIELDS.has(key) ? '; sluice authorizes at L4 only' : '';
    problems.push({ field, reason: `unknown field ${JSON.stringify(key)} (allowed: ${allowed.join(', ')}${l7})` });
  }
}
