// The resource types sluice serves over xDS, and their conversion between
// the model and protobuf Any. Decoding validates: a resource that fails is
// reported with the reason, never half-applied.
import { validateAuthorizationPolicy, validatePeerAuthentication, type AuthorizationPolicy, type PeerAuthentication, type Rule } from '../model/policy';
import type { Service, Workload } from '../model/resources';
import { validateService, validateWorkload } from '../model/validate';
import { TYPE_PREFIX, sluiceType, type Any } from './protos';

export const WORKLOAD_TYPE = `${TYPE_PREFIX}sluice.v1.Workload`;
export const SERVICE_TYPE = `${TYPE_PREFIX}sluice.v1.Service`;
export const AUTHORIZATION_POLICY_TYPE = `${TYPE_PREFIX}sluice.v1.AuthorizationPolicy`;
export const PEER_AUTHENTICATION_TYPE = `${TYPE_PREFIX}sluice.v1.PeerAuthentication`;

const toObjectOptions = { longs: String, enums: String, defaults: true, arrays: true, objects: true };

/**
 * How one resource type travels over xDS: its type URL, the name a resource is
 * keyed by (a workload's uid, else "namespace/name"), and its conversion to and
 * from protobuf Any.
 */
export interface ResourceCodec<T> {
  typeUrl: string;
  nameOf(r: T): string;
  encode(r: T): Any;
  /** Returns the resource, or a string saying why it is not acceptable. */
  decode(any: Any): T | string;
}

function decodeMessage(typeName: string, typeUrl: string, any: Any): Record<string, unknown> | string {
  if (any.type_url !== typeUrl) return `resource has type ${any.type_url}, expected ${typeUrl}`;
  try {
    const t = sluiceType(typeName);
    return t.toObject(t.decode(any.value), toObjectOptions) as Record<string, unknown>;
  } catch (err) {
    return `cannot decode ${typeName}: ${(err as Error).message}`;
  }
}

function encodeMessage(typeName: string, typeUrl: string, obj: object): Any {
  const t = sluiceType(typeName);
  return { type_url: typeUrl, value: Buffer.from(t.encode(t.fromObject(obj)).finish()) };
}

export const workloadCodec: ResourceCodec<Workload> = {
  typeUrl: WORKLOAD_TYPE,
  nameOf: (w) => w.uid,
  encode: (w) => encodeMessage('sluice.v1.Workload', WORKLOAD_TYPE, w),
  decode(any) {
    const m = decodeMessage('sluice.v1.Workload', WORKLOAD_TYPE, any);
    return typeof m === 'string' ? m : validateWorkload(m, false);
  },
};

interface ServiceMessage {
  name: string;
  namespace: string;
  clusterIps: string[];
  ports: { name: string; port: number; targetPort: number }[];
  endpoints: { workloadUid: string; address: string; node: string; ready: boolean; targetPorts?: Record<string, number> }[];
  loadBalancing?: { mode: string; connectTimeoutMs: number; maxConnectAttempts: number } | null;
}

export const serviceCodec: ResourceCodec<Service> = {
  typeUrl: SERVICE_TYPE,
  nameOf: (s) => `${s.namespace}/${s.name}`,
  encode(s) {
    const msg: ServiceMessage = {
      name: s.name,
      namespace: s.namespace,
      clusterIps: s.clusterIPs,
      ports: s.ports,
      endpoints: s.endpoints,
      loadBalancing: s.loadBalancing,
    };
    return encodeMessage('sluice.v1.Service', SERVICE_TYPE, msg);
  },
  decode(any) {
    const m = decodeMessage('sluice.v1.Service', SERVICE_TYPE, any);
    if (typeof m === 'string') return m;
    const msg = m as unknown as ServiceMessage;
    // Unset load balancing fields mean "the default", as in Envoy's API.
    const lb = msg.loadBalancing ?? undefined;
    const loadBalancing: Record<string, unknown> = {};
    if (lb?.mode) loadBalancing.mode = lb.mode;
    if (lb?.connectTimeoutMs) loadBalancing.connectTimeoutMs = lb.connectTimeoutMs;
    if (lb?.maxConnectAttempts) loadBalancing.maxConnectAttempts = lb.maxConnectAttempts;
    return validateService(
      {
        name: msg.name,
        namespace: msg.namespace,
        clusterIPs: msg.clusterIps,
        ports: msg.ports,
        // An empty map is "unset" on the wire: the endpoint serves every port at the service's target port.
        endpoints: msg.endpoints.map(({ targetPorts, ...e }) => (targetPorts && Object.keys(targetPorts).length ? { ...e, targetPorts } : e)),
        loadBalancing,
      },
      false,
    );
  },
};

