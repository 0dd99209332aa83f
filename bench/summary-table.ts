// The summary table both data-path benchmarks print: median (min-max) cells,
// signed differences, targets and whether they were met, in aligned columns.
import { fmt, type Spread } from './stats';

/** `median (min-max)`, the median alone for one sample, `-` for none. */
export function spreadCell(s: Spread | undefined, digits = 3): string {
  if (!s || !s.n) return '-';
  return s.n === 1 ? fmt(s.median, digits) : `${fmt(s.median, digits)} (${fmt(s.min, digits)}-${fmt(s.max, digits)})`;
}

/** A difference with its sign: `+12.3 (+10.1..+15.0)`. */
export function signedCell(s: Spread | undefined): string {
  if (!s || !s.n) return '-';
  const f = (x: number) => `${x >= 0 ? '+' : ''}${fmt(x, 3)}`;
  return s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}..${f(s.max)})`;
}

export interface TargetResult {
  text: string;
  value: number | null;
  met: boolean | null;
}

/** Whether `value` meets `op value`; null when there is no finite value to judge. */
export function judgeTarget(text: string, op: '>=' | '<=', target: number, value: number | undefined): TargetResult {
  const finite = value !== undefined && Number.isFinite(value);
  return { text, value: value ?? null, met: finite ? (op === '>=' ? value >= target : value <= target) : null };
}

/** The `target` and `met` cells of a metric's row. */
export function targetCells(targets: TargetResult[]): [string, string] {
  return [targets.map((t) => t.text).join('; ') || '-', targets.map((t) => (t.met === null ? '?' : t.met ? 'yes' : 'NO')).join('; ') || '-'];
}

/** Rows padded into columns; with `rule`, a line of dashes under the header row. */
export function alignedTable(rows: string[][], rule: boolean): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const lines = rows.map(line);
  if (rule) lines.splice(1, 0, line(widths.map((w) => '-'.repeat(w))));
  return lines.join('\n');
}
