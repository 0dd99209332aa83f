// Editing the node's primary CNI configuration to chain sluice-cni last, as
// istio-cni does. Pure: text in, text out; install.ts does the files.
//
// SPEC.md "Network configuration lists": {cniVersion, name, plugins: [...]},
// plugins run in order on ADD, in reverse on DEL; a chained plugin sees the
// previous one's result as prevResult.

export const PLUGIN_TYPE = 'sluice-cni';

/** The files a runtime reads from the CNI config directory (libcni ConfFiles). */
export function isCniConfigFile(name: string): boolean {
  return !name.startsWith('.') && (name.endsWith('.conflist') || name.endsWith('.conf') || name.endsWith('.json'));
}

/**
 * The primary configuration: the runtime uses the first file in lexical
 * order (containerd, CRI-O), so that is the one to chain onto. Undefined when
 * the directory holds none (the primary CNI has not written it yet).
 */
export function primaryConfigFile(names: readonly string[]): string | undefined {
  return [...names].filter(isCniConfigFile).sort()[0];
}

/**
 * Parses a config file's text as a conflist. A single-plugin `.conf` becomes
 * a list of that one plugin (keeping its cniVersion and name). Throws an Error
 * saying what is wrong when it is neither.
 */
export function asConflist(text: string): Record<string, unknown> & { plugins: Record<string, unknown>[] } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('not a JSON object');
  const c = o as Record<string, unknown>;
  if (Array.isArray(c.plugins)) {
    if (c.plugins.some((p) => typeof p !== 'object' || p === null || Array.isArray(p))) throw new Error('plugins must be objects');
    return c as Record<string, unknown> & { plugins: Record<string, unknown>[] };
  }
  if (typeof c.type === 'string') {
    const { cniVersion, name, ...plugin } = c;
    return { cniVersion, name, plugins: [plugin] };
  }
  throw new Error('neither a conflist (plugins) nor a plugin configuration (type)');
}

/** True when sluice-cni is the last plugin and its entry is exactly `entry`. */
export function hasSluiceLast(list: { plugins: Record<string, unknown>[] }, entry: Record<string, unknown>): boolean {
  const last = list.plugins[list.plugins.length - 1];
  return last !== undefined && list.plugins.filter((p) => p.type === PLUGIN_TYPE).length === 1 && JSON.stringify(last) === JSON.stringify(entry);
}

/**
 * The conflist with sluice-cni as its last plugin, once: an earlier sluice-cni
 * entry (anywhere, any settings) is replaced; every other plugin, its order
 * and every other field stay as they were. `entry.type` must be sluice-cni.
 * Returns undefined when the text already is that (nothing to write).
 */
export function insertSluice(text: string, entry: Record<string, unknown>): string | undefined {
  if (entry.type !== PLUGIN_TYPE) throw new Error(`the entry's type must be ${PLUGIN_TYPE}`);
  const list = asConflist(text);
  if (hasSluiceLast(list, entry) && Array.isArray((JSON.parse(text) as { plugins?: unknown }).plugins)) return undefined;
  list.plugins = [...list.plugins.filter((p) => p.type !== PLUGIN_TYPE), entry];
  return `${JSON.stringify(list, null, 2)}\n`;
}

/** The conflist without any sluice-cni entry; undefined when there is none (nothing to write). */
export function removeSluice(text: string): string | undefined {
  const list = asConflist(text);
  if (!list.plugins.some((p) => p.type === PLUGIN_TYPE)) return undefined;
  list.plugins = list.plugins.filter((p) => p.type !== PLUGIN_TYPE);
  return `${JSON.stringify(list, null, 2)}\n`;
}
