// Benchmark load driver, run as a real process inside the client pod:
//
//   node dist/bench/open-loop-driver.js --mode rr --host H --port P \
//        --rate 1000 --conns 4 --duration 5 [--warmup 1] [--req 100] [--resp 1024]
//     Open loop: request i is due at start + i/rate on connection i % conns,
//     whether or not earlier answers came back (pipelined on the persistent
//     connection). Latency is taken from the scheduled send time, so a stall
//     is charged to every request that should have gone out during it (no
//     coordinated omission). A ticker thread sleeps to each due time with
//     Atomics.wait (sub-millisecond, unlike libuv timers) and wakes the main
//     thread, which sends everything due.
//
//   node dist/bench/open-loop-driver.js --mode conn --host H --port P \
//        --concurrency 8 --duration 5 [--warmup 1]
//     Closed loop, C workers each doing connect, one request, read the
//     response, close (FIN), wait for the close to finish, again.
//
// Prints one JSON object on stdout. Every phase is bounded in time; the
// process exits by itself.
import * as net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Histogram, type Percentiles } from './histogram';

interface TickerData {
  base: string; // bigint hrtime origin shared with the main thread
  startNs: number;
  tickNs: number;
  endNs: number;
}

// How early the ticker posts before a due time, to cover the hop to the main
// thread (measured ~15-25 us on a 2-core VM); the main thread spins the rest.
const POST_LEAD_NS = 20e3;
// The main thread spins at most this long for a request that is nearly due.
const MAIN_SPIN_NS = 40e3;

function runTicker(d: TickerData): void {
  const base = BigInt(d.base);
  const now = () => Number(process.hrtime.bigint() - base);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  // Atomics.wait wakes late by the kernel's timer slack and scheduling
  // (~80 us here): learn that lateness and go to sleep that much earlier,
  // spinning out the small remainder.
  let lateNs = 60e3;
  for (let k = 0; ; k++) {
    const due = d.startNs + k * d.tickNs;
    if (due > d.endNs) break;
    const postAt = due - POST_LEAD_NS;
    const sleepUntil = postAt - lateNs;
    const wait = sleepUntil - now();
    if (wait > 0) {
      Atomics.wait(cell, 0, 0, wait / 1e6);
      const late = now() - sleepUntil;
      lateNs = Math.min(500e3, Math.max(0, lateNs + 0.1 * (late - lateNs)));
    }
    while (now() < postAt); // bounded by the learned lateness, usually a few us
    parentPort!.postMessage(0);
  }
  parentPort!.postMessage(1);
}

interface Options {
  mode: 'rr' | 'conn';
  host: string;
  port: number;
  rate: number;
  conns: number;
  concurrency: number;
  duration: number;
  warmup: number;
  req: number;
  resp: number;
  drain: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { mode: 'rr', host: '', port: 0, rate: 1000, conns: 4, concurrency: 1, duration: 5, warmup: 1, req: 100, resp: 1024, drain: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[++i];
    if (v === undefined) fail(`${flag} needs a value`);
    switch (flag) {
      case '--mode':
        if (v !== 'rr' && v !== 'conn') fail(`--mode: rr or conn, not ${v}`);
        o.mode = v;
        break;
      case '--host':
        o.host = v;
        break;
      case '--port':
      case '--rate':
      case '--conns':
      case '--concurrency':
      case '--duration':
      case '--warmup':
      case '--req':
      case '--resp':
      case '--drain': {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) fail(`${flag}: not a number: ${v}`);
        (o as unknown as Record<string, number>)[flag.slice(2)] = n;
        break;
      }
      default:
        fail(`unknown flag ${flag}`);
    }
  }
  if (!net.isIPv4(o.host) || !o.port) fail('--host IPv4 and --port are required');
  if (o.duration <= 0 || o.duration > 600) fail('--duration: 0 < S <= 600');
  if (o.warmup > 60 || o.drain > 60) fail('--warmup and --drain: at most 60 s');
  if (o.mode === 'rr' && (o.rate < 1 || o.rate > 200000 || o.conns < 1 || o.conns > 1024)) fail('--rate 1..200000, --conns 1..1024');
  if (o.mode === 'conn' && (o.concurrency < 1 || o.concurrency > 1024)) fail('--concurrency 1..1024');
  if (o.req < 1 || o.resp < 1 || o.req > 1 << 20 || o.resp > 1 << 20) fail('--req/--resp: 1 B..1 MiB');
  return o;
}

