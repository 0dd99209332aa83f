// Reads Kubernetes YAML files into objects, remembering where each came from.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject, SourcedObject } from './kubernetes-objects';

/** A manifest file that cannot be read or parsed; the message names the file (and the document). */
export class ManifestError extends Error {}

/** The objects of every file or directory given, in order; throws ManifestError naming the file. */
export function readManifests(files: string[]): SourcedObject[] {
  return files.flatMap((file) => readManifestFile(file));
}

/**
 * Every *.yaml, *.yml and *.json file under a directory (or the file itself),
 * sorted. Hidden entries (".x") are skipped: a ConfigMap volume holds each
 * file twice, as "name -> ..data/name" and inside "..data -> ..<timestamp>/",
 * and reading both would define every object twice.
 */
export function manifestFiles(p: string): string[] {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) throw new ManifestError(`${p}: no such file or directory`);
  if (!st.isDirectory()) return [p];
  return fs
    .readdirSync(p, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .flatMap((e) => (e.isDirectory() ? manifestFiles(path.join(p, e.name)) : /\.(ya?ml|json)$/.test(e.name) ? [path.join(p, e.name)] : []))
    .sort();
}

/** The objects of one file; throws ManifestError naming the file when it cannot be read or parsed. */
export function readManifestFile(file: string): SourcedObject[] {
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (err) {
    throw new ManifestError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return parseManifestText(file, text);
}

/** The objects of a multi-document YAML (or JSON) text, each with its file and document number; throws ManifestError naming them. */
export function parseManifestText(file: string, text: string): SourcedObject[] {
  const out: SourcedObject[] = [];
  const abs = path.resolve(file);
  const docs = parseAllDocuments(text);
  docs.forEach((doc, i) => {
    const where = `${file} (document ${i + 1})`;
    if (doc.errors.length) throw new ManifestError(`${where}: invalid YAML: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const o = checked(value, where);
    if (o.kind === 'List' && Array.isArray((o as { items?: unknown }).items)) {
      for (const [j, item] of (o as unknown as { items: unknown[] }).items.entries()) {
        out.push({ object: checked(item, `${where}: items[${j}]`), source: `${where} items[${j}]`, dir: path.dirname(abs) });
      }
      return;
    }
    out.push({ object: o, source: where, dir: path.dirname(abs) });
  });
  return out;
}

/**
 * Only what makes a document an object at all: a mapping with a kind. The
 * fields of the kinds sluice reads are validated per object
 * (object-validation.ts), so that one bad object is reported alone.
 */
function checked(value: unknown, where: string): KubeObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ManifestError(`${where}: a manifest document must be a mapping`);
  const o = value as Partial<KubeObject>;
  if (typeof o.kind !== 'string' || !o.kind) throw new ManifestError(`${where}: kind: required`);
  return o as KubeObject;
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

/** "Pod/shop/web"; safe on objects not validated yet (a missing metadata gives an empty name). */
export function objectKey(o: KubeObject): string {
  const namespaced = o.kind !== 'Namespace';
  return `${o.kind}/${namespaced ? String(o.metadata?.namespace || 'default') : ''}/${String(o.metadata?.name ?? '')}`;
}
