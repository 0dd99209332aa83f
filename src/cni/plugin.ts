// sluice-cni: a chained CNI plugin (SPEC.md 1.0.0 and 1.1.0). It runs after
// the node's primary plugin, passes the primary's result through unchanged,
// and tells the node agent about the pod before the pod's containers start.
//
// ADD    meshed pod (or one the node cannot rule out): the agent must answer
//        that the pod is enrolled, else error 11 and the kubelet retries;
//        pod outside the mesh: reported when the agent answers, never blocked;
//        host network, excluded namespace, not a pod: passed through untouched.
// DEL    removes the pod's record; idempotent, never fails for an unknown pod.
// CHECK  the pod's record is there, for the same sandbox and netns.
// STATUS the agent takes reports (else 50).
// GC     removes records of sandboxes that are no longer valid attachments.
import * as fs from 'node:fs';
import { agentRequest } from './agent-client';
import { PODS_PATH, STATUS_PATH, recordOfReport, type PodAnswer, type PodReport } from './agent-protocol';
import {
  CNI_ERROR,
  CniError,
  LATEST_VERSION,
  compareVersions,
  hostInterfaceOf,
  parseNetConf,
  podFromArgs,
  readCniEnv,
  resultIps,
  versionAnswer,
  type CniEnv,
  type NetConf,
} from './cni-spec';
import { meshNeed, parseMeshRecord, type MeshRecord } from './mesh-record';
import { pluginConf, type PluginConf } from './plugin-conf';
import { listPodRecords, readPodRecord, removePodRecords, writePodRecord } from './pod-record';

export interface PluginOutcome {
  /** What goes to stdout: a result, an error object, or nothing. */
  stdout: string;
  exitCode: number;
  /** A line for the runtime's log (stderr); never parsed. */
  log?: string;
}

/**
 * Runs one invocation. Never throws: every failure becomes the spec's error
 * object on stdout with a non-zero exit, and a malformed invocation touches
 * nothing on the node.
 */
export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<PluginOutcome> {
  let cniVersion = LATEST_VERSION;
  try {
    if (env.CNI_COMMAND === 'VERSION') return ok(JSON.stringify(versionAnswer(stdin)));
    const cni = readCniEnv(env);
    const conf = parseNetConf(stdin);
    cniVersion = conf.cniVersion;
    const own = pluginConf(conf.raw);
    switch (cni.command) {
      case 'ADD':
        return await add(cni, conf, own);
      case 'DEL':
        return del(cni, conf, own);
      case 'CHECK':
        return check(cni, conf, own);
      case 'STATUS':
        return await status(own);
      case 'GC':
        return gc(conf, own);
      default:
        throw new CniError(CNI_ERROR.invalidEnvironment, `CNI_COMMAND ${cni.command} is not handled`);
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CNI_ERROR.ioFailure, (err as Error).message);
    return { stdout: JSON.stringify(e.toJSON(cniVersion)), exitCode: 1, log: `sluice-cni: ${e.message}` };
  }
}

function ok(stdout: string, log?: string): PluginOutcome {
  return { stdout, exitCode: 0, ...(log ? { log } : {}) };
}

/** The result ADD prints: the previous plugin's, unchanged (SPEC.md "Chained plugins"). */
function passThrough(conf: NetConf): string {
  const prev = conf.prevResult!;
  return JSON.stringify(prev.cniVersion === undefined ? { cniVersion: conf.cniVersion, ...prev } : prev);
}

