// sluice-cni's own keys in its entry of the node's conflist. Pure.
import { CNI_ERROR, CniError } from './cni-spec';

export interface PluginConf {
  /** Unix socket where the node agent takes pod reports. */
  agentSocket: string;
  /** The agent's pod netns directory: one record per pod, `<dir>/<pod uid>.json`. */
  podNetnsDir: string;
  /** The agent's record of which namespaces are meshed (see mesh-record.ts). */
  meshRecord: string;
  /** Namespaces the mesh never touches: no agent call, never blocked. */
  excludeNamespaces: string[];
  /** How long ADD waits for the agent to enroll a pod, milliseconds. */
  agentTimeoutMs: number;
}

export const DEFAULT_PLUGIN_CONF: Readonly<PluginConf> = Object.freeze({
  agentSocket: '/run/sluice/cni.sock',
  podNetnsDir: '/run/sluice/pods',
  meshRecord: '/var/lib/sluice/meshed-namespaces.json',
  excludeNamespaces: ['kube-system', 'sluice-system'],
  agentTimeoutMs: 10000,
});

/**
 * The plugin's keys from the network configuration, defaults for those
 * absent. Throws CniError code 7 (invalid network config) naming the key and
 * value at fault: paths must be absolute, `excludeNamespaces` an array of
 * strings, `agentTimeoutMs` an integer from 100 to 120000.
 */
export function pluginConf(raw: Record<string, unknown>): PluginConf {
  const conf: PluginConf = { ...DEFAULT_PLUGIN_CONF, excludeNamespaces: [...DEFAULT_PLUGIN_CONF.excludeNamespaces] };
  const bad: string[] = [];
  for (const key of ['agentSocket', 'podNetnsDir', 'meshRecord'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !v.startsWith('/')) bad.push(`${key} must be an absolute path (got ${JSON.stringify(v)})`);
    else conf[key] = v;
  }
  const ex = raw.excludeNamespaces;
  if (ex !== undefined) {
    if (!Array.isArray(ex) || ex.some((n) => typeof n !== 'string')) bad.push(`excludeNamespaces must be an array of namespace names (got ${JSON.stringify(ex)})`);
    else conf.excludeNamespaces = ex as string[];
  }
  const t = raw.agentTimeoutMs;
  if (t !== undefined) {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > 120000) bad.push(`agentTimeoutMs must be an integer from 100 to 120000 (got ${JSON.stringify(t)})`);
    else conf.agentTimeoutMs = t;
  }
  if (bad.length) throw new CniError(CNI_ERROR.invalidConfig, `invalid sluice-cni configuration: ${bad.join('; ')}`);
  return conf;
}
