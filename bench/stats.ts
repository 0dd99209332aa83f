// Small statistics over per-round samples.

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function spread(xs: number[]): Spread {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** Paired per-round values: f(a[i], b[i]) for the rounds where both exist. */
export function paired(a: (number | undefined)[], b: (number | undefined)[], f: (x: number, y: number) => number): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y)) out.push(f(x, y));
  }
  return out;
}

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(Math.max(0, digits - 3));
  if (a >= 10) return x.toFixed(Math.max(0, digits - 2));
  return x.toFixed(Math.max(0, digits - 1));
}
