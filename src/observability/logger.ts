// One pino logger per process, asynchronous, with a child per component.
import pino, { type Logger } from 'pino';

export function createLogger(name: string, level: string, file = ''): Logger {
  const destination = pino.destination({ dest: file || 1, sync: false, mkdir: true });
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

export type { Logger };
