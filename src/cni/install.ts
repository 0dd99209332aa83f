// Installing sluice-cni on a node, as istio-cni's install step does: copy the
// plugin into the node's CNI bin directory and chain it as the last plugin of
// the node's primary conflist; keep it there if the primary CNI rewrites the
// file; take it out again on uninstall. Paths are the node's, as mounted.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../files/atomic-write';
import { PLUGIN_TYPE, insertSluice, primaryConfigFile, removeSluice } from './conflist';
import { DEFAULT_PLUGIN_CONF, pluginConf, type PluginConf } from './plugin-conf';

/** The modules the plugin runs with, in this folder (compiled); install.ts and conflist.ts stay out. */
const PLUGIN_MODULES = ['cni-spec', 'plugin-conf', 'mesh-record', 'pod-record', 'agent-protocol', 'agent-client', 'plugin', 'main'];
/** Modules from other folders the plugin's modules require, by the specifier they use (built-ins only inside). */
const SHARED_MODULES = ['../files/atomic-write'];

export interface InstallOptions {
  /** The node's CNI bin directory (as mounted here). */
  binDir: string;
  /** The node's CNI config directory (as mounted here). */
  confDir: string;
  /** The Node.js binary copied next to the plugin (the node may have none). */
  nodeBinary: string;
  /** sluice-cni's keys in its conflist entry. */
  conf: PluginConf;
}

/**
 * The plugin as one self-contained script: the compiled modules of this
 * folder wrapped in a tiny module table, so the runtime loads one file and
 * nothing from node_modules. Throws when a module is missing (not built).
 */
export function bundlePlugin(moduleDir = __dirname): string {
  const wrap = (specifier: string, file: string) => {
    const code = fs.readFileSync(file, 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, '');
    return `${JSON.stringify(specifier)}: function (exports, require, module) {\n${code}\n}`;
  };
  const parts = [
    ...PLUGIN_MODULES.map((m) => wrap(`./${m}`, path.join(moduleDir, `${m}.js`))),
    ...SHARED_MODULES.map((m) => wrap(m, path.join(moduleDir, `${m}.js`))),
  ];
  return [
    '#!/usr/bin/env node',
    '// sluice-cni, bundled at install time from the sluice build. Do not edit.',
    "'use strict';",
    `const modules = {\n${parts.join(',\n')}\n};`,
    'const cache = {};',
    'function load(name) {',
    '  if (!(name in modules)) return require(name);',
    '  if (!cache[name]) { const module = { exports: {} }; cache[name] = module; modules[name](module.exports, load, module); }',
    '  return cache[name].exports;',
    '}',
    "load('./main');",
    '',
  ].join('\n');
}

/** The launcher in the bin directory: plain sh (no fork), finds its files next to itself. */
export function launcherScript(): string {
  return '#!/bin/sh\n# sluice-cni launcher, written by `sluice-cni install`.\nd="${0%/*}"\nexec "$d/sluice-cni.d/node" "$d/sluice-cni.d/sluice-cni.js" "$@"\n';
}

/** The plugin's entry in the conflist: only keys that differ from the defaults. */
export function pluginEntry(conf: PluginConf): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: PLUGIN_TYPE };
  for (const [k, v] of Object.entries(conf)) {
    if (JSON.stringify(v) !== JSON.stringify((DEFAULT_PLUGIN_CONF as unknown as Record<string, unknown>)[k])) entry[k] = v;
  }
  return entry;
}

function copyIfChanged(from: string, to: string, mode: number): boolean {
  const src = fs.statSync(from);
  try {
    const dst = fs.statSync(to);
    if (dst.size === src.size && dst.mtimeMs >= src.mtimeMs && (dst.mode & 0o777) === mode) return false;
  } catch {
    // not there yet
  }
  writeFileAtomic(to, fs.readFileSync(from), { mode });
  return true;
}

function writeIfChanged(file: string, text: string, mode: number): boolean {
  try {
    if (fs.readFileSync(file, 'utf8') === text && (fs.statSync(file).mode & 0o777) === mode) return false;
  } catch {
    // not there yet
  }
  writeFileAtomic(file, text, { mode });
  return true;
}

/** Copies launcher, Node.js and the bundled plugin into the bin directory; returns what it changed. */
export function installBinary(opts: InstallOptions): string[] {
  const changed: string[] = [];
  const dir = path.join(opts.binDir, 'sluice-cni.d');
  fs.mkdirSync(dir, { recursive: true });
  if (copyIfChanged(opts.nodeBinary, path.join(dir, 'node'), 0o755)) changed.push(path.join(dir, 'node'));
  if (writeIfChanged(path.join(dir, 'sluice-cni.js'), bundlePlugin(), 0o644)) changed.push(path.join(dir, 'sluice-cni.js'));
  if (writeIfChanged(path.join(opts.binDir, 'sluice-cni'), launcherScript(), 0o755)) changed.push(path.join(opts.binDir, 'sluice-cni'));
  return changed;
}

