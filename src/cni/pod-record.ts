// The node-local record of one pod: `<pod netns dir>/<pod uid>.json`, read by
// the agent's pod netns registry (src/kernel/pod-netns-registry.ts). Written
// by the agent when the plugin reports a pod, or by the plugin itself when the
// agent is away, so that an agent (re)starting finds every running pod.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../files/atomic-write';

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  /** Path of the pod's network namespace. */
  netns: string;
  /** The pod's interface on the node side (veth peer), if known. */
  hostInterface?: string;
  /** The sandbox container the CNI call was for: DEL removes the record only for the same one. */
  containerId?: string;
  ifname?: string;
  /** The pod's addresses from the primary plugin's result. */
  ips?: string[];
  /** Who wrote it: `agent`, `sluice-cni` (agent away) or `netns-scan` (found at agent start). */
  reportedBy?: string;
  reportedAt?: string;
}

/** `<dir>/<pod uid>.json`. */
export function podRecordPath(dir: string, uid: string): string {
  return path.join(dir, `${uid}.json`);
}

/** Writes the record atomically (the registry may read the directory at any time). */
export function writePodRecord(dir: string, record: PodRecord): void {
  writeFileAtomic(podRecordPath(dir, record.uid), JSON.stringify(record));
}

/** The record of a pod, or undefined when there is none or it cannot be parsed. */
export function readPodRecord(dir: string, uid: string): PodRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(podRecordPath(dir, uid), 'utf8')) as PodRecord;
    return typeof r?.uid === 'string' && typeof r.netns === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Every parseable record in the directory (none if it does not exist). */
export function listPodRecords(dir: string): PodRecord[] {
  let files: string[];
  try {
    files = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return files.flatMap((f) => {
    if (!f.endsWith('.json') || f.startsWith('.')) return [];
    const r = readPodRecord(dir, f.slice(0, -'.json'.length));
    return r ? [r] : [];
  });
}

/**
 * Removes the records of a sandbox: the pod's (when `uid` is known) or every
 * record naming `containerId`. A record written for another sandbox of the
 * same pod (the kubelet re-created it) is kept. Idempotent: returns how many
 * it removed, 0 when there was nothing.
 */
export function removePodRecords(dir: string, containerId: string, uid?: string): number {
  const candidates = uid ? [readPodRecord(dir, uid)].filter((r): r is PodRecord => r !== undefined) : listPodRecords(dir);
  let removed = 0;
  for (const r of candidates) {
    if (uid ? r.containerId !== undefined && r.containerId !== containerId : r.containerId !== containerId) continue;
    fs.rmSync(podRecordPath(dir, r.uid), { force: true });
    removed++;
  }
  return removed;
}
