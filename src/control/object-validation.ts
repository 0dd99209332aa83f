// Validation of each Kubernetes object the control plane reads, on its own
// and before translation, with the rules the Kubernetes API server would
// have applied to the fields sluice uses. Manifest files are not checked by
// an API server, and what sluice builds from them (identities, VIPs) is
// security-relevant: a value Kubernetes would refuse is refused here too, so
// translation only ever sees well-formed objects.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import * as net from 'node:net';
import { clusterIPProblem, inRanges, parseClusterIP, type ClusterRanges } from '../model/cluster-ranges';
import {
  dns1035LabelProblem,
  dns1123LabelProblem,
  dns1123SubdomainProblem,
  envVarNameProblem,
  labelValueProblem,
  portNameProblem,
  qualifiedNameProblem,
} from '../model/kubernetes-names';
import { ENDPOINT_SLICE_API_VERSION, objectName, type EndpointSlice, type KubeObject, type SourcedObject } from './kubernetes-objects';
import { endpointSliceSchema, namespaceSchema, podSchema, policySchema, serviceSchema } from './object-schemas';
import type { TranslationError } from './translate';

/** The core/v1 kinds translate.ts reads. Objects of these kinds with another apiVersion are not ours. */
export const CORE_KINDS: ReadonlySet<string> = new Set(['Namespace', 'Pod', 'Service']);

// verbose: errors carry the failing value and schema, for "(got ...)" and port ranges.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
const schemas: Record<string, ValidateFunction> = {
  Namespace: ajv.compile(namespaceSchema),
  Pod: ajv.compile(podSchema),
  Service: ajv.compile(serviceSchema),
  AuthorizationPolicy: ajv.compile(policySchema),
  PeerAuthentication: ajv.compile(policySchema),
  EndpointSlice: ajv.compile(endpointSliceSchema),
};

/** A field path and why its value is refused: "spec.ports[0]", "must be an object (got null)". */
export interface FieldProblem {
  field: string;
  reason: string;
}

const MAX_SHOWN = 80;