interface SourceMessage {
  principals: string[];
  notPrincipals: string[];
  namespaces: string[];
  notNamespaces: string[];
  ipBlocks: string[];
  notIpBlocks: string[];
}

interface PolicyMessage {
  name: string;
  namespace: string;
  selector?: { matchLabels: Record<string, string> } | null;
  action: string;
  rules: { from: { source?: SourceMessage | null }[]; to: { operation?: { ports: number[]; notPorts: number[] } | null }[] }[];
}

/** Empty lists and missing selectors are "unset" on the wire and in the model alike. */
function nonEmpty<T>(list: T[] | undefined): T[] | undefined {
  return list && list.length ? list : undefined;
}

function sourceFromMessage(m: SourceMessage | null | undefined): Rule['from'][number]['source'] {
  const s: Rule['from'][number]['source'] = {};
  if (!m) return s;
  const fields = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const;
  for (const f of fields) {
    const v = nonEmpty(m[f]);
    if (v) s[f] = v;
  }
  return s;
}

export const authorizationPolicyCodec: ResourceCodec<AuthorizationPolicy> = {
  typeUrl: AUTHORIZATION_POLICY_TYPE,
  nameOf: (p) => `${p.namespace}/${p.name}`,
  encode(p) {
    const msg = {
      name: p.name,
      namespace: p.namespace,
      selector: p.selector ? { matchLabels: p.selector } : undefined,
      action: p.action,
      rules: p.rules.map((r) => ({
        from: r.from.map((f) => ({ source: f.source })),
        to: r.to.map((t) => ({ operation: t.operation })),
      })),
    };
    return encodeMessage('sluice.v1.AuthorizationPolicy', AUTHORIZATION_POLICY_TYPE, msg);
  },
  decode(any) {
    const m = decodeMessage('sluice.v1.AuthorizationPolicy', AUTHORIZATION_POLICY_TYPE, any);
    if (typeof m === 'string') return m;
    const msg = m as unknown as PolicyMessage;
    const policy: AuthorizationPolicy = {
      name: msg.name,
      namespace: msg.namespace,
      action: msg.action as AuthorizationPolicy['action'],
      rules: msg.rules.map((r) => ({
        from: r.from.map((f) => ({ source: sourceFromMessage(f.source) })),
        to: r.to.map((t) => {
          const operation: Rule['to'][number]['operation'] = {};
          const ports = nonEmpty(t.operation?.ports);
          const notPorts = nonEmpty(t.operation?.notPorts);
          if (ports) operation.ports = ports;
          if (notPorts) operation.notPorts = notPorts;
          return { operation };
        }),
      })),
    };
    if (msg.selector) policy.selector = { ...msg.selector.matchLabels };
    return validateAuthorizationPolicy(policy) ?? policy;
  },
};

export const peerAuthenticationCodec: ResourceCodec<PeerAuthentication> = {
  typeUrl: PEER_AUTHENTICATION_TYPE,
  nameOf: (p) => `${p.namespace}/${p.name}`,
  encode(p) {
    const msg = { name: p.name, namespace: p.namespace, selector: p.selector ? { matchLabels: p.selector } : undefined, mode: p.mode };
    return encodeMessage('sluice.v1.PeerAuthentication', PEER_AUTHENTICATION_TYPE, msg);
  },
  decode(any) {
    const m = decodeMessage('sluice.v1.PeerAuthentication', PEER_AUTHENTICATION_TYPE, any);
    if (typeof m === 'string') return m;
    const msg = m as unknown as { name: string; namespace: string; selector?: { matchLabels: Record<string, string> } | null; mode: string };
    const p: PeerAuthentication = { name: msg.name, namespace: msg.namespace, mode: msg.mode as PeerAuthentication['mode'] };
    if (msg.selector) p.selector = { ...msg.selector.matchLabels };
    return validatePeerAuthentication(p) ?? p;
  },
};
