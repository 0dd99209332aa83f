// One pino logger per process, asynchronous, with a child per component.
// Lines carry the ISO time and the level as a word ("level":"info"), as
// ztunnel's JSON logs do; each component's level can change at run time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A pino logger named `name` at `level`, writing JSON lines to `file`
 * (created with its directory, appended to) or stdout. Throws when the file
 * cannot be opened.
 */
export function createLogger(name: string, level: string, file = ''): Logger {
  // The file is opened here, not later: a process that fails at once must
  // still be able to flush its last lines on exit.
  if (file) fs.mkdirSync(path.dirname(file), { recursive: true });
  const destination = pino.destination({ fd: file ? fs.openSync(file, 'a') : 1, sync: false });
  return pino(
    { name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    destination,
  );
}

/**
 * The component loggers of a process (`component` field), created once and
 * kept, so that their levels can be changed while it runs
 * (`sluicectl log --level proxy=debug`).
 */
export class ComponentLoggers {
  private readonly children = new Map<string, Logger>();

  constructor(readonly root: Logger) {}

  /** The logger of a component (one per name; its level can be set apart). */
  component(name: string): Logger {
    let child = this.children.get(name);
    if (!child) {
      child = this.root.child({ component: name });
      this.children.set(name, child);
    }
    return child;
  }

  /** Component -> level now ("default": the root's, which new components start with). */
  levels(): Record<string, string> {
    return { default: this.root.level, ...Object.fromEntries([...this.children].map(([n, l]) => [n, l.level])) };
  }

  /**
   * Applies a level spec: "debug" (every component and the default), or
   * "proxy=debug,tunnel=warn" (those components; unknown names are created,
   * so a component that logs later starts at that level). Returns an error
   * message, or undefined when it was applied.
   */
  apply(spec: string): string | undefined {
    const parts = spec.split(',').map((p) => p.trim()).filter(Boolean);
    if (parts.length === 0) return 'empty level spec; expected LEVEL or COMPONENT=LEVEL[,COMPONENT=LEVEL...]';
    const changes: [string | undefined, LogLevel][] = [];
    for (const p of parts) {
      const m = /^(?:([a-z][a-z0-9-]*)=)?([a-z]+)$/.exec(p);
      if (!m || !(LOG_LEVELS as readonly string[]).includes(m[2])) return `${JSON.stringify(p)}: expected LEVEL or COMPONENT=LEVEL, LEVEL one of ${LOG_LEVELS.join(', ')}`;
      changes.push([m[1], m[2] as LogLevel]);
    }
    for (const [component, level] of changes) {
      if (component === undefined || component === 'default') {
        this.root.level = level;
        for (const c of this.children.values()) c.level = level;
      } else this.component(component).level = level;
    }
    return undefined;
  }
}

export type { Logger };