/** A value for an error message: JSON, cut short so that a megabyte of input does not become a megabyte of log. */
export function describeValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...(${text.length} characters)` : text;
}

/** "/spec/ports/0/name" -> "spec.ports[0].name" */
function fieldPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, part) => (/^[0-9]+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), '');
}

const ARTICLE: Record<string, string> = { object: 'an object', array: 'a list', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'a boolean' };

function schemaProblem(e: ErrorObject): FieldProblem {
  const field = fieldPath(e.instancePath);
  const got = `(got ${describeValue(e.data)})`;
  const parent = e.parentSchema as { type?: unknown; minimum?: number; maximum?: number } | undefined;
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return { field: field ? `${field}.${missing}` : missing, reason: 'required' };
  }
  // A port is one rule, whichever part of it fails: "must be an integer 1-65535 (got 70000)".
  if (parent?.type === 'integer' && parent.minimum !== undefined && parent.maximum !== undefined) {
    return { field, reason: `must be an integer ${parent.minimum}-${parent.maximum} ${got}` };
  }
  if (e.keyword === 'type') {
    const types = ([] as string[]).concat((e.params as { type: string | string[] }).type);
    return { field, reason: `must be ${types.map((t) => ARTICLE[t] ?? t).join(' or ')} ${got}` };
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
    return { field, reason: `unsupported value ${describeValue(e.data)}: supported values: ${allowed}` };
  }
  return { field, reason: `${e.message ?? 'invalid'} ${got}` };
}

function nameCheck(problems: FieldProblem[], field: string, value: string | undefined, check: (v: string) => string | undefined): void {
  if (value === undefined) return;
  const reason = check(value);
  if (reason) problems.push({ field, reason: `${reason} (got ${describeValue(value)})` });
}

/**
 * Label maps (metadata.labels, selectors): keys IsQualifiedName, values
 * IsValidLabelValue, as ValidateLabels in apimachinery. Appends to `problems`
 * one entry per bad key ("<field>: key ...") or value ("<field>.<key>").
 */
export function labelProblems(problems: FieldProblem[], field: string, labels: Record<string, string> | undefined): void {
  for (const [key, value] of Object.entries(labels ?? {})) {
    const keyReason = qualifiedNameProblem(key);
    if (keyReason) problems.push({ field, reason: `key ${describeValue(key)}: ${keyReason}` });
    else nameCheck(problems, `${field}.${key}`, value, labelValueProblem);
  }
}

/** Kubernetes sets uid itself (a UUID); a hand-written one is used as a key, so it is held to a plain shape. */
const UID = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,126}[A-Za-z0-9])?$/;

function metadataProblems(o: KubeObject, nameRule: (v: string) => string | undefined, problems: FieldProblem[]): void {
  const m = o.metadata;
  if (m.name === '') problems.push({ field: 'metadata.name', reason: 'required' });
  else nameCheck(problems, 'metadata.name', m.name, nameRule);
  // Namespace names are DNS-1123 labels (ValidateNamespaceName).
  nameCheck(problems, 'metadata.namespace', m.namespace === '' ? undefined : m.namespace, dns1123LabelProblem);
  nameCheck(problems, 'metadata.uid', m.uid === '' ? undefined : m.uid, (v) => (UID.test(v) ? undefined : 'must be up to 128 letters, digits, "-", "_" and ".", starting and ending with a letter or digit'));
  labelProblems(problems, 'metadata.labels', m.labels);
}

interface ServicePortShape {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
}

function servicePortProblems(ports: ServicePortShape[], problems: FieldProblem[]): void {
  const names = new Set<string>();
  const numbers = new Set<string>();
  for (const [i, p] of ports.entries()) {
    const field = `spec.ports[${i}]`;
    // ValidateService: each port name is a DNS-1123 label, required and unique when there are several ports.
    if (p.name === undefined || p.name === '') {
      if (ports.length > 1) problems.push({ field: `${field}.name`, reason: 'required (a service with more than one port names each)' });
    } else {
      nameCheck(problems, `${field}.name`, p.name, dns1123LabelProblem);
      if (names.has(p.name)) problems.push({ field: `${field}.name`, reason: `duplicate value ${describeValue(p.name)}` });
      names.add(p.name);
    }
    const key = `${p.port}/${p.protocol ?? 'TCP'}`;
    if (numbers.has(key)) problems.push({ field, reason: `duplicate port and protocol ${key}` });
    numbers.add(key);
    // targetPort: IntOrString, a port number 1-65535 or a port name (IsValidPortName); "0" is unset.
    const t = p.targetPort;
    if (typeof t === 'number' && (t < 1 || t > 65535)) problems.push({ field: `${field}.targetPort`, reason: `must be an integer 1-65535 (got ${t})` });
    if (typeof t === 'string' && !/^[0-9]+$/.test(t)) nameCheck(problems, `${field}.targetPort`, t, portNameProblem);
    if (typeof t === 'string' && /^[0-9]+$/.test(t) && (t.length > 5 || Number(t) < 1 || Number(t) > 65535)) {
      problems.push({ field: `${field}.targetPort`, reason: `must be an integer 1-65535 (got ${describeValue(t)})` });
    }
  }
}

/**
 * spec.clusterIP and spec.clusterIPs as ValidateService checks them in
 * pkg/apis/core/validation: "None" (headless: no VIP, which translation reports),
 * or valid IPs, at most one per family, clusterIPs[0] equal to clusterIP
 * when both are set; and, as the service IP allocator does, every address
 * inside the service range (see clusterIPProblem).
 */
function clusterIPProblems(spec: { clusterIP?: string; clusterIPs?: string[] }, ranges: ClusterRanges, problems: FieldProblem[]): void {
  const { clusterIP, clusterIPs } = spec;
  if (clusterIP && clusterIPs?.length && clusterIPs[0] !== clusterIP) {
    problems.push({ field: 'spec.clusterIPs[0]', reason: `must match spec.clusterIP ${describeValue(clusterIP)} (got ${describeValue(clusterIPs[0])})` });
  }
  const listed = clusterIPs?.length ? clusterIPs.map((ip, i) => [`spec.clusterIPs[${i}]`, ip] as const) : clusterIP ? [['spec.clusterIP', clusterIP] as const] : [];
  if (listed.some(([, ip]) => ip === 'None')) {
    if (listed.length > 1) problems.push({ field: 'spec.clusterIPs', reason: '"None" must be the only value' });
    return;
  }
  for (const [field, ip] of listed) {
    const reason = clusterIPProblem(ip, ranges);
    if (reason) problems.push({ field, reason });
  }
  if (listed.length === 2) {
    const [a, b] = listed.map(([, ip]) => parseClusterIP(ip));
    if (a && b && a.family === b.family) problems.push({ field: 'spec.clusterIPs', reason: 'may specify no more than one IP for each IP family' });
  }
}

function podProblems(o: KubeObject, ranges: ClusterRanges, problems: FieldProblem[]): void {
  const spec = o.spec as {
    nodeName?: string;
    serviceAccountName?: string;
    serviceAccount?: string;
    containers?: { name?: string; ports?: { name?: string }[]; env?: { name: string }[] }[];
  };
  // ValidatePodSpec: nodeName is a node name (DNS-1123 subdomain), serviceAccountName
  // a service account name (ValidateServiceAccountName = DNS-1123 subdomain).
  nameCheck(problems, 'spec.nodeName', spec.nodeName || undefined, dns1123SubdomainProblem);
  nameCheck(problems, 'spec.serviceAccountName', spec.serviceAccountName || undefined, dns1123SubdomainProblem);
  nameCheck(problems, 'spec.serviceAccount', spec.serviceAccount || undefined, dns1123SubdomainProblem);
  for (const [i, c] of (spec.containers ?? []).entries()) {
    nameCheck(problems, `spec.containers[${i}].name`, c.name, dns1123LabelProblem);
    for (const [j, p] of (c.ports ?? []).entries()) nameCheck(problems, `spec.containers[${i}].ports[${j}].name`, p.name, portNameProblem);
    for (const [j, e] of (c.env ?? []).entries()) nameCheck(problems, `spec.containers[${i}].env[${j}].name`, e.name, envVarNameProblem);
  }
  const status = (o.status ?? {}) as { podIP?: string; hostIP?: string };
  for (const field of ['podIP', 'hostIP'] as const) {
    const ip = status[field];
    if (!ip) continue;
    const parsed = net.isIP(ip) ? parseClusterIP(ip) : undefined;
    if (!parsed || parsed.words.every((w) => w === 0)) problems.push({ field: `status.${field}`, reason: `not an IP address (got ${describeValue(ip)})` });
    // A pod never gets a service address: one would make a workload answer for a VIP.
    else if (field === 'podIP' && inRanges(ip, ranges.service)) problems.push({ field: `status.${field}`, reason: `${ip} is inside the service range, where no pod address can be` });
  }
}

function serviceProblems(o: KubeObject, ranges: ClusterRanges, problems: FieldProblem[]): void {
  const spec = o.spec as { clusterIP?: string; clusterIPs?: string[]; selector?: Record<string, string>; ports?: ServicePortShape[] };
  clusterIPProblems(spec, ranges, problems);
  labelProblems(problems, 'spec.selector', spec.selector);
  servicePortProblems(spec.ports ?? [], problems);
}

/**
 * ValidateEndpointSlice (pkg/apis/discovery/validation) for what sluice
 * reads: addresses of the slice's addressType (IPv4 slices hold IPv4
 * addresses, IPv6 slices IPv6 ones), nodeName a DNS-1123 subdomain, port
 * names DNS-1123 labels (or empty) and unique.
 */
function endpointSliceProblems(o: EndpointSlice, problems: FieldProblem[]): void {
  if (o.apiVersion !== ENDPOINT_SLICE_API_VERSION) {
    problems.push({ field: 'apiVersion', reason: `must be ${JSON.stringify(ENDPOINT_SLICE_API_VERSION)} for EndpointSlice (got ${describeValue(o.apiVersion)})` });
  }
  const family = o.addressType === 'IPv4' ? 4 : o.addressType === 'IPv6' ? 6 : 0;
  for (const [i, e] of (o.endpoints ?? []).entries()) {
    if (family) {
      for (const [j, a] of e.addresses.entries()) {
        if (net.isIP(a) !== family) problems.push({ field: `endpoints[${i}].addresses[${j}]`, reason: `must be an ${o.addressType} address (got ${describeValue(a)})` });
      }
    }
    nameCheck(problems, `endpoints[${i}].nodeName`, e.nodeName || undefined, dns1123SubdomainProblem);
  }
  const names = new Set<string>();
  for (const [i, p] of (o.ports ?? []).entries()) {
    const name = p.name ?? '';
    if (name !== '') nameCheck(problems, `ports[${i}].name`, name, dns1123LabelProblem);
    if (names.has(name)) problems.push({ field: `ports[${i}].name`, reason: `duplicate value ${describeValue(name)}` });
    names.add(name);
  }
}

/**
 * Checks one object of a kind the control plane reads (Namespace, Pod,
 * Service of apiVersion v1; AuthorizationPolicy, PeerAuthentication) and
 * returns its problems, [] when it is valid. Never throws, whatever the
 * object holds. Field types are checked first (a schema per kind, see
 * object-schemas.ts); the value rules only run on well-typed objects:
 *   - names: Namespace and namespace fields IsDNS1123Label, Pod and policy
 *     names IsDNS1123Subdomain, Service names IsDNS1035Label, as
 *     pkg/apis/core/validation chooses per kind;
 *   - labels and selectors: IsQualifiedName keys, IsValidLabelValue values;
 *   - Pod: nodeName and serviceAccountName IsDNS1123Subdomain, container
 *     names IsDNS1123Label, port names IsValidPortName, IPs valid;
 *   - Service: ports 1-65535, protocol TCP/UDP/SCTP, port names and
 *     targetPorts as ValidateService has them, clusterIP(s) in the service
 *     range and outside pod and node ranges (clusterIPProblem);
 *   - EndpointSlice (discovery.k8s.io/v1): see endpointSliceProblems.
 */
export function objectProblems(o: KubeObject, ranges: ClusterRanges): FieldProblem[] {
  try {
    const validate = schemas[o.kind];
    if (!validate) return [];
    if (!validate(o)) return dedupe((validate.errors ?? []).map(schemaProblem));
    const problems: FieldProblem[] = [];
    if (CORE_KINDS.has(o.kind) && o.apiVersion !== 'v1') problems.push({ field: 'apiVersion', reason: `must be "v1" for ${o.kind} (got ${describeValue(o.apiVersion)})` });
    const nameRule = o.kind === 'Service' ? dns1035LabelProblem : o.kind === 'Namespace' ? dns1123LabelProblem : dns1123SubdomainProblem;
    metadataProblems(o, nameRule, problems);
    if (o.kind === 'Pod') podProblems(o, ranges, problems);
    if (o.kind === 'Service') serviceProblems(o, ranges, problems);
    if (o.kind === 'EndpointSlice') endpointSliceProblems(o as EndpointSlice, problems);
    return problems;
  } catch (err) {
    // A check that throws is a bug here, not a reason to stop serving everything else.
    return [{ field: '(object)', reason: `could not be validated: ${(err as Error).message}` }];
  }
}

function dedupe(problems: FieldProblem[]): FieldProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.field}\0${p.reason}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** objectProblems as translation errors naming the file and the object. */
export function validateObject(s: SourcedObject, ranges: ClusterRanges): TranslationError[] {
  return objectProblems(s.object, ranges).map((p) => ({ source: s.source, object: objectName(s.object), field: p.field, reason: p.reason }));
}