function fail(msg: string): never {
  process.stderr.write(`open-loop-driver: ${msg}\n`);
  process.exit(2);
}

const BASE = process.hrtime.bigint();
const nowNs = () => Number(process.hrtime.bigint() - BASE);

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  // Hard stop whatever happens: warm-up + run + drain + connection set-up slack.
  const hardMs = (o.warmup + o.duration + o.drain + 15) * 1000;
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ mode: o.mode, error: `did not finish within ${hardMs} ms` })}\n`);
    process.exit(3);
  }, hardMs).unref();
  const run = o.mode === 'rr' ? runRequestResponse(o) : runConnections(o);
  run.then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: Error) => {
      process.stdout.write(`${JSON.stringify({ mode: o.mode, error: err.message })}\n`);
      process.exit(1);
    },
  );
}

function connectOne(o: Options, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: o.host, port: o.port, noDelay: true });
    const timer = setTimeout(() => s.destroy(new Error(`connect ${o.host}:${o.port}: timed out`)), timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** FIFO of numbers without shifting arrays. */
class Fifo {
  private items: number[] = [];
  private head = 0;
  push(v: number): void {
    this.items.push(v);
  }
  shift(): number | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head++];
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  get length(): number {
    return this.items.length - this.head;
  }
}

interface RrResult {
  mode: 'rr';
  target: string;
  rate: number;
  conns: number;
  durationS: number;
  warmupS: number;
  scheduled: number;
  completed: number;
  timedOut: number;
  errors: number;
  achievedRps: number;
  latency: Percentiles; // from the scheduled send time
  service: Percentiles; // from the actual write
  sendLag: Percentiles; // actual write - scheduled time: the driver's own lateness
}

async function runRequestResponse(o: Options): Promise<RrResult> {
  const sockets = await Promise.all(Array.from({ length: o.conns }, () => connectOne(o, 5000)));
  const request = Buffer.alloc(o.req, 0x61);
  const latency = new Histogram();
  const service = new Histogram();
  const sendLag = new Histogram();
  const intervalNs = 1e9 / o.rate;
  const total = Math.round(o.rate * (o.warmup + o.duration));
  const startNs = nowNs() + 20e6; // give the ticker thread time to start
  const measureFromNs = startNs + o.warmup * 1e9;
  const lastDueNs = startNs + (total - 1) * intervalNs;
  let errors = 0;
  let completed = 0;
  let measured = 0;
  let outstanding = 0;
  let next = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));

  const conns = sockets.map((s) => {
    const c = { s, due: new Fifo(), sent: new Fifo(), bytes: 0 };
    s.on('data', (d: Buffer) => {
      const t = nowNs();
      c.bytes += d.length;
      while (c.bytes >= o.resp) {
        c.bytes -= o.resp;
        const due = c.due.shift();
        const sent = c.sent.shift();
        if (due === undefined || sent === undefined) break;
        outstanding--;
        completed++;
        if (due >= measureFromNs) {
          measured++;
          latency.record(t - due);
          service.record(t - sent);
        }
      }
      if (next >= total && outstanding === 0) finish();
    });
    s.on('error', () => errors++);
    s.on('close', () => {
      if (c.due.length > 0 || next < total) errors++;
    });
    return c;
  });

  const pump = () => {
    let t = nowNs();
    while (next < total && startNs + next * intervalNs <= t + MAIN_SPIN_NS) {
      const due = startNs + next * intervalNs;
      while (t < due) t = nowNs(); // nearly due: never send early
      const c = conns[next % conns.length];
      next++;
      if (c.s.destroyed) continue;
      c.due.push(due);
      c.sent.push(t);
      if (due >= measureFromNs) sendLag.record(t - due);
      outstanding++;
      c.s.write(request);
    }
    if (next >= total && outstanding === 0) finish();
  };

  const ticker = new Worker(__filename, {
    workerData: { base: BASE.toString(), startNs, tickNs: Math.max(50e3, intervalNs), endNs: lastDueNs + intervalNs } satisfies TickerData,
  });
  ticker.on('message', pump);
  ticker.on('error', (err) => {
    errors++;
    process.stderr.write(`ticker: ${err.message}\n`);
  });
  // A fallback in case the ticker thread dies: libuv timers, coarser but alive.
  const fallback = setInterval(pump, 5);

  const drainMs = (lastDueNs - nowNs()) / 1e6 + o.drain * 1000;
  const timedOutPromise = new Promise<void>((r) => setTimeout(r, drainMs));
  await Promise.race([finished, timedOutPromise]);
  clearInterval(fallback);
  await ticker.terminate();

  // Whatever is still unanswered counts at its age now: a lower bound that
  // keeps a stalled path from looking fast.
  const end = nowNs();
  let timedOut = 0;
  for (const c of conns) {
    for (let due = c.due.shift(); due !== undefined; due = c.due.shift()) {
      timedOut++;
      if (due >= measureFromNs) latency.record(end - due);
    }
    c.s.destroy();
  }
  const scheduledMeasured = total - Math.round(o.rate * o.warmup);
  return {
    mode: 'rr',
    target: `${o.host}:${o.port}`,
    rate: o.rate,
    conns: o.conns,
    durationS: o.duration,
    warmupS: o.warmup,
    scheduled: scheduledMeasured,
    completed: measured,
    timedOut,
    errors,
    achievedRps: Math.round((measured / o.duration) * 10) / 10,
    latency: latency.summary(),
    service: service.summary(),
    sendLag: sendLag.summary(),
  };
}

interface ConnResult {
  mode: 'conn';
  target: string;
  concurrency: number;
  durationS: number;
  warmupS: number;
  completed: number;
  errors: number;
  connPerSec: number;
  latency: Percentiles; // connect start -> full response
}

async function runConnections(o: Options): Promise<ConnResult> {
  const request = Buffer.alloc(o.req, 0x61);
  const latency = new Histogram();
  const startNs = nowNs();
  const measureFromNs = startNs + o.warmup * 1e9;
  const endNs = measureFromNs + o.duration * 1e9;
  let completed = 0;
  let errors = 0;

  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = nowNs();
      let bytes = 0;
      let gotAll = 0;
      let failed = false;
      const s = net.connect({ host: o.host, port: o.port, noDelay: true });
      const timer = setTimeout(() => s.destroy(new Error('timed out')), 5000);
      s.once('connect', () => s.write(request));
      s.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes >= o.resp && !gotAll) {
          gotAll = nowNs();
          s.end();
        }
      });
      s.on('error', () => (failed = true));
      s.once('close', () => {
        clearTimeout(timer);
        const t = nowNs();
        if (failed || !gotAll) {
          if (t >= measureFromNs) errors++;
          setTimeout(resolve, 1); // do not spin on a failing path
          return;
        }
        if (t0 >= measureFromNs && t <= endNs) {
          completed++;
          latency.record(gotAll - t0);
        }
        resolve();
      });
    });

  const worker = async () => {
    while (nowNs() < endNs) await once();
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return {
    mode: 'conn',
    target: `${o.host}:${o.port}`,
    concurrency: o.concurrency,
    durationS: o.duration,
    warmupS: o.warmup,
    completed,
    errors,
    connPerSec: Math.round((completed / o.duration) * 10) / 10,
    latency: latency.summary(),
  };
}

if (!isMainThread) runTicker(workerData as TickerData);
else main();
