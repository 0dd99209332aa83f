// Tables of sluicectl --control: the control plane's /status, /resources and
// /agents, with the shape each answer must have.
import { type Shape, fields, list } from './answer-shape';
import { duration, table } from './output';

interface StreamView {
  id: number;
  node: string;
  peer: string;
  connectedAt: string;
  types: { type: string; resources: number; lastAckNonce: string; lastNack?: { nonce: string; message: string; at: string } }[];
}

const STREAM: Shape = fields({ node: 'unknown', peer: 'unknown', connectedAt: 'unknown', types: list(fields({ type: 'string', 'lastNack?': fields({}) })) });

export interface ControlStatusView {
  version: string;
  listen: string;
  manifests: string;
  manifestDigest: string;
  publishedAt: string;
  fileProblems: { file: string; reason: string }[];
  objectErrors: string[];
  /** What valid objects ask for that is not served (older control planes do not send it). */
  objectWarnings?: string[];
  /** With the Kubernetes API as source: each watched resource's state. */
  kubernetes?: { server: string; resources: { resource: string; synced: boolean; resourceVersion: string; objects: number; lastError: string }[] } | null;
  counters: { pushes: number; acks: number; nacks: number };
  certificates: Record<string, number> | null;
  streams: StreamView[];
}

export const CONTROL_STATUS_SHAPE: Shape = fields({
  version: 'unknown',
  listen: 'unknown',
  manifests: 'unknown',
  fileProblems: list(fields({})),
  objectErrors: list('unknown'),
  'objectWarnings?': list('unknown'),
  counters: fields({}),
  'certificates?': fields({}),
  streams: list(STREAM),
});

function since(at: string): string {
  const t = Date.parse(at);
  return Number.isNaN(t) ? String(at || '-') : `${at} (${duration(Math.max(0, Date.now() - t))} ago)`;
}

function agentsTable(streams: StreamView[]): string {
  return table(
    ['NODE', 'PEER', 'CONNECTED', 'RESOURCES SENT', 'LAST NACK'],
    streams.map((s) => [
      s.node || '(not identified yet)',
      s.peer,
      since(s.connectedAt),
      s.types.map((t) => `${t.type.replace(/^type\.googleapis\.com\/(sluice\.v1\.)?/, '')}=${t.resources}`).join(' ') || '-',
      s.types.filter((t) => t.lastNack).map((t) => `${t.type.replace(/^.*\./, '')}: ${t.lastNack!.message}`).join('; ') || '-',
    ]),
  );
}

/** The control plane's /status as text. */
export function controlStatusTable(s: ControlStatusView): string {
  const lines = [
    `version:       ${s.version || '-'}${s.publishedAt ? `, published ${since(s.publishedAt)}` : ''}`,
    `listen:        ${s.listen}`,
    s.kubernetes
      ? `kubernetes:    ${s.kubernetes.server} (${s.kubernetes.resources.map((r) => `${r.resource}=${r.synced ? r.objects : 'not synced'}`).join(' ')})`
      : `manifests:     ${s.manifests}${s.manifestDigest ? ` (digest ${String(s.manifestDigest).slice(0, 12)})` : ''}`,
    `xDS:           ${Object.entries(s.counters).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `certificates:  ${s.certificates ? Object.entries(s.certificates).map(([k, v]) => `${k}=${v}`).join(' ') : 'not issued (no --node-secret-file)'}`,
  ];
  for (const p of s.fileProblems) lines.push(`file problem:  ${p.file}: ${p.reason}`);
  for (const e of s.objectErrors) lines.push(`rejected:      ${e}`);
  for (const w of s.objectWarnings ?? []) lines.push(`not served:    ${w}`);
  for (const r of s.kubernetes?.resources ?? []) if (r.lastError) lines.push(`api problem:   ${r.resource}: ${r.lastError}`);
  lines.push(`agents:        ${s.streams.length} connected`, '', agentsTable(s.streams).trimEnd());
  return `${lines.join('\n')}\n`;
}

export const AGENTS_SHAPE: Shape = list(STREAM);

/** The control plane's /agents as a table. */
export function controlAgentsTable(streams: StreamView[]): string {
  return agentsTable(streams);
}

interface ResourcesView {
  version: string;
  workloads: { namespace: string; name: string; node: string; ips: string[]; identity: string; captured: boolean; ready: boolean }[];
  services: { namespace: string; name: string; clusterIPs: string[]; ports: { port: number; targetPort: number }[]; endpoints: { address: string; node: string; ready: boolean }[] }[];
  authorizationPolicies: { namespace: string; name: string; action: string }[];
  peerAuthentications: { namespace: string; name: string; mode: string }[];
}

export const RESOURCES_SHAPE: Shape = fields({
  version: 'unknown',
  workloads: list(fields({ ips: list('unknown') })),
  services: list(fields({ clusterIPs: list('unknown'), ports: list(fields({})), endpoints: list(fields({})) })),
  authorizationPolicies: list(fields({})),
  peerAuthentications: list(fields({})),
});

/** The control plane's /resources as tables. */
export function controlResourcesTable(r: ResourcesView): string {
  return [
    `version: ${r.version || '-'}\n`,
    'WORKLOADS',
    table(
      ['NAMESPACE', 'NAME', 'NODE', 'IP', 'IDENTITY', 'IN MESH', 'READY'],
      r.workloads.map((w) => [w.namespace, w.name, w.node, w.ips.join(','), w.identity, w.captured ? 'yes' : 'no', w.ready ? 'yes' : 'no']),
    ),
    'SERVICES',
    table(
      ['NAMESPACE', 'NAME', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
      r.services.map((s) => [
        s.namespace,
        s.name,
        s.clusterIPs.join(','),
        s.ports.map((p) => `${p.port}->${p.targetPort}`).join(','),
        s.endpoints.length ? s.endpoints.map((e) => `${e.address}${e.ready ? '' : ' (not ready)'}@${e.node}`).join(', ') : '(none)',
      ]),
    ),
    'AUTHORIZATION POLICIES',
    table(['NAMESPACE', 'NAME', 'ACTION'], r.authorizationPolicies.map((a) => [a.namespace, a.name, a.action])),
    'PEER AUTHENTICATION',
    table(['NAMESPACE', 'NAME', 'MODE'], r.peerAuthentications.map((a) => [a.namespace, a.name, a.mode])),
  ].join('\n');
}
