// The handover of listening sockets between an old and a new agent, with
// real descriptors passed over a unix socket (the old side runs in its own
// process, as it does on a node): a connection made after the old side
// stopped accepting and before the new side listens waits in the kernel's
// queue and is served by the new side, never refused.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { readRequestLine, requestHandover } from '../../src/agent/handover';
import { fixtures, projectRoot } from '../helpers/sim-fixture';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-handover-'));
const OLD_AGENT = path.join(fixtures, 'handover-old-agent.js');

/** Starts the old side; resolves with its TCP port and a reader of what it prints next. */
function oldAgent(socketPath: string, node: string): Promise<{ child: ChildProcess; port: number; next: () => Promise<string> }> {
  const child = spawn(process.execPath, [OLD_AGENT, socketPath, node], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buffered = '';
  child.stdout!.on('data', (d) => {
    buffered += d;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const l of parts) {
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  const next = () => new Promise<string>((resolve) => (lines.length ? resolve(lines.shift()!) : waiters.push(resolve)));
  return next().then((l) => ({ child, port: (JSON.parse(l) as { port: number }).port, next }));
}

function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1');
    s.on('data', (d) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

describe('listener handover', () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('finds no agent when nothing listens at the socket', () => {
    assert.equal(requestHandover(path.join(dir, 'none.sock'), 'node-1', 1000), undefined);
  });

  it('passes the listener; a connection queued while nobody accepts is served by the new side', async () => {
    const socketPath = path.join(dir, 'a.sock');
    const old = await oldAgent(socketPath, 'node-1');
    assert.equal((fs.statSync(socketPath).mode & 0o777).toString(8), '600', 'root only');
    assert.equal(await ask(old.port), 'served by old\n');
    const received = requestHandover(socketPath, 'node-1', 5000);
    assert.ok(received, 'an agent answered');
    assert.equal(received.from, old.child.pid);
    assert.deepEqual([...received.listeners.keys()], ['proxy']);
    assert.equal(fs.existsSync(socketPath), false, 'the old side gave up its socket path for the new one');
    received.accepting();
    assert.equal(await old.next(), 'passed', 'the old side stops accepting once told');
    // Nobody accepts now: the connection waits in the queue of the same socket.
    const answer = ask(old.port);
    await new Promise((r) => setTimeout(r, 200));
    const server = net.createServer((s) => s.end('served by new\n'));
    await new Promise<void>((resolve) => server.listen({ fd: received.listeners.get('proxy')! }, () => resolve()));
    assert.equal(await answer, 'served by new\n');
    assert.equal(await ask(old.port), 'served by new\n');
    await new Promise((r) => server.close(r));
  });

  it('an agent of another node is refused, and the old side keeps what it has', async () => {
    const socketPath = path.join(dir, 'b.sock');
    const old = await oldAgent(socketPath, 'node-2');
    assert.throws(() => requestHandover(socketPath, 'node-1', 5000), /handover from the running agent at .*b\.sock/);
    assert.equal(await ask(old.port), 'served by old\n');
    old.child.kill();
  });

  it('a new agent that goes away before it accepts leaves the old one accepting', async () => {
    const socketPath = path.join(dir, 'c.sock');
    const old = await oldAgent(socketPath, 'node-1');
    // A new agent that receives the listener and exits without saying it accepts.
    const handover = path.join(projectRoot, 'dist', 'src', 'agent', 'handover.js');
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(handover)}).requestHandover(${JSON.stringify(socketPath)}, 'node-1', 5000)`]);
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(await old.next(), 'failed');
    assert.equal(await ask(old.port), 'served by old\n', 'still accepting');
    old.child.kill();
  });
});

describe('readRequestLine (the handover server and the listener keeper read requests with it)', () => {
  const readerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-handover-read-'));
  after(() => fs.rmSync(readerDir, { recursive: true, force: true }));
  /** A server reading one request per connection; resolves with what the reader gave, or 'destroyed'. */
  async function readOne(send: (client: net.Socket) => void, timeoutMs = 2000): Promise<string> {
    const socketPath = path.join(readerDir, `r${Math.random().toString(36).slice(2)}.sock`);
    let outcome: Promise<string> = Promise.resolve('no connection');
    const server = net.createServer((socket) => {
      outcome = new Promise((resolve) => {
        readRequestLine(socket, timeoutMs, (line) => {
          resolve(`line ${line}`);
          socket.end();
        });
        socket.on('close', () => resolve('destroyed'));
      });
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    const client = net.connect(socketPath);
    client.on('error', () => undefined);
    await new Promise<void>((r) => client.on('connect', r));
    send(client);
    await new Promise<void>((r) => client.on('close', r));
    server.close();
    return outcome;
  }

  it('gives the first line, without its newline, even when it arrives in pieces', async () => {
    assert.equal(await readOne((c) => {
      c.write('{"version":');
      setTimeout(() => c.write('1}\nrest'), 20);
    }), 'line {"version":1}');
  });

  it('drops a client whose line passes 4096 bytes, or that never ends its line', async () => {
    assert.equal(await readOne((c) => c.write(`${'x'.repeat(5000)}\n`)), 'destroyed');
    assert.equal(await readOne((c) => c.write('no newline'), 100), 'destroyed');
  });
});
