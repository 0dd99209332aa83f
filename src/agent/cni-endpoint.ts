// The agent's side of sluice-cni (src/cni/): a unix socket where the plugin
// reports each new pod before its containers start, the node-local record of
// which namespaces are meshed (read by the plugin when the agent is away), and
// the search, at start, for pods that were running before the agent.
//
// A report is answered only once the pod is enrolled or known not to need it:
// the endpoint writes the pod's record into the pod netns directory (which the
// registry watches), then waits for the reconciler to enroll the pod.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { PODS_PATH, STATUS_PATH, recordOfReport, validatePodReport, type PodAnswer, type PodReport } from '../cni/agent-protocol';
import { meshRecordFrom, sameMeshRecord, type MeshRecord, type WorkloadFacts } from '../cni/mesh-record';
import { listPodRecords, writePodRecord, type PodRecord } from '../cni/pod-record';
import { writeFileAtomic } from '../files/atomic-write';

/** The record's file name in the agent's --state-dir. */
export const MESH_RECORD_FILE = 'meshed-namespaces.json';
const POLL_MS = 20;
const MAX_BODY = 64 * 1024;

export interface LocalWorkload extends WorkloadFacts {
  name: string;
  ips: string[];
}

export interface CniEndpointDeps {
  node: string;
  /** Unix socket the plugin talks to ('' = none). */
  socketPath: string;
  podNetnsDir: string;
  /** Where the meshed-namespaces record is written. */
  meshRecordFile: string;
  /** Directory of the node's named network namespaces searched at start ('' = no search). */
  hostNetnsDir: string;
  workload(uid: string): LocalWorkload | undefined;
  /** Enrolled: the pod's netns cookie is in the enrollment map. */
  enrolled(uid: string): boolean;
  /** Why the registry could not resolve the pod's netns, if it could not. */
  podError(uid: string): string | undefined;
  /** Readiness blockers still pending. */
  pending(): string[];
  logger: Logger;
}

/**
 * The unix socket sluice-cni reports pods to: writes the pod's record and
 * answers once the pod is enrolled (or with the reason it cannot be).
 */
export class CniEndpoint {
  private server?: http.Server;
  private record?: MeshRecord;
  private searched = false;

  constructor(private readonly deps: CniEndpointDeps) {}

