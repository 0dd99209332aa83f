// Kubernetes-shaped objects from manifest files, followed as they change.
// A file that cannot be read or parsed is reported and its last good
// objects stay in use: one broken edit never empties the mesh.
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { SourcedObject } from './kubernetes-objects';
import { ManifestError, manifestDigest, manifestFiles, parseManifestText } from './manifests';

/** A manifest file that could not be read or parsed, and why. */
export interface FileProblem {
  file: string;
  reason: string;
}

/**
 * Objects from the manifest files under `root` (a directory or one file),
 * followed with fs.watch and a poll of modification times every second.
 * onChange gets every file's last good objects, and the files in error,
 * whenever either changes.
 */
export class ManifestSource {
  private readonly lastGood = new Map<string, { text: string; objects: SourcedObject[] }>();
  private readonly mtimes = new Map<string, number>();
  private watcher?: fs.FSWatcher;
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  problems: FileProblem[] = [];
  /** Digest of the files whose objects are in use (see manifestDigest). */
  digest = '';

  constructor(
    readonly root: string,
    private readonly logger: Logger,
    private readonly onChange: (objects: SourcedObject[], problems: FileProblem[]) => void,
  ) {}

  /** Reads everything once (throws if the root does not exist), then follows changes. */
  start(): void {
    manifestFiles(this.root); // fails early and clearly on a missing path
    this.scan(true);
    try {
      this.watcher = fs.watch(this.root, { recursive: true }, () => this.soon());
    } catch {
      // a single file, or a platform without recursive watch: polling covers it
    }
    this.timer = setInterval(() => this.scan(false), 1000);
    this.timer.unref();
  }

  /** Stops following changes. */
  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }

  private soon(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.scan(false), 50);
  }

  private scan(force: boolean): void {
    let files: string[];
    try {
      files = manifestFiles(this.root);
    } catch (err) {
      this.problems = [{ file: this.root, reason: (err as Error).message }];
      this.logger.error(`manifests not read, serving the last good state: ${(err as Error).message}`);
      return;
    }
    let changed = force;
    const seen = new Set(files);
    for (const file of [...this.lastGood.keys()]) {
      if (!seen.has(file)) {
        this.lastGood.delete(file);
        this.mtimes.delete(file);
        changed = true;
      }
    }
    const problems: FileProblem[] = [];
    for (const file of files) {
      const mtime = fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      const known = this.mtimes.get(file);
      const previous = this.problems.find((p) => p.file === file);
      if (known === mtime && !force) {
        if (previous) problems.push(previous);
        continue;
      }
      this.mtimes.set(file, mtime);
      try {
        const text = fs.readFileSync(file, 'utf8');
        this.lastGood.set(file, { text, objects: parseManifestText(file, text) });
        changed = true;
      } catch (err) {
        const reason = err instanceof ManifestError ? err.message : `${file}: ${(err as Error).message}`;
        problems.push({ file, reason });
        this.logger.error({ file }, `manifest rejected, its last good objects stay in use: ${reason}`);
      }
    }
    const problemsChanged = JSON.stringify(problems) !== JSON.stringify(this.problems);
    this.problems = problems;
    if (!changed && !problemsChanged) return;
    this.digest = manifestDigest([...this.lastGood].map(([path, f]) => ({ path, text: f.text })));
    this.onChange([...this.lastGood.values()].flatMap((f) => f.objects), problems);
  }
}