function readMeshRecord(file: string): MeshRecord | undefined {
  try {
    return parseMeshRecord(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

async function add(cni: CniEnv, conf: NetConf, own: PluginConf): Promise<PluginOutcome> {
  if (!conf.prevResult) {
    throw new CniError(CNI_ERROR.invalidConfig, 'sluice-cni is a chained plugin: it needs prevResult from the primary plugin', 'add it after the primary plugin in the conflist');
  }
  const pod = podFromArgs(cni.args);
  const need = meshNeed(pod, cni.netns, own.excludeNamespaces, readMeshRecord(own.meshRecord));
  const label = pod ? `${pod.namespace}/${pod.name}` : cni.containerId;
  if (need.kind === 'skip') return ok(passThrough(conf), `sluice-cni: ${label}: passed through: ${need.reason}`);
  if (!pod!.uid) {
    if (need.kind === 'optional') return ok(passThrough(conf), `sluice-cni: ${label}: not reported (no K8S_POD_UID); ${need.reason}`);
    throw new CniError(CNI_ERROR.invalidEnvironment, 'CNI_ARGS: K8S_POD_UID is missing; the pod cannot be reported to the sluice agent', need.reason);
  }
  const report: PodReport = {
    uid: pod!.uid,
    namespace: pod!.namespace,
    name: pod!.name,
    netns: cni.netns,
    containerId: cni.containerId,
    ifname: cni.ifname,
    ips: resultIps(conf.prevResult),
    hostInterface: hostInterfaceOf(conf.prevResult, cni.ifname),
    waitMs: Math.max(0, own.agentTimeoutMs - 500),
  };
  let failure: string;
  try {
    const answer = await agentRequest(own.agentSocket, 'POST', PODS_PATH, report, own.agentTimeoutMs);
    if (answer.status === 200) {
      const a = answer.body as PodAnswer;
      return ok(passThrough(conf), `sluice-cni: ${label}: ${a?.enrolled ? 'enrolled' : `not enrolled: ${a?.reason ?? ''}`}`);
    }
    const why = (answer.body as { error?: string })?.error ?? `status ${answer.status}`;
    if (answer.status === 400) throw new CniError(CNI_ERROR.agentRefused, `the sluice agent refused the report of ${label}: ${why}`);
    failure = `the sluice agent did not enroll ${label}: ${why}`;
  } catch (err) {
    if (err instanceof CniError) throw err;
    failure = `the sluice agent at ${own.agentSocket} cannot be reached: ${(err as Error).message}`;
  }
  if (need.kind === 'optional') {
    // Leave the record for the agent to find when it is back (it may enroll the pod later).
    writePodRecord(own.podNetnsDir, { ...recordOfReport(report), reportedBy: 'sluice-cni', reportedAt: new Date().toISOString() });
    return ok(passThrough(conf), `sluice-cni: ${label}: ${failure}; passed through: ${need.reason}`);
  }
  throw new CniError(CNI_ERROR.tryAgainLater, failure, `${need.reason}; a meshed pod never runs outside the mesh, so the pod waits for the agent`);
}


function del(cni: CniEnv, conf: NetConf, own: PluginConf): PluginOutcome {
  // Lenient by design (SPEC.md "DEL"): a pod nobody knows, a gone netns or
  // odd CNI_ARGS still succeed; the registry drops the pod when its record goes.
  let uid: string | undefined;
  try {
    uid = podFromArgs(cni.args)?.uid || undefined;
  } catch {
    uid = undefined;
  }
  const removed = removePodRecords(own.podNetnsDir, cni.containerId, uid);
  return ok('', `sluice-cni: DEL ${cni.containerId} (${conf.name}): ${removed} record(s) removed`);
}

function check(cni: CniEnv, conf: NetConf, own: PluginConf): PluginOutcome {
  if (compareVersions(conf.cniVersion, '0.4.0') < 0) throw new CniError(CNI_ERROR.incompatibleVersion, `CHECK needs cniVersion 0.4.0 or later (got ${conf.cniVersion})`);
  if (!conf.prevResult) throw new CniError(CNI_ERROR.invalidConfig, 'CHECK needs prevResult from the primary plugin');
  const pod = podFromArgs(cni.args);
  const need = meshNeed(pod, cni.netns, own.excludeNamespaces, readMeshRecord(own.meshRecord));
  if (need.kind === 'skip' || !pod!.uid) return ok('');
  const record = readPodRecord(own.podNetnsDir, pod!.uid);
  const label = `${pod!.namespace}/${pod!.name}`;
  if (!record) throw new CniError(CNI_ERROR.recordMismatch, `${label} has no record in ${own.podNetnsDir}: the agent does not know the pod`);
  if ((record.containerId && record.containerId !== cni.containerId) || record.netns !== cni.netns) {
    throw new CniError(CNI_ERROR.recordMismatch, `${label}: the record in ${own.podNetnsDir} is for sandbox ${record.containerId} and netns ${record.netns}`);
  }
  return ok('');
}

async function status(own: PluginConf): Promise<PluginOutcome> {
  let why: string;
  try {
    const answer = await agentRequest(own.agentSocket, 'GET', STATUS_PATH, undefined, Math.min(own.agentTimeoutMs, 2000));
    if (answer.status === 200) return ok('');
    const pending = (answer.body as { pending?: string[] })?.pending;
    why = `the sluice agent is not ready${pending?.length ? `: waiting for ${pending.join(', ')}` : ''}`;
  } catch (err) {
    why = `the sluice agent at ${own.agentSocket} cannot be reached: ${(err as Error).message}`;
  }
  throw new CniError(CNI_ERROR.notAvailable, why, 'ADD fails for pods of meshed namespaces until the agent answers');
}

function gc(conf: NetConf, own: PluginConf): PluginOutcome {
  // SPEC.md 1.1.0 "GC": cni.dev/valid-attachments lists what must be kept.
  const valid = conf.raw['cni.dev/valid-attachments'];
  if (!Array.isArray(valid)) throw new CniError(CNI_ERROR.invalidConfig, 'GC needs cni.dev/valid-attachments (an array)');
  const keep = new Set(valid.map((a) => (a as { containerID?: unknown })?.containerID).filter((id): id is string => typeof id === 'string'));
  let removed = 0;
  for (const r of listPodRecords(own.podNetnsDir)) {
    if (r.containerId && !keep.has(r.containerId)) removed += removePodRecords(own.podNetnsDir, r.containerId, r.uid);
  }
  return ok('', `sluice-cni: GC removed ${removed} record(s)`);
}
