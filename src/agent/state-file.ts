// The last good state, persisted so that an agent restarting while the
// control plane is away comes up serving. Written atomically (temp file,
// fsync, rename); read back through the same validation as any other input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateAuthorizationPolicy, validatePeerAuthentication, type AuthorizationPolicy, type PeerAuthentication } from '../model/policy';
import { validateSnapshot, type Rejection } from '../model/validate';
import type { StoreContents } from './resource-store';

export interface PersistedState {
  snapshot: StoreContents;
  /** typeUrl -> resource name -> version, for initial_resource_versions on reconnect. */
  versions: Record<string, Record<string, string>>;
  savedAt: string;
}

const FILE = 'state.json';

export function saveState(dir: string, state: PersistedState): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, FILE);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(state));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** undefined when there is no saved state; throws when it exists but cannot be used. */
export function loadState(dir: string): { state: PersistedState; rejected: Rejection[] } | undefined {
  const file = path.join(dir, FILE);
  if (!fs.existsSync(file)) return undefined;
  let raw: { snapshot?: { authorizationPolicies?: AuthorizationPolicy[]; peerAuthentications?: PeerAuthentication[] }; versions?: unknown; savedAt?: unknown };
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  const { snapshot: base, rejected } = validateSnapshot({ ...raw.snapshot, authorizationPolicies: undefined, peerAuthentications: undefined });
  const policies = (raw.snapshot?.authorizationPolicies ?? []).filter((p) => {
    const problem = validateAuthorizationPolicy(p);
    if (problem) rejected.push({ kind: 'AuthorizationPolicy', name: `${p.namespace}/${p.name}`, reason: problem });
    return !problem;
  });
  const peers = (raw.snapshot?.peerAuthentications ?? []).filter((p) => !validatePeerAuthentication(p));
  const snapshot: StoreContents = { ...base, authorizationPolicies: policies, peerAuthentications: peers };
  const versions = (raw.versions && typeof raw.versions === 'object' ? raw.versions : {}) as Record<string, Record<string, string>>;
  return { state: { snapshot, versions, savedAt: String(raw.savedAt ?? '') }, rejected };
}