/**
 * Chains sluice-cni last into the primary config file of `confDir`,
 * atomically (write beside, rename over). A single-plugin `.conf` is replaced
 * by a `.conflist` of the same name. Returns the file written, '' when it
 * already was as wanted, or undefined when there is no config file yet.
 * Throws when the primary file cannot be parsed (it is left alone).
 */
export function chainIntoConfig(confDir: string, entry: Record<string, unknown>): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(confDir);
  } catch {
    return undefined;
  }
  const primary = primaryConfigFile(names);
  if (!primary) return undefined;
  const file = path.join(confDir, primary);
  const text = fs.readFileSync(file, 'utf8');
  let next: string | undefined;
  try {
    next = insertSluice(text, entry);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  if (next === undefined) return '';
  if (primary.endsWith('.conflist')) {
    writeFileAtomic(file, next);
    return file;
  }
  const target = path.join(confDir, `${primary.replace(/\.(conf|json)$/, '')}.conflist`);
  writeFileAtomic(target, next);
  if (target !== file) fs.rmSync(file, { force: true });
  return target;
}

/** Installs binary and config entry; returns the paths it changed. */
export function install(opts: InstallOptions): string[] {
  const changed = installBinary(opts);
  const written = chainIntoConfig(opts.confDir, pluginEntry(opts.conf));
  if (written) changed.push(written);
  return changed;
}

/**
 * The mark an uninstall leaves in this container's own temporary directory
 * (not on the node): `install --watch` running in the same container (the
 * DaemonSet's cni-install, where `kubectl exec` runs uninstall) sees it and
 * stops putting the plugin back. A new container starts without it.
 */
export function uninstallMark(binDir: string, confDir: string): string {
  const id = createHash('sha256').update(`${path.resolve(binDir)}\0${path.resolve(confDir)}`).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `sluice-cni-uninstalled-${id}`);
}

/**
 * Takes sluice-cni out of every config file of `confDir` and removes its
 * files from `binDir`; returns what it changed. Leaves the uninstall mark
 * first, so a watching install in this container does not undo it.
 */
export function uninstall(binDir: string, confDir: string): string[] {
  fs.writeFileSync(uninstallMark(binDir, confDir), `${new Date().toISOString()}\n`);
  const changed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(confDir);
  } catch {
    // no config directory: nothing chained
  }
  for (const name of names.filter((n) => n.endsWith('.conflist'))) {
    const file = path.join(confDir, name);
    let next: string | undefined;
    try {
      next = removeSluice(fs.readFileSync(file, 'utf8'));
    } catch {
      continue; // not ours to judge
    }
    if (next !== undefined) {
      writeFileAtomic(file, next);
      changed.push(file);
    }
  }
  for (const p of [path.join(binDir, 'sluice-cni'), path.join(binDir, 'sluice-cni.d')]) {
    if (fs.existsSync(p)) {
      fs.rmSync(p, { recursive: true, force: true });
      changed.push(p);
    }
  }
  return changed;
}

/**
 * Keeps the installation in place: re-checks when the config directory
 * changes (the primary CNI rewrote its file) and every `intervalMs`, until
 * an uninstall leaves its mark (uninstallMark); `report([], undefined,
 * true)` says so once. Returns a function that stops watching.
 */
export function keepInstalled(opts: InstallOptions, report: (changed: string[], error?: Error, uninstalled?: boolean) => void, intervalMs = 2000): () => void {
  let stopped = false;
  const mark = uninstallMark(opts.binDir, opts.confDir);
  const check = () => {
    if (stopped) return;
    if (fs.existsSync(mark)) {
      stopped = true;
      report([], undefined, true);
      return;
    }
    try {
      const changed = install(opts);
      if (changed.length) report(changed);
    } catch (err) {
      report([], err as Error);
    }
  };
  let watcher: fs.FSWatcher | undefined;
  try {
    fs.mkdirSync(opts.confDir, { recursive: true });
    watcher = fs.watch(opts.confDir, () => setTimeout(check, 50));
  } catch {
    // polling alone still closes the gap
  }
  const timer = setInterval(check, intervalMs);
  return () => {
    stopped = true; // a check the watcher already scheduled must not re-install after an uninstall
    watcher?.close();
    clearInterval(timer);
  };
}

