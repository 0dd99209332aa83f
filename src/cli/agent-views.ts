// Tables of sluicectl for an agent's admin endpoint, with the shape each
// answer must have before a table is drawn from it.
import { type Shape, anyOf, fields, list } from './answer-shape';
import type { AgentStatusView, ConnectionView, MapsView } from '../observability/agent-admin-api';
import { bytes, duration, table } from './output';

/** The agent's answers, declared once for both sides (src/observability/agent-admin-api.ts). */
export type Status = AgentStatusView;

export function statusTable(s: Status): string {
  const lines = [
    `node:         ${s.node}`,
    `ready:        ${s.ready ? 'yes' : `no, waiting for: ${s.pending.join(', ')}`}`,
    `uptime:       ${duration(s.uptimeSeconds * 1000)}`,
    `proxy:        ${s.proxy} (${s.activeConnections} active connections), relay: ${s.relay}`,
    `bpf pins:     ${s.bpf.pinRoot ?? '-'}`,
    `programs:     ${s.bpf.attached.map((a) => `${a.program}${a.reused ? ' (kept from previous run)' : ''}`).join(', ') || '-'}`,
    `config:       version ${s.config.version || '-'} from ${s.config.source}`,
  ];
  if (s.config.xds) lines.push(`control plane: ${s.config.xds.state}${s.config.xds.lastError ? ` (last error: ${s.config.xds.lastError})` : ''}`);
  if (s.config.file?.lastError) lines.push(`config error: ${s.config.file.lastError}`);
  for (const r of s.config.file?.rejected ?? []) lines.push(`rejected:     ${r.name}: ${r.reason}`);
  lines.push(`enrolled:     ${s.enrolled.map((e) => e.workload).join(', ') || '(none)'}`);
  for (const e of s.enrolled.filter((x) => x.preexistingConnections)) {
    lines.push(`              ${e.workload}: ${e.preexistingConnections} connection(s) opened before enrollment, left uncaptured`);
  }
  for (const e of s.enrolled.filter((x) => x.strictNotEnforced)) lines.push(`              ${e.workload}: ${e.strictNotEnforced}`);
  const inbound = s.inboundCapture;
  if (inbound?.pods.length) {
    // Plaintext from outside the mesh into these pods goes through the proxy (policy selects them).
    lines.push(`inbound:      ${inbound.pods.map((p) => `${p.pod} (${p.ip})${p.listening ? '' : ' NOT LISTENING'}`).join(', ')}`);
    for (const p of inbound.pods.filter((x) => x.error)) lines.push(`              ${p.pod}: plaintext into it is dropped: ${p.error}`);
  }
  for (const e of inbound?.mapErrors ?? []) lines.push(`inbound map:  ${e}`);
  const b = s.connectionBudget;
  if (b) lines.push(`budget:       ${b.inUse} of ${b.maxConnections} connections, ${b.maxPerSource} per pod${b.waiting ? `, ${b.waiting} waiting` : ''}`);
  for (const [map, f] of Object.entries(s.mapFill ?? {})) {
    lines.push(`map fill:     ${map} ${f.entries}/${f.capacity}${f.admitted ? `, admitted ${f.admitted.entries}/${f.admitted.limit}` : ''}${f.rejectedResources ? `, ${f.rejectedResources} resource(s) rejected` : ''}`);
  }
  if (s.resync) lines.push(`resync:       ${s.resync.intervalSeconds ? `every ${s.resync.intervalSeconds} s, last ${s.resync.last ?? 'not yet'}` : 'off'}, ${s.resync.repairs} repair(s)`);
  const sync = s.mapSync;
  if (sync?.failingKeys) {
    const retry = sync.nextRetryInMs !== undefined ? `, next retry in ${duration(sync.nextRetryInMs)}` : '';
    lines.push(`map sync:     ${sync.failingKeys} key(s) failing${retry}`);
    for (const f of sync.failing) lines.push(`              ${f.map} ${f.key}: ${f.op} failed ${f.passes} time(s) since ${f.since}: ${f.error}`);
    if (sync.failing.length < sync.failingKeys) lines.push(`              ... and ${sync.failingKeys - sync.failing.length} more`);
  }
  if (s.tunnels) lines.push(`tunnels:      ${s.tunnels.openSessions ?? 0} session(s) out, ${s.tunnels.streamsOpened ?? 0} stream(s) opened${s.tunnels.server ? `, ${s.tunnels.server.accepted ?? 0} accepted in` : ''}`);
  if (s.proxyCounters) lines.push(`proxy:        ${Object.entries(s.proxyCounters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return lines.join('\n') + '\n';
}

export function mapsTable(m: MapsView): string {
  return [
    `pins: ${m.pinRoot}\n`,
    'ENROLLMENT (sluice_enroll)',
    table(['NETNS COOKIE', 'ID', 'WORKLOAD'], m.enrollment.map((e) => [String(e.netnsCookie), String(e.workloadId), e.workload || '?'])),
    'SERVICE VIPS (sluice_vips)',
    table(['VIP', 'ID', 'SERVICE'], m.vips.map((v) => [v.vip, String(v.serviceId), v.service || '?'])),
    'ORIGINAL DESTINATIONS not yet taken by the proxy (sluice_tuples)',
    table(['TUPLE', 'ORIGINAL DST', 'NETNS COOKIE'], m.originalDestinations.map((o) => [o.tuple, o.originalDst, String(o.netnsCookie)])),
    'COUNTERS (sluice_counters, all CPUs)',
    table(['COUNTER', 'VALUE'], Object.entries(m.counters).map(([k, v]) => [k, String(v)])),
  ].join('\n');
}

export function connectionsTable(cs: ConnectionView[]): string {
  return table(
    ['ID', 'SOURCE', 'VIP', 'SERVICE', 'ENDPOINT', 'STATE', 'SECURITY', 'SENT', 'RECEIVED', 'AGE'],
    cs.map((c) => [String(c.id), c.source, c.vip, c.service, c.endpoint || '-', c.state, c.security || '-', bytes(c.bytesFromClient), bytes(c.bytesFromEndpoint), duration(c.ageMs)]),
  );
}

export function configTable(s: Status): string {
  const c = s.config;
  const lines = [`source:   ${c.source}`, `version:  ${c.version || '-'}`];
  if (c.xds) {
    lines.push(`target:   ${c.xds.target} as node ${c.xds.node}`, `state:    ${c.xds.state}${c.xds.connectedSince ? ` since ${c.xds.connectedSince}` : ''}`);
    if (c.xds.lastError) lines.push(`last error: ${c.xds.lastError}`);
    lines.push(
      '',
      table(
        ['TYPE', 'SYNCED', 'RECEIVED', 'LAST ACK (version/nonce)', 'LAST NACK (version/nonce)', 'NACK REASON'],
        c.xds.types.map((t) => [
          t.type.replace('type.googleapis.com/', ''),
          String(t.synced),
          String(t.received),
          t.lastAck ? `${t.lastAck.version}/${t.lastAck.nonce}` : '-',
          t.lastNack ? `${t.lastNack.version}/${t.lastNack.nonce}` : '-',
          t.lastNack?.reason ?? '',
        ]),
      ),
    );
  }
  if (c.file) {
    lines.push(`file:     ${c.file.file}, applied ${c.file.appliedAt || 'never'}`);
    if (c.file.lastError) lines.push(`error:    ${c.file.lastError}`);
    for (const r of c.file.rejected ?? []) lines.push(`rejected: ${r.name}: ${r.reason}`);
  }
  return lines.join('\n') + '\n';
}

interface WorkloadRow {
  namespace: string;
  name: string;
  node: string;
  ips: string[];
  serviceAccount: string;
  captured: boolean;
  ready: boolean;
  local: boolean;
  enrolled: boolean;
}

export function workloadsTable(ws: WorkloadRow[]): string {
  return table(
    ['NAMESPACE', 'NAME', 'NODE', 'IP', 'SERVICE ACCOUNT', 'IN MESH', 'ENROLLED HERE', 'READY'],
    ws.map((w) => [w.namespace, w.name, w.node, w.ips.join(','), w.serviceAccount, w.captured ? 'yes' : 'no', w.local ? (w.enrolled ? 'yes' : 'no') : '-', w.ready ? 'yes' : 'no']),
  );
}

interface ServiceRow {
  namespace: string;
  name: string;
  clusterIPs: string[];
  ports: { port: number; targetPort: number }[];
  endpoints: { address: string; node: string; ready: boolean }[];
}

export function servicesTable(ss: ServiceRow[]): string {
  return table(
    ['NAMESPACE', 'NAME', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
    ss.map((s) => [
      s.namespace,
      s.name,
      s.clusterIPs.join(','),
      s.ports.map((p) => `${p.port}->${p.targetPort}`).join(','),
      s.endpoints.length ? s.endpoints.map((e) => `${e.address}${e.ready ? '' : ' (not ready)'}@${e.node}`).join(', ') : '(none)',
    ]),
  );
}

interface PolicyRows {
  authorizationPolicies: { namespace: string; name: string; action: string; selector?: Record<string, string>; rules: unknown[] }[];
  peerAuthentications: { namespace: string; name: string; mode: string; selector?: Record<string, string> }[];
}

function selectorText(sel?: Record<string, string>): string {
  return sel ? Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',') : '(namespace-wide)';
}

export function policiesTable(p: PolicyRows): string {
  return [
    'AUTHORIZATION POLICIES',
    table(['NAMESPACE', 'NAME', 'ACTION', 'SELECTOR', 'RULES'], p.authorizationPolicies.map((a) => [a.namespace, a.name, a.action, selectorText(a.selector), JSON.stringify(a.rules)])),
    'PEER AUTHENTICATION',
    table(['NAMESPACE', 'NAME', 'MODE', 'SELECTOR'], p.peerAuthentications.map((a) => [a.namespace, a.name, a.mode, selectorText(a.selector)])),
  ].join('\n');
}

export interface TraceView {
  from: string;
  to: string;
  steps: { step: string; result: string }[];
  candidates: { endpoint: string; workload: string; node: string; ready: boolean; ejectedForMs: number; activeConnections: number; allowed: boolean; policy?: string; reason: string }[];
  verdict: string;
}

export function traceTable(t: TraceView): string {
  const lines = [`trace ${t.from} -> ${t.to}`, ...t.steps.map((s) => `  ${s.step.padEnd(10)} ${s.result}`), ''];
  if (t.candidates.length) {
    lines.push(
      table(
        ['ENDPOINT', 'WORKLOAD', 'NODE', 'READY', 'EJECTED', 'ACTIVE', 'POLICY', 'WHY'],
        t.candidates.map((c) => [c.endpoint, c.workload, c.node, c.ready ? 'yes' : 'no', c.ejectedForMs ? `${c.ejectedForMs}ms` : '-', String(c.activeConnections), c.allowed ? 'allow' : 'DENY', c.reason]),
      ),
    );
  }
  lines.push(`verdict: ${t.verdict}`);
  return lines.join('\n') + '\n';
}

interface CertRow {
  identity: string;
  state: string;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  renewAt?: string;
  lastError?: string;
}

export function certsTable(rows: CertRow[] | { error: string }): string {
  if (!Array.isArray(rows)) return `${rows.error}\n`;
  const now = Date.now();
  return table(
    ['IDENTITY', 'STATE', 'SERIAL', 'NOT BEFORE', 'NOT AFTER', 'EXPIRES IN', 'RENEW AT', 'LAST ERROR'],
    rows.map((c) => [
      c.identity,
      c.state,
      c.serial?.slice(0, 16) ?? '-',
      c.notBefore ?? '-',
      c.notAfter ?? '-',
      c.notAfter ? duration(Math.max(0, Date.parse(c.notAfter) - now)) : '-',
      c.renewAt ?? '-',
      c.lastError ?? '',
    ]),
  );
}

const XDS: Shape = fields({ types: list(fields({ type: 'string', 'lastAck?': fields({}), 'lastNack?': fields({}) })) });
const CONFIG: Shape = fields({ source: 'unknown', 'xds?': XDS, 'file?': fields({ 'rejected?': list(fields({})) }) });

/** The shape each agent endpoint's answer must have (only what the tables read is checked). */
export const AGENT_SHAPES: Record<string, Shape> = {
  '/status': fields({
    pending: list('unknown'),
    bpf: fields({ attached: list(fields({})) }),
    config: CONFIG,
    enrolled: list(fields({})),
    'proxyCounters?': fields({}),
  }),
  '/maps': fields({ enrollment: list(fields({})), vips: list(fields({})), originalDestinations: list(fields({})), counters: fields({}) }),
  '/connections': list(fields({})),
  '/workloads': list(fields({ ips: list('unknown') })),
  '/services': list(fields({ clusterIPs: list('unknown'), ports: list(fields({})), endpoints: list(fields({})) })),
  '/policies': fields({ authorizationPolicies: list(fields({ 'selector?': fields({}), 'rules?': 'unknown' })), peerAuthentications: list(fields({ 'selector?': fields({}) })) }),
  '/trace': fields({ from: 'unknown', to: 'unknown', steps: list(fields({ step: 'string' })), candidates: list(fields({})), verdict: 'string' }),
  '/logging': fields({ levels: fields({}), accessLog: 'boolean' }),
  '/certs': anyOf(list(fields({ 'serial?': 'string', 'notAfter?': 'string' })), fields({ error: 'string' })),
};

/**
 * Whether a trace verdict means the connection would be captured and
 * allowed (sluicectl trace exits 0), rather than refused, denied, reset or
 * not captured (exit 1).
 */
export function traceAllows(verdict: string): boolean {
  return verdict.startsWith('captured and allowed');
}

export interface LoggingView {
  levels: Record<string, string>;
  accessLog: boolean;
}

/** `sluicectl log` / `access-log`: the level of each component and the access log's state. */
export function loggingTable(v: LoggingView): string {
  const rows = Object.entries(v.levels).map(([component, level]) => `${component.padEnd(14)} ${level}`);
  return `${'COMPONENT'.padEnd(14)} LEVEL\n${rows.join('\n')}\n\naccess log: ${v.accessLog ? 'on' : 'off'}\n`;
}
