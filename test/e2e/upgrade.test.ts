// Agent upgrade under load, as a DaemonSet rolling update with maxSurge does
// it: the new agent starts beside the old one, takes over its listening
// sockets, and the old one drains. A new connection every 10 ms on the same
// node and across nodes sees no refusal and no reset; long-lived connections
// opened before run on and end cleanly; what is still open when the drain
// time is up is reset at both ends, never closed cleanly; a new agent that
// dies before it accepts leaves the old one serving in full. A plain
// restart or a crash refuses no new connection either: the listener keeper
// holds the listening sockets while no agent runs; what the stopped or
// killed agent was relaying ends in a reset, never a clean close.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simDir } from '../../src/sim/sim-state';
import { SimFixture, eventually, fixtures, projectRoot } from '../helpers/sim-fixture';

const VIP_1 = '10.96.8.1';
const VIP_2 = '10.96.8.2';
/** Shared with npm run bench:restart: echo-1 on node-1 (VIP_1), echo-2 on node-2 (VIP_2), a client on node-1. */
const TOPOLOGY = fs.readFileSync(path.join(fixtures, 'restart-topology.yaml'), 'utf8');

interface Load {
  requests: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  longestGapMs: number;
}
interface Hold {
  lines: number;
  echoed: number;
  end: string;
}

const VIP_NEW = '10.96.8.3';
const NEW_SERVICE = `
apiVersion: v1
kind: Service
metadata: { name: echo-1-again, namespace: up }
spec:
  clusterIP: ${VIP_NEW}
  selector: { app: echo-1 }
  ports: [{ port: 80, targetPort: 7000 }]
`;

const sim = new SimFixture('e2e-upgrade');
const pidOf = (node: string) => sim.ctlJson<{ pid: number }>(node, 'status').pid;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const run = async <T>(argv: string[], timeoutMs = 60000): Promise<T> => {
  const r = await sim.execAsync('up/client', ['node', `${fixtures}/restart-load.js`, ...argv], timeoutMs);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as T;
};