const USAGE = `Usage: sluice-cni install [--watch] [--uninstall-on-exit] [options]
       sluice-cni uninstall [--cni-bin-dir DIR] [--cni-conf-dir DIR]

Copies sluice-cni into the node's CNI bin directory and chains it last into
the node's primary conflist (atomically, once, keeping every other plugin and
field). With --watch it stays running and puts itself back whenever the
primary CNI rewrites its file. uninstall takes it out again, and a watching
install in the same container leaves it out from then on.

Options:
  --cni-bin-dir DIR         the node's CNI bin directory (default /opt/cni/bin)
  --cni-conf-dir DIR        the node's CNI config directory (default /etc/cni/net.d)
  --node PATH               Node.js binary to copy beside the plugin (default: this one)
  --agent-socket PATH       the agent's CNI socket (default ${DEFAULT_PLUGIN_CONF.agentSocket})
  --pod-netns-dir DIR       the agent's --pod-netns-dir (default ${DEFAULT_PLUGIN_CONF.podNetnsDir})
  --mesh-record FILE        the agent's meshed-namespaces record (default ${DEFAULT_PLUGIN_CONF.meshRecord})
  --exclude-namespaces LIST namespaces never touched (default ${DEFAULT_PLUGIN_CONF.excludeNamespaces.join(',')})
  --agent-timeout-ms N      how long ADD waits for the agent (default ${DEFAULT_PLUGIN_CONF.agentTimeoutMs})
  --watch                   keep the plugin installed until stopped
  --uninstall-on-exit       with --watch: uninstall on SIGTERM (off by default: a restart
                            of the DaemonSet must not let meshed pods start unmeshed)
`;

/** `sluice-cni install|uninstall ...`; resolves to the exit code (0 ok, 1 failed, 2 bad command line). */
export async function installCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'cni-bin-dir': { type: 'string', default: '/opt/cni/bin' },
        'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d' },
        node: { type: 'string', default: process.execPath },
        'agent-socket': { type: 'string' },
        'pod-netns-dir': { type: 'string' },
        'mesh-record': { type: 'string' },
        'exclude-namespaces': { type: 'string' },
        'agent-timeout-ms': { type: 'string' },
        watch: { type: 'boolean', default: false },
        'uninstall-on-exit': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`sluice-cni: ${(err as Error).message}\nTry: sluice-cni install --help\n`);
    return 2;
  }
  const v = parsed.values;
  const command = parsed.positionals[0];
  if (v.help || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command !== 'install' && command !== 'uninstall') {
    process.stderr.write(`sluice-cni: unknown command ${JSON.stringify(command)} (expected install or uninstall; the plugin itself runs with CNI_COMMAND set)\nTry: sluice-cni install --help\n`);
    return 2;
  }
  const binDir = v['cni-bin-dir']!;
  const confDir = v['cni-conf-dir']!;
  const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} sluice-cni ${msg}\n`);
  if (command === 'uninstall') {
    const changed = uninstall(binDir, confDir);
    log(changed.length ? `uninstalled: ${changed.join(', ')}` : 'uninstall: nothing was installed');
    return 0;
  }
  let conf: PluginConf;
  try {
    conf = pluginConf({
      ...(v['agent-socket'] !== undefined ? { agentSocket: v['agent-socket'] } : {}),
      ...(v['pod-netns-dir'] !== undefined ? { podNetnsDir: v['pod-netns-dir'] } : {}),
      ...(v['mesh-record'] !== undefined ? { meshRecord: v['mesh-record'] } : {}),
      ...(v['exclude-namespaces'] !== undefined ? { excludeNamespaces: v['exclude-namespaces'].split(',').filter(Boolean) } : {}),
      ...(v['agent-timeout-ms'] !== undefined ? { agentTimeoutMs: Number(v['agent-timeout-ms']) } : {}),
    });
  } catch (err) {
    process.stderr.write(`sluice-cni: ${(err as Error).message}\n`);
    return 2;
  }
  const opts: InstallOptions = { binDir, confDir, nodeBinary: v.node!, conf };
  // An install (a new container, or by hand after an uninstall) is wanted again.
  fs.rmSync(uninstallMark(binDir, confDir), { force: true });
  try {
    const changed = install(opts);
    log(changed.length ? `installed: ${changed.join(', ')}` : 'already installed');
    if (chainIntoConfig(confDir, pluginEntry(conf)) === undefined) log(`no CNI configuration in ${confDir} yet; chaining when the primary CNI writes one`);
  } catch (err) {
    process.stderr.write(`sluice-cni: install failed: ${(err as Error).message}\n`);
    if (!v.watch) return 1;
  }
  if (!v.watch) return 0;
  const stop = keepInstalled(opts, (changed, error, uninstalled) =>
    log(uninstalled ? 'uninstalled by sluice-cni uninstall: no longer putting it back (until the next install)' : error ? `re-install failed: ${error.message}` : `re-installed: ${changed.join(', ')}`),
  );
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  stop();
  if (v['uninstall-on-exit']) {
    const changed = uninstall(binDir, confDir);
    log(`uninstalled on exit: ${changed.join(', ') || 'nothing'}`);
  }
  return 0;
}
