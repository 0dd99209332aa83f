// Output conventions of sluicectl: a table by default, JSON or YAML on -o.
import { stringify } from 'yaml';
import { bigintReplacer } from '../observability/http-json';

export type OutputFormat = 'table' | 'json' | 'yaml';

/** An answer as JSON, YAML, or the view's table. */
export function render(data: unknown, format: OutputFormat, toTable: (d: never) => string): string {
  if (format === 'json') return `${JSON.stringify(data, bigintReplacer, 2)}\n`;
  if (format === 'yaml') return stringify(data);
  return toTable(data as never);
}

/** Columns padded to the widest cell; a cell that is not a string is shown as text ("" for null). */
export function table(header: string[], rows: unknown[][]): string {
  if (rows.length === 0) return `${header.join('  ')}\n(none)\n`;
  const all = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

/** A byte count for a table: 512B, 1.5KiB, 3.0MiB... */
export function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)}${units[u]}`;
}

/** A duration for a table: 250ms, 42s, 3m5s, 2h10m. */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 120 ? `${m}m${s % 60}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}