describe('agent upgrade without a refused or cut connection', { timeout: 300000 }, () => {
  before(() => {
    process.env.SLUICE_DRAIN_SECONDS = '20';
    sim.up(TOPOLOGY, 2);
  });
  after(() => {
    sim.down();
    delete process.env.SLUICE_DRAIN_SECONDS;
  });

  it('upgrading both agents under load: 0 refused, 0 reset; long-lived connections run on and end cleanly', async () => {
    const old = [pidOf('node-1'), pidOf('node-2')];
    const holds = [run<Hold>(['hold', VIP_1, '80', '9000']), run<Hold>(['hold', VIP_2, '80', '9000'])];
    const loads = [run<Load>(['load', VIP_1, '80', '8000']), run<Load>(['load', VIP_2, '80', '8000'])];
    await new Promise((r) => setTimeout(r, 1000));
    sim.must(['agent', 'node-1', 'upgrade']);
    sim.must(['agent', 'node-2', 'upgrade']);
    const fresh = [pidOf('node-1'), pidOf('node-2')];
    assert.ok(fresh[0] !== old[0] && fresh[1] !== old[1], 'new agents serve');
    for (const [i, l] of (await Promise.all(loads)).entries()) {
      const name = i === 0 ? 'same node' : 'cross node';
      assert.ok(l.requests > 300, `${name}: load ran (${l.requests})`);
      assert.deepEqual({ failed: l.failed, errors: l.errors }, { failed: 0, errors: {} }, `${name}: ${JSON.stringify(l)}`);
    }
    for (const [i, h] of (await Promise.all(holds)).entries()) {
      const name = i === 0 ? 'same node' : 'cross node';
      assert.equal(h.end, 'FIN', `${name}: ends as the client ended it (${JSON.stringify(h)})`);
      assert.ok(h.lines > 50, `${name}: lines were sent through the upgrade`);
      assert.equal(h.echoed, h.lines, `${name}: every line echoed`);
    }
    // Their connections ended: the old agents are drained and gone.
    assert.ok(await eventually(() => !alive(old[0]) && !alive(old[1]), 100, 100), 'the old agents exited once drained');
  });

  it('what is still open when the drain time is up is reset at both ends, never closed cleanly', async () => {
    process.env.SLUICE_DRAIN_SECONDS = '2';
    sim.must(['agent', 'node-1', 'restart']);
    const old = pidOf('node-1');
    const hold = run<Hold>(['hold', VIP_1, '80', '15000']);
    await new Promise((r) => setTimeout(r, 1000));
    sim.must(['agent', 'node-1', 'upgrade']);
    const h = await hold;
    assert.equal(h.end, 'ECONNRESET', JSON.stringify(h));
    assert.ok(h.echoed > 5, 'it ran through the upgrade until the drain time was up');
    assert.ok(await eventually(() => !alive(old), 50, 100), 'the old agent exited');
    process.env.SLUICE_DRAIN_SECONDS = '20';
  });

  it('a new agent that dies after taking the listeners: the old one resumes in full, and a later upgrade works', async () => {
    const old = pidOf('node-1');
    const load = run<Load>(['load', VIP_1, '80', '6000']);
    await new Promise((r) => setTimeout(r, 500));
    // A "new agent" that takes the listeners and exits without ever accepting (a crash at start).
    const socket = path.join(simDir(sim.name), 'nodes', 'node-1', 'state', 'handover.sock');
    const handover = path.join(projectRoot, 'dist', 'src', 'agent', 'handover.js');
    const died = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(handover)}).requestHandover(${JSON.stringify(socket)}, 'node-1', 5000)`]);
    assert.equal(died.status, 0, String(died.stderr));
    // The old agent takes everything back: its admin socket, the maps (a new Service works), the handover socket.
    assert.ok(await eventually(() => sim.run(['ctl', 'node-1', '--', 'status']).code === 0, 50, 100), 'admin socket back');
    assert.equal(pidOf('node-1'), old);
    sim.apply(NEW_SERVICE);
    const r = sim.exec('up/client', ['node', `${fixtures}/restart-load.js`, 'load', VIP_NEW, '80', '300']);
    assert.equal((JSON.parse(r.stdout.trim()) as Load).failed, 0, `the new Service is served: ${r.stdout}${r.stderr}`);
    const l = await load;
    assert.deepEqual({ failed: l.failed, errors: l.errors }, { failed: 0, errors: {} }, JSON.stringify(l));
    sim.must(['agent', 'node-1', 'upgrade']);
    assert.notEqual(pidOf('node-1'), old, 'a later upgrade takes over');
    assert.ok(await eventually(() => !alive(old), 100, 100), 'and the old agent drains and exits');
  });

  it('a SIGTERM while a new agent is taking over starts the drain: the old agent exits, it does not wait for the new one', async () => {
    const old = pidOf('node-1');
    const socket = path.join(simDir(sim.name), 'nodes', 'node-1', 'state', 'handover.sock');
    const handover = path.join(projectRoot, 'dist', 'src', 'agent', 'handover.js');
    // A "new agent" that takes the listeners and then hangs, never saying it accepts.
    const hung = spawn(process.execPath, ['-e', `require(${JSON.stringify(handover)}).requestHandover(${JSON.stringify(socket)}, 'node-1', 5000); console.log('taken'); setTimeout(() => {}, 60000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => hung.stdout!.once('data', () => resolve()));
      process.kill(old, 'SIGTERM');
      assert.ok(await eventually(() => !alive(old), 100, 100), 'the old agent drained and exited within 10 s');
    } finally {
      hung.kill('SIGKILL');
      await new Promise((r) => hung.once('exit', r));
    }
    // The listener keeper still holds the listeners: a fresh start takes them.
    sim.must(['agent', 'node-1', 'start']);
    const l = await run<Load>(['load', VIP_1, '80', '500']);
    assert.equal(l.failed, 0, JSON.stringify(l));
  });

  it('a plain restart fails no request: in-flight ones end during the stop drain, new ones wait in the listener keeper\'s queue', async () => {
    const loads = [run<Load>(['load', VIP_1, '80', '5000']), run<Load>(['load', VIP_2, '80', '5000'])];
    // A connection that never ends keeps the stop drain going for all of --stop-drain-ms.
    const hold = run<Hold>(['hold', VIP_1, '80', '5000']);
    await new Promise((r) => setTimeout(r, 1000));
    sim.must(['agent', 'node-1', 'restart']);
    for (const [i, l] of (await Promise.all(loads)).entries()) {
      const name = i === 0 ? 'same node' : 'cross node';
      assert.ok(l.requests > 200, `${name}: load ran (${l.requests})`);
      assert.equal(l.failed, 0, `${name}: nothing refused, reset or timed out: ${JSON.stringify(l)}`);
    }
    // Relayed connections are not handed to the next agent (README, Not yet): what outlives the drain is reset.
    assert.equal((await hold).end, 'ECONNRESET', 'a connection open past the drain is reset, never closed cleanly');
    const keeperLog = fs.readFileSync(path.join(simDir(sim.name), 'logs', 'listener-keeper-node-1.log'), 'utf8');
    assert.match(keeperLog, /gave the held listeners to a starting agent/);
  });

  it('after kill -9 no new connection is refused; a connection the dead agent relayed ends in a reset, never a clean close', async () => {
    const loads = [run<Load>(['load', VIP_1, '80', '5000']), run<Load>(['load', VIP_2, '80', '5000'])];
    const hold = run<Hold>(['hold', VIP_1, '80', '5000']);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(pidOf('node-1'), 'SIGKILL');
    sim.must(['agent', 'node-1', 'start']);
    for (const [i, l] of (await Promise.all(loads)).entries()) {
      const name = i === 0 ? 'same node' : 'cross node';
      // Only a request in flight at the kill can fail (its relay died with the agent), and only by a reset.
      assert.deepEqual(Object.keys(l.errors).filter((e) => e !== 'ECONNRESET'), [], `${name}: nothing refused or timed out: ${JSON.stringify(l)}`);
      assert.ok(l.failed <= 2, `${name}: at most the requests in flight at the kill failed: ${JSON.stringify(l)}`);
    }
    const h = await hold;
    assert.equal(h.end, 'ECONNRESET', `the cut is visible to the client: ${JSON.stringify(h)}`);
  });
});
