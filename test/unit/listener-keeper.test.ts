// The listener keeper (`sluice-agent keep-listeners`) with real processes
// and descriptors: it takes copies of the agent's listening socket over the
// handover socket; after the agent is killed, a connection made while no
// agent runs is completed by the kernel and waits; the next agent takes the
// socket from the keeper and serves it. Without an agent for
// --give-up-seconds, the keeper closes its copies and connections are
// refused, not left waiting.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { requestKeptListeners } from '../../src/agent/listener-keeper';
import { closeDescriptor } from '../../src/kernel/descriptor-passing';
import { fixtures, projectRoot } from '../helpers/sim-fixture';

for (const e of fs.readdirSync(os.tmpdir())) if (e.startsWith('sluice-keeper-')) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-keeper-'));
const handoverSocket = path.join(dir, 'handover.sock');
const keeperSocket = path.join(dir, 'keeper.sock');
const AGENT_MAIN = path.join(projectRoot, 'dist', 'src', 'agent', 'main.js');

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    child.stdout!.on('data', (d) => {
      got += d;
      if (got.includes('\n')) resolve(got.slice(0, got.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before printing`)));
  });
}

/** Polls the keeper until it holds `proxy`; the copies it hands out here are closed again. */
async function keeperHolds(timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = fs.existsSync(keeperSocket) ? requestKeptListeners(keeperSocket, 'node-1', 2000) : undefined;
    for (const fd of held?.values() ?? []) closeDescriptor(fd);
    if (held?.has('proxy')) return;
    if (Date.now() > deadline) throw new Error('the keeper never held the proxy listener');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('listener keeper', { timeout: 60000 }, () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without a keeper, an agent finds none', () => {
    assert.equal(requestKeptListeners(path.join(dir, 'none.sock'), 'node-1', 1000), undefined);
  });

  it('holds the listener through an agent crash: a connection made meanwhile waits and is served by the next agent', async () => {
    const agent = spawn(process.execPath, [path.join(fixtures, 'keeper-agent.js'), handoverSocket, 'node-1'], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(agent);
    const { port } = JSON.parse(await firstLine(agent)) as { port: number };
    const keeper = spawn(process.execPath, [AGENT_MAIN, 'keep-listeners', '--node-name', 'node-1', '--handover-socket', handoverSocket, '--keeper-socket', keeperSocket, '--give-up-seconds', '2'], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(keeper);
    await keeperHolds();
    assert.equal((fs.statSync(keeperSocket).mode & 0o777).toString(8), '600', 'root only');

    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    // No agent runs: the kernel completes the handshake on the kept socket, and the request waits.
    const client = await connect(port);
    client.write('hello\n');
    let answer = '';
    client.on('data', (d) => (answer += d));
    const ended = new Promise((r) => client.once('end', r));

    // The next agent: what the keeper held, with the waiting connection.
    const kept = requestKeptListeners(keeperSocket, 'node-1');
    assert.deepEqual([...(kept?.keys() ?? [])], ['proxy']);
    const next = net.createServer((s) => s.once('data', (d) => s.end(`next agent got ${d}`)));
    await new Promise<void>((resolve) => next.listen({ fd: kept!.get('proxy')! }, resolve));
    await ended;
    assert.equal(answer, 'next agent got hello\n');

    // With no agent answering for --give-up-seconds, the keeper lets go: once this one closes too, connections are refused.
    await new Promise((r) => setTimeout(r, 3500));
    const stillKept = requestKeptListeners(keeperSocket, 'node-1');
    assert.deepEqual([...(stillKept?.keys() ?? [])], [], 'the keeper closed its copies');
    await new Promise<void>((resolve) => next.close(() => resolve()));
    await assert.rejects(connect(port), /ECONNREFUSED/);
    keeper.kill('SIGTERM');
  });
});
