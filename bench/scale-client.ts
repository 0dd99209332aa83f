// Runs inside the scale benchmark's pod netns and cgroup. Commands on stdin,
// one JSON answer per line on stdout:
//   probe IP PORT    connect to IP:PORT again and again until a connection is
//                    answered; reply {t} = monotonic ns of the first answer
//   hold IP PORT N   open N connections through IP:PORT and keep them
//   release          close the held connections
import * as net from 'node:net';
import * as readline from 'node:readline';

const held: net.Socket[] = [];
const PROBE_LIMIT_MS = 10000;

function reply(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function probe(host: string, port: number): void {
  const deadline = Date.now() + PROBE_LIMIT_MS;
  let attempts = 0;
  const attempt = () => {
    attempts++;
    const s = net.connect({ host, port });
    let done = false;
    const retry = () => {
      if (done) return;
      done = true;
      s.destroy();
      if (Date.now() > deadline) reply({ error: `no answer from ${host}:${port} within ${PROBE_LIMIT_MS} ms`, attempts });
      else setTimeout(attempt, 1);
    };
    s.once('data', () => {
      if (done) return;
      done = true;
      const t = process.hrtime.bigint();
      s.destroy();
      reply({ t: t.toString(), attempts });
    });
    s.once('error', retry);
    s.once('close', retry);
  };
  attempt();
}

function hold(host: string, port: number, n: number): void {
  let open = 0;
  let failed = 0;
  const deadline = setTimeout(() => reply({ held: open, failed, error: 'timed out' }), 60000);
  const next = (i: number) => {
    if (i >= n) return;
    const s = net.connect({ host, port });
    s.once('data', () => {
      held.push(s);
      if (++open + failed === n) {
        clearTimeout(deadline);
        reply({ held: open, failed });
      }
    });
    s.on('error', () => {
      if (++failed + open === n) {
        clearTimeout(deadline);
        reply({ held: open, failed });
      }
    });
    // A few hundred at a time: the accept queue is finite.
    if (i % 200 === 199) setTimeout(() => next(i + 1), 20);
    else next(i + 1);
  };
  next(0);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, host, port, n] = line.trim().split(/\s+/);
  if (cmd === 'probe') probe(host, Number(port));
  else if (cmd === 'hold') hold(host, Number(port), Number(n));
  else if (cmd === 'release') {
    for (const s of held.splice(0)) s.destroy();
    reply({ released: true });
  } else reply({ error: `unknown command ${cmd}` });
});
