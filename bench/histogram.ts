// A log-linear (HDR-style) latency histogram: values in nanoseconds, exact
// below 256 ns, then 128 sub-buckets per power of two (relative error under
// 0.4 %). Fixed memory, O(1) record, mergeable.

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
const LINEAR = 2 * SUB; // values below this are stored exactly
const MAX_EXP = 46; // 2^46 ns ~ 19.5 h: far beyond any bounded run

function indexOf(ns: number): number {
  const v = Math.max(0, Math.floor(ns));
  if (v < LINEAR) return v;
  let e = Math.min(MAX_EXP, Math.floor(Math.log2(v)));
  if (e < MAX_EXP && Math.floor(v / 2 ** (e - SUB_BITS)) < SUB) e--; // log2 rounded up just below a power of two
  const shift = e - SUB_BITS;
  const top = Math.min(2 * SUB - 1, Math.floor(v / 2 ** shift)); // in [128, 255]
  return LINEAR + (e - SUB_BITS - 1) * SUB + (top - SUB);
}

/** The middle of a bucket, in ns. */
function valueOf(index: number): number {
  if (index < LINEAR) return index;
  const k = index - LINEAR;
  const e = Math.floor(k / SUB) + SUB_BITS + 1;
  const top = (k % SUB) + SUB;
  const shift = e - SUB_BITS;
  return (top + 0.5) * 2 ** shift;
}

export interface Percentiles {
  count: number;
  minUs: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(LINEAR + (MAX_EXP - SUB_BITS) * SUB);
  count = 0;
  private sum = 0;
  private min = Infinity;
  private max = 0;

  record(ns: number): void {
    this.counts[indexOf(ns)]++;
    this.count++;
    this.sum += ns;
    if (ns < this.min) this.min = ns;
    if (ns > this.max) this.max = ns;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** Value (ns) at quantile q in [0, 1]; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(i)));
    }
    return this.max;
  }

  summary(): Percentiles {
    const us = (ns: number) => Math.round(ns / 10) / 100; // µs, two decimals
    return {
      count: this.count,
      minUs: this.count ? us(this.min) : 0,
      meanUs: this.count ? us(this.sum / this.count) : 0,
      p50Us: us(this.quantile(0.5)),
      p90Us: us(this.quantile(0.9)),
      p99Us: us(this.quantile(0.99)),
      p999Us: us(this.quantile(0.999)),
      maxUs: this.count ? us(this.max) : 0,
    };
  }
}
