// Benchmark workload server: answers every REQ-byte request with a RESP-byte
// response, in order, on as many connections as come. Runs inside a pod:
//   node dist/bench/rr-server.js [PORT] [REQ] [RESP]
// Requests carry no framing beyond their fixed size, so a pipelined burst is
// answered with one write.
import * as net from 'node:net';

const port = Number(process.argv[2] || 7000);
const req = Number(process.argv[3] || 100);
const resp = Number(process.argv[4] || 1024);
const MAX_BATCH = 64;
const answers = Buffer.alloc(resp * MAX_BATCH, 0x62);

const server = net.createServer({ noDelay: true }, (s) => {
  s.setNoDelay(true);
  s.on('error', () => undefined);
  let pending = 0;
  s.on('data', (d) => {
    pending += d.length;
    let n = Math.floor(pending / req);
    pending -= n * req;
    while (n > 0) {
      const k = Math.min(n, MAX_BATCH);
      s.write(k === MAX_BATCH ? answers : answers.subarray(0, k * resp));
      n -= k;
    }
  });
});
server.listen({ port, backlog: 4096 }, () => console.log(`rr-server on :${port}: ${req} B request -> ${resp} B response`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
