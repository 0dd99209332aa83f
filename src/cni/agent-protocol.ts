// What sluice-cni and the node agent say to each other over the agent's unix
// socket: HTTP/1.1 with JSON bodies.
//
//   POST /v1/pods   PodReport -> 200 PodAnswer       the pod is enrolled, or known not to need it
//                             -> 400 {error}         the report is malformed
//                             -> 503 {error}         not decided in time (not synced, pod unknown yet)
//   GET  /v1/status           -> 200 {ready: true}   the agent can take reports
//                             -> 503 {ready: false, pending: [...]}
//
// Pure: the shapes and their validation, used on both sides.
import type { PodRecord } from './pod-record';

export const PODS_PATH = '/v1/pods';
export const STATUS_PATH = '/v1/status';

export interface PodReport {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  containerId: string;
  ifname: string;
  ips: string[];
  hostInterface?: string;
  /** How long the agent may wait for the pod to be enrolled before answering 503, milliseconds. */
  waitMs: number;
}

export interface PodAnswer {
  enrolled: boolean;
  /** Why not, when not enrolled. */
  reason?: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,127}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Checks a report; returns it typed, or throws an Error naming the field and
 * value at fault. `uid` becomes a file name, so it must not hold a path.
 */
export function validatePodReport(body: unknown): PodReport {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('report must be a JSON object');
  const o = body as Record<string, unknown>;
  const bad: string[] = [];
  const str = (key: string, re?: RegExp) => {
    if (typeof o[key] !== 'string' || (re && !re.test(o[key] as string))) bad.push(`${key} (got ${JSON.stringify(o[key])})`);
  };
  str('uid', UID);
  str('namespace', NAME);
  str('name', NAME);
  str('containerId', CONTAINER_ID);
  str('ifname');
  if (typeof o.netns !== 'string' || !o.netns.startsWith('/')) bad.push(`netns (got ${JSON.stringify(o.netns)})`);
  if (!Array.isArray(o.ips) || o.ips.some((ip) => typeof ip !== 'string')) bad.push(`ips (got ${JSON.stringify(o.ips)})`);
  if (o.hostInterface !== undefined && typeof o.hostInterface !== 'string') bad.push(`hostInterface (got ${JSON.stringify(o.hostInterface)})`);
  if (typeof o.waitMs !== 'number' || !(o.waitMs >= 0 && o.waitMs <= 120000)) bad.push(`waitMs (got ${JSON.stringify(o.waitMs)})`);
  if (bad.length) throw new Error(`invalid ${bad.join(', ')}`);
  return o as unknown as PodReport;
}

/** The node-local record of a reported pod (without who wrote it and when). */
export function recordOfReport(r: PodReport): PodRecord {
  return { uid: r.uid, namespace: r.namespace, name: r.name, netns: r.netns, containerId: r.containerId, ifname: r.ifname, ips: r.ips, ...(r.hostInterface ? { hostInterface: r.hostInterface } : {}) };
}
