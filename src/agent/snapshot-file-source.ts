// Static mode: workloads and services from a local JSON file, re-read when it
// changes. A file that cannot be used is reported and the last good state
// keeps serving; a bad resource inside a good file is rejected alone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Snapshot } from '../model/resources';
import { validateSnapshot, type Rejection } from '../model/validate';

export interface SnapshotStatus {
  file: string;
  version: string;
  appliedAt: string;
  rejected: Rejection[];
  lastError: string;
}

/**
 * The agent's configuration from a snapshot file (--snapshot), re-read when
 * it changes; a file that does not validate keeps the last good one serving
 * and is reported in status.
 */
export class SnapshotFileSource {
  private watcher?: fs.FSWatcher;
  private timer?: NodeJS.Timeout;
  private lastText = '';
  readonly status: SnapshotStatus;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
    private readonly onSnapshot: (s: Snapshot) => void,
  ) {
    this.status = { file, version: '', appliedAt: '', rejected: [], lastError: '' };
  }

  /** Reads the file once (a missing file is an error) and then follows changes. */
  start(): void {
    if (!fs.existsSync(this.file)) throw new Error(`--snapshot ${this.file}: no such file`);
    this.read();
    // Watch the directory: writers replace the file atomically (rename).
    this.watcher = fs.watch(path.dirname(this.file), (_event, name) => {
      if (name === path.basename(this.file)) this.read();
    });
    this.timer = setInterval(() => this.read(), 1000);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  private read(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      this.fail(`read ${this.file}: ${(err as Error).message}`);
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      this.fail(`${this.file}: not valid JSON: ${(err as Error).message}`);
      return;
    }
    try {
      const { snapshot, rejected } = validateSnapshot(parsed);
      for (const r of rejected) this.logger.error({ file: this.file, kind: r.kind, name: r.name }, `resource rejected: ${r.reason}`);
      if (!snapshot.version) snapshot.version = `file-${Date.now()}`;
      Object.assign(this.status, { version: snapshot.version, appliedAt: new Date().toISOString(), rejected, lastError: '' });
      this.onSnapshot(snapshot);
    } catch (err) {
      this.fail(`${this.file}: ${(err as Error).message}`);
    }
  }

  private fail(message: string): void {
    this.status.lastError = message;
    this.logger.error(`snapshot not applied, still serving version ${this.status.version || '(none)'}: ${message}`);
  }
}
