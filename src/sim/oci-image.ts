// Reading an OCI image archive (what `npm run image` writes) without a
// container engine: the image's config, and its root filesystem unpacked
// layer by layer. Follows the OCI image specification v1.1: an archive is a
// tar of an image layout (index.json, blobs/sha256/...); a manifest lists
// the layers, bottom first; a layer is a (possibly gzipped) tar in which
// `.wh.NAME` deletes NAME of the layers below and `.wh..wh..opq` empties its
// directory ("Representing Changes", layer.md).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The parts of an image's config (config.md) the sim uses. */
export interface ImageConfig {
  /** "KEY=value" entries. */
  env: string[];
  cmd: string[];
  entrypoint: string[];
  workingDir: string;
  labels: Record<string, string>;
}

/** An image unpacked by unpackImage: its root filesystem directory and config. */
export interface UnpackedImage {
  /** The reference the archive was saved under (annotation org.opencontainers.image.ref.name), or ''. */
  ref: string;
  rootfs: string;
  config: ImageConfig;
  /** Layer digests, bottom first. */
  layers: string[];
}

interface Descriptor {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

function tar(args: string[]): string {
  try {
    return execFileSync('tar', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`tar ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

function blobPath(layout: string, digest: string, where: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`${where}: digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
  const file = path.join(layout, 'blobs', 'sha256', m[1]);
  if (!fs.existsSync(file)) throw new Error(`${where}: blob ${digest} is missing from the archive`);
  return file;
}

function readJson<T>(file: string, what: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new Error(`${what} (${file}): ${(err as Error).message}`);
  }
}

/** Applies one layer's whiteouts to what the layers below left in rootfs. */
function applyWhiteouts(rootfs: string, entries: string[]): void {
  for (const entry of entries) {
    const rel = entry.replace(/^\.\//, '').replace(/\/$/, '');
    const dir = path.dirname(rel);
    const base = path.basename(rel);
    if (!base.startsWith('.wh.')) continue;
    const target = path.resolve(rootfs, dir);
    if (target !== rootfs && !target.startsWith(`${rootfs}/`)) throw new Error(`layer entry ${JSON.stringify(entry)} points outside the root filesystem`);
    if (base === '.wh..wh..opq') {
      if (fs.existsSync(target)) for (const e of fs.readdirSync(target)) fs.rmSync(path.join(target, e), { recursive: true, force: true });
    } else {
      fs.rmSync(path.join(target, base.slice('.wh.'.length)), { recursive: true, force: true });
    }
  }
}

/**
 * Unpacks an OCI archive's single image into `dir` (`dir/layout` holds the
 * archive's blobs, `dir/rootfs` the root filesystem). Throws an Error naming
 * the archive and the part that is wrong (not an image layout, more than
 * one image, a missing blob, a layer entry escaping the root).
 */
export function unpackImage(archive: string, dir: string): UnpackedImage {
  if (!fs.existsSync(archive)) throw new Error(`${archive}: no such image archive (build one with "npm run image")`);
  const layout = path.join(dir, 'layout');
  const rootfs = path.join(dir, 'rootfs');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(layout, { recursive: true });
  fs.mkdirSync(rootfs, { recursive: true });
  tar(['-xf', archive, '-C', layout]);
  const index = readJson<{ manifests?: Descriptor[] }>(path.join(layout, 'index.json'), `${archive}: index.json`);
  const manifests = index.manifests ?? [];
  if (manifests.length !== 1) throw new Error(`${archive}: index.json lists ${manifests.length} manifests, expected one image`);
  const where = `${archive}: manifest ${manifests[0].digest}`;
  const manifest = readJson<{ config: Descriptor; layers: Descriptor[] }>(blobPath(layout, manifests[0].digest, where), where);
  const raw = readJson<{ config?: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; Labels?: Record<string, string> } }>(
    blobPath(layout, manifest.config.digest, `${where}: config`),
    `${where}: config`,
  ).config ?? {};
  for (const layer of manifest.layers) {
    const file = blobPath(layout, layer.digest, `${where}: layer`);
    applyWhiteouts(rootfs, tar(['-tf', file]).split('\n').filter((e) => path.basename(e.replace(/\/$/, '')).startsWith('.wh.')));
    tar(['-xf', file, '-C', rootfs, '--same-owner', '--preserve-permissions', '--exclude=.wh.*', '--exclude=*/.wh.*']);
  }
  return {
    ref: manifests[0].annotations?.['org.opencontainers.image.ref.name'] ?? '',
    rootfs,
    config: { env: raw.Env ?? [], cmd: raw.Cmd ?? [], entrypoint: raw.Entrypoint ?? [], workingDir: raw.WorkingDir ?? '/', labels: raw.Labels ?? {} },
    layers: manifest.layers.map((l) => l.digest),
  };
}
