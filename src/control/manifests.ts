// Reads Kubernetes YAML files into objects, remembering where each came from.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject, SourcedObject } from './kubernetes-objects';

export class ManifestError extends Error {}

export function readManifests(files: string[]): SourcedObject[] {
  return files.flatMap((file) => readManifestFile(file));
}

/** Every *.yaml, *.yml and *.json file under a directory (or the file itself), sorted. */
export function manifestFiles(p: string): string[] {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) throw new ManifestError(`${p}: no such file or directory`);
  if (!st.isDirectory()) return [p];
  return fs
    .readdirSync(p, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? manifestFiles(path.join(p, e.name)) : /\.(ya?ml|json)$/.test(e.name) ? [path.join(p, e.name)] : []))
    .sort();
}

export function readManifestFile(file: string): SourcedObject[] {
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (err) {
    throw new ManifestError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return parseManifestText(file, text);
}

export function parseManifestText(file: string, text: string): SourcedObject[] {
  const out: SourcedObject[] = [];
  const abs = path.resolve(file);
  const docs = parseAllDocuments(text);
  docs.forEach((doc, i) => {
    const where = `${file} (document ${i + 1})`;
    if (doc.errors.length) throw new ManifestError(`${where}: invalid YAML: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const o = value as Partial<KubeObject>;
    if (typeof o !== 'object' || Array.isArray(o)) throw new ManifestError(`${where}: a manifest document must be a mapping`);
    if (typeof o.kind !== 'string' || !o.kind) throw new ManifestError(`${where}: kind: required`);
    if (o.kind === 'List' && Array.isArray((o as { items?: unknown }).items)) {
      for (const item of (o as { items: KubeObject[] }).items) out.push(checked(item, where, abs));
      return;
    }
    out.push(checked(o as KubeObject, where, abs));
  });
  return out;
}

function checked(o: KubeObject, where: string, abs: string): SourcedObject {
  if (typeof o.metadata?.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(o.metadata.name)) {
    throw new ManifestError(`${where}: ${o.kind}: metadata.name: must be a DNS-1123 name (got ${JSON.stringify(o.metadata?.name)})`);
  }
  const ns = o.metadata.namespace;
  if (ns !== undefined && (typeof ns !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns))) {
    throw new ManifestError(`${where}: ${o.kind} ${o.metadata.name}: metadata.namespace: must be a DNS-1123 label (got ${JSON.stringify(ns)})`);
  }
  return { object: o, source: where, dir: path.dirname(abs) };
}

/**
 * Digest of a set of manifest files as read: lets a writer (sluice-sim) see
 * when the control plane has picked up exactly what it wrote.
 */
export function manifestDigest(files: { path: string; text: string }[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
    h.update(f.path).update('\0').update(createHash('sha256').update(f.text).digest('hex')).update('\n');
  }
  return h.digest('hex').slice(0, 16);
}

export function objectKey(o: KubeObject): string {
  const namespaced = o.kind !== 'Namespace';
  return `${o.kind}/${namespaced ? o.metadata.namespace || 'default' : ''}/${o.metadata.name}`;
}
