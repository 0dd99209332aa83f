// Validation of resources, one at a time: a bad resource is rejected with a
// reason naming the field and value, the others still apply.
import Ajv, { type ErrorObject } from 'ajv';
import * as net from 'node:net';
import { defaultLoadBalancing, type Service, type Snapshot, type Workload } from './resources';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addFormat('ip', (s: string) => net.isIP(s) !== 0);

const port = { type: 'integer', minimum: 1, maximum: 65535 };
const name = { type: 'string', minLength: 1, maxLength: 253 };

const workloadSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['uid', 'name', 'namespace', 'node', 'ips'],
  properties: {
    uid: name,
    name,
    namespace: name,
    node: name,
    ips: { type: 'array', items: { type: 'string', format: 'ip' } },
    serviceAccount: { type: 'string', default: 'default' },
    labels: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    identity: { type: 'string', default: '' },
    captured: { type: 'boolean', default: false },
    ready: { type: 'boolean', default: true },
    nodeAddress: { anyOf: [{ const: '' }, { type: 'string', format: 'ip' }], default: '' },
  },
};

const serviceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'namespace', 'clusterIPs', 'ports'],
  properties: {
    name,
    namespace: name,
    clusterIPs: { type: 'array', minItems: 1, items: { type: 'string', format: 'ip' } },
    ports: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['port', 'targetPort'],
        properties: { name: { type: 'string', default: '' }, port, targetPort: port },
      },
    },
    endpoints: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['workloadUid', 'address', 'node'],
        properties: {
          workloadUid: name,
          address: { type: 'string', format: 'ip' },
          node: name,
          ready: { type: 'boolean', default: true },
          targetPorts: { type: 'object', propertyNames: { pattern: '^[1-9][0-9]{0,4}$' }, additionalProperties: port },
        },
      },
    },
    loadBalancing: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { enum: ['least-request'], default: defaultLoadBalancing.mode },
        connectTimeoutMs: { type: 'integer', minimum: 1, maximum: 600000, default: defaultLoadBalancing.connectTimeoutMs },
        maxConnectAttempts: { type: 'integer', minimum: 1, maximum: 16, default: defaultLoadBalancing.maxConnectAttempts },
      },
    },
  },
};

const validateWorkloadSchema = ajv.compile(workloadSchema);
const validateServiceSchema = ajv.compile(serviceSchema);

/** "ports/0/targetPort: must be <= 65535 (got 70000)" */
export function describeAjvErrors(
  errors: ErrorObject[] | null | undefined,
  root: unknown,
  nameOf: (path: string) => string = (p) => p,
): string {
  return (errors ?? [])
    .map((e) => {
      const where = nameOf(e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)');
      const got = valueAt(root, e.instancePath);
      const extra = e.keyword === 'additionalProperties' ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"` : '';
      return `${where}: ${e.message}${extra}${got === undefined || typeof got === 'object' ? '' : ` (got ${JSON.stringify(got)})`}`;
    })
    .join('; ');
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const part of pointer.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export interface Rejection {
  kind: 'Workload' | 'Service' | 'AuthorizationPolicy';
  name: string;
  reason: string;
}

export interface ValidatedSnapshot {
  snapshot: Snapshot;
  rejected: Rejection[];
}

function labelOf(raw: unknown, index: number): string {
  const o = raw as { namespace?: unknown; name?: unknown } | null;
  if (o && typeof o.namespace === 'string' && typeof o.name === 'string') return `${o.namespace}/${o.name}`;
  return `#${index}`;
}

/** copy=false validates (and fills defaults) in place: for objects the caller just built. */
export function validateWorkload(raw: unknown, copy = true): Workload | string {
  const obj = copy ? structuredClone(raw) : raw;
  return validateWorkloadObject(obj);
}

function validateWorkloadObject(copy: unknown): Workload | string {
  if (!validateWorkloadSchema(copy)) return describeAjvErrors(validateWorkloadSchema.errors, copy);
  return copy as unknown as Workload;
}

/**
 * The service, checked against its schema and the rule the schema cannot
 * say (no port twice), or a message naming the field that is wrong.
 * `copy`: validate a copy, leaving `raw` untouched.
 */
export function validateService(raw: unknown, copy = true): Service | string {
  return validateServiceObject(copy ? structuredClone(raw) : raw);
}

function validateServiceObject(copy: unknown): Service | string {
  if (!validateServiceSchema(copy)) return describeAjvErrors(validateServiceSchema.errors, copy);
  const svc = copy as unknown as Service;
  const seen = new Set<number>();
  for (const [i, p] of svc.ports.entries()) {
    if (seen.has(p.port)) return `ports.${i}.port: duplicate port (got ${p.port})`;
    seen.add(p.port);
  }
  return svc;
}

/**
 * Validates every resource of a snapshot on its own. Throws only when the
 * document as a whole is unusable (not an object, lists missing).
 */
export function validateSnapshot(raw: unknown): ValidatedSnapshot {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('snapshot: must be an object with "workloads" and "services"');
  const doc = raw as Record<string, unknown>;
  for (const field of ['workloads', 'services']) {
    if (doc[field] !== undefined && !Array.isArray(doc[field])) throw new Error(`snapshot: ${field}: must be an array`);
  }
  const rejected: Rejection[] = [];
  const workloads: Workload[] = [];
  const services: Service[] = [];
  const seen = new Set<string>();
  for (const [i, w] of ((doc.workloads as unknown[]) ?? []).entries()) {
    const r = validateWorkload(w);
    if (typeof r === 'string') rejected.push({ kind: 'Workload', name: labelOf(w, i), reason: `workloads[${i}]: ${r}` });
    else if (seen.has(`w:${r.uid}`)) rejected.push({ kind: 'Workload', name: labelOf(w, i), reason: `workloads[${i}].uid: duplicate (got "${r.uid}")` });
    else {
      seen.add(`w:${r.uid}`);
      workloads.push(r);
    }
  }
  const vips = new Map<string, string>();
  for (const [i, s] of ((doc.services as unknown[]) ?? []).entries()) {
    const r = validateService(s);
    if (typeof r === 'string') {
      rejected.push({ kind: 'Service', name: labelOf(s, i), reason: `services[${i}]: ${r}` });
      continue;
    }
    const clash = r.clusterIPs.map((ip) => vips.get(ip)).find((owner) => owner !== undefined);
    if (clash) {
      rejected.push({ kind: 'Service', name: labelOf(s, i), reason: `services[${i}].clusterIPs: already used by ${clash}` });
      continue;
    }
    for (const ip of r.clusterIPs) vips.set(ip, `${r.namespace}/${r.name}`);
    services.push(r);
  }
  const version = typeof doc.version === 'string' ? doc.version : '';
  return { snapshot: { version, workloads, services }, rejected };
}