  /** Listens on the socket (replacing a stale one); no-op when socketPath is ''. */
  async listen(): Promise<void> {
    const { socketPath } = this.deps;
    if (!socketPath) return;
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    fs.rmSync(socketPath, { force: true });
    const server = http.createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`listen ${socketPath}: ${err.message}`)));
      server.listen(socketPath, () => resolve());
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections?.();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /**
   * Called after every reconcile with the control plane's workloads: rewrites
   * the meshed-namespaces record when it changed, and the first time, looks
   * for this node's pods that run without a record (started before sluice).
   */
  workloadsChanged(workloads: Iterable<LocalWorkload>): void {
    const list = [...workloads];
    const next = meshRecordFrom(list, this.deps.node);
    if (!sameMeshRecord(this.record, next)) {
      try {
        writeFileAtomic(this.deps.meshRecordFile, `${JSON.stringify(next, null, 2)}\n`);
        this.record = next;
      } catch (err) {
        this.deps.logger.error(`cannot write ${this.deps.meshRecordFile}: ${(err as Error).message}`);
      }
    }
    if (!this.searched && this.deps.hostNetnsDir) {
      this.searched = true;
      void this.findRunningPods(list.filter((w) => w.node === this.deps.node));
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://local');
    if (req.method === 'GET' && url.pathname === STATUS_PATH) {
      const pending = this.deps.pending();
      return send(pending.length ? 503 : 200, pending.length ? { ready: false, pending } : { ready: true });
    }
    if (req.method !== 'POST' || url.pathname !== PODS_PATH) return send(404, { error: `no such endpoint ${req.method} ${url.pathname}` });
    let report: PodReport;
    try {
      report = validatePodReport(JSON.parse(await readBody(req)));
    } catch (err) {
      return send(400, { error: (err as Error).message });
    }
    const log = this.deps.logger.child({ pod: `${report.namespace}/${report.name}`, uid: report.uid });
    try {
      writePodRecord(this.deps.podNetnsDir, { ...recordOfReport(report), reportedBy: 'agent', reportedAt: new Date().toISOString() });
    } catch (err) {
      log.error(`cannot write the pod's record: ${(err as Error).message}`);
      return send(503, { error: `cannot write the pod's record in ${this.deps.podNetnsDir}: ${(err as Error).message}` });
    }
    const deadline = Date.now() + report.waitMs;
    for (;;) {
      const answer = this.decide(report);
      if (answer) {
        log.info({ enrolled: answer.enrolled, reason: answer.reason }, 'pod reported by sluice-cni');
        return send(200, answer);
      }
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    // Not decided in time. A pod of a namespace known to be outside the mesh may go on.
    const r = this.record;
    if (r && r.unmeshedNamespaces.includes(report.namespace) && !r.meshedNamespaces.includes(report.namespace)) {
      return send(200, { enrolled: false, reason: `namespace ${report.namespace} is not meshed (the pod itself is not known yet)` } satisfies PodAnswer);
    }
    const pending = this.deps.pending();
    const w = this.deps.workload(report.uid);
    const why = pending.length
      ? `the agent is not ready (waiting for ${pending.join(', ')})`
      : !w
        ? 'the control plane has not told this agent about the pod yet'
        : `the pod is in the mesh but not enrolled yet${this.deps.podError(report.uid) ? `: ${this.deps.podError(report.uid)}` : ''}`;
    log.warn(`pod not enrolled within ${report.waitMs} ms: ${why}`);
    return send(503, { error: why });
  }

  private decide(report: PodReport): PodAnswer | undefined {
    const w = this.deps.workload(report.uid);
    if (!w) return undefined;
    if (!w.captured) return { enrolled: false, reason: `${w.namespace}/${w.name} is not in the mesh` };
    return this.deps.enrolled(report.uid) ? { enrolled: true } : undefined;
  }

  /**
   * Pods running before the agent (first install, or pods started while the
   * plugin was not chained): this node's workloads without a record are
   * matched by IP to the network namespaces in hostNetnsDir, and get a record.
   */
  private async findRunningPods(local: LocalWorkload[]): Promise<void> {
    const known = new Set(listPodRecords(this.deps.podNetnsDir).map((r) => r.uid));
    const missing = local.filter((w) => !known.has(w.uid) && w.ips.length > 0);
    if (missing.length === 0) return;
    const log = this.deps.logger;
    let names: string[];
    try {
      names = fs.readdirSync(this.deps.hostNetnsDir);
    } catch (err) {
      log.warn(`cannot list ${this.deps.hostNetnsDir}: ${(err as Error).message}; pods started before the agent stay unknown until re-created`);
      return;
    }
    const netnsIps = new Map<string, string[]>();
    for (const name of names) {
      const netns = path.join(this.deps.hostNetnsDir, name);
      netnsIps.set(netns, await netnsAddresses(netns).catch(() => []));
    }
    for (const record of matchRunningPods(missing, netnsIps)) {
      try {
        writePodRecord(this.deps.podNetnsDir, { ...record, reportedBy: 'netns-scan', reportedAt: new Date().toISOString() });
        log.info({ pod: `${record.namespace}/${record.name}`, netns: record.netns }, 'found a pod that was running before the agent');
      } catch (err) {
        log.error(`cannot write the record of ${record.namespace}/${record.name}: ${(err as Error).message}`);
      }
    }
  }
}

/**
 * Pairs workloads with the network namespace holding one of their IPs. A
 * namespace that holds the IPs of two workloads, or an IP found in two
 * namespaces, is ambiguous and matches nothing. Pure.
 */
export function matchRunningPods(workloads: readonly LocalWorkload[], netnsIps: ReadonlyMap<string, readonly string[]>): PodRecord[] {
  const byIp = new Map<string, string[]>();
  for (const [netns, ips] of netnsIps) for (const ip of ips) byIp.set(ip, [...(byIp.get(ip) ?? []), netns]);
  const claims = new Map<string, LocalWorkload[]>();
  for (const w of workloads) {
    const found = new Set(w.ips.flatMap((ip) => byIp.get(ip) ?? []));
    if (found.size !== 1) continue;
    const netns = [...found][0];
    claims.set(netns, [...(claims.get(netns) ?? []), w]);
  }
  return [...claims].flatMap(([netns, ws]) => (ws.length === 1 ? [{ uid: ws[0].uid, namespace: ws[0].namespace, name: ws[0].name, netns, ips: ws[0].ips }] : []));
}

/** Global unicast addresses inside a network namespace (`nsenter --net=... ip -j addr`). */
function netnsAddresses(netns: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('nsenter', [`--net=${netns}`, 'ip', '-j', 'addr', 'show', 'scope', 'global'], { timeout: 2000 }, (err, stdout) => {
      if (err) return reject(err);
      try {
        const links = JSON.parse(stdout) as { addr_info?: { local?: string }[] }[];
        resolve(links.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [a.local] : []))));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}


function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`report larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
