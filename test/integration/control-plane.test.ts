// An agent process against a real sluice-control process over gRPC (Delta
// ADS), both on loopback, the agent capturing a cgroup this test creates:
// initial sync, incremental changes and removals, a broken manifest that
// keeps the last good state, a NACK for one bad resource while the rest
// applies (against a Delta ADS server run by the test itself), a control
// plane restart, and an agent restart while the control plane is away.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { defaultLoadBalancing, type Service } from '../../src/model/resources';
import { cgroup2Root, ensureBpffs, getJson, killCgroup, removeCgroup } from '../../src/sim/host';
import { DeltaAdsServer } from '../../src/xds/delta-server';
import { sluiceType, type Any } from '../../src/xds/protos';
import { AUTHORIZATION_POLICY_TYPE, PEER_AUTHENTICATION_TYPE, SERVICE_TYPE, WORKLOAD_TYPE, serviceCodec } from '../../src/xds/resource-types';
import { projectRoot } from '../helpers/sim-fixture';

/**
 * A fake control plane that serves Services only, and answers the other
 * types the agent subscribes to with empty sets: a server answers a type
 * only once it has set it (src/xds/delta-server.ts).
 */
function fakeControlPlane(): DeltaAdsServer {
  const server = new DeltaAdsServer(pino({ level: 'silent' }));
  for (const type of [WORKLOAD_TYPE, AUTHORIZATION_POLICY_TYPE, PEER_AUTHENTICATION_TYPE]) server.setResources(type, new Map(), 'fake');
  return server;
}

const NAME = 'sluice-it-control';
const cgroupRoot = path.join(cgroup2Root(), NAME);
/** Processes the test starts live here, so a crashed run's leftovers can be killed by name. */
const procsCgroup = path.join(cgroupRoot, 'procs');
const bpffsRoot = '/sys/fs/bpf';
const agentMain = path.join(projectRoot, 'dist', 'src', 'agent', 'main.js');
const controlMain = path.join(projectRoot, 'dist', 'src', 'control', 'main.js');

/** Removes whatever a crashed earlier run left: processes (by cgroup), cgroups, pins, temp dirs. */
async function clearLeftovers(): Promise<void> {
  if (fs.existsSync(cgroupRoot)) {
    killCgroup(cgroupRoot);
    await removeCgroup(cgroupRoot);
  }
  for (const e of fs.existsSync(bpffsRoot) ? fs.readdirSync(bpffsRoot) : []) {
    if (e.startsWith(NAME)) fs.rmSync(path.join(bpffsRoot, e), { recursive: true, force: true });
  }
  for (const e of fs.readdirSync(os.tmpdir())) {
    if (e.startsWith(`${NAME}-`)) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a process inside procsCgroup (joined before exec), output appended to logFile. */
function startProcess(argv: string[], logFile: string): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  try {
    return spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', procsCgroup, ...argv], { stdio: ['ignore', out, out] });
  } finally {
    fs.closeSync(out);
  }
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

function tail(file: string, chars = 3000): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15000, logs: string[] = []): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}\n${logs.map((l) => `--- ${l}\n${tail(l)}`).join('\n')}`);
    await sleep(100);
  }
}

interface XdsType {
  type: string;
  received: number;
  acks: number;
  nacks: number;
  lastAck?: { version: string; nonce: string };
  lastNack?: { version: string; nonce: string; reason: string };
}

interface AgentStatus {
  pid: number;
  ready: boolean;
  pending: string[];
  services: number;
  config: { source: string; version: string; xds: { state: string; connectedSince: string; lastError: string; types: XdsType[] } };
}

interface ControlStatus {
  version: string;
  manifestDigest: string;
  fileProblems: { file: string; reason: string }[];
  objectErrors: string[];
  counters: { pushes: number; acks: number; nacks: number };
  streams: { node: string; types: { type: string; resources: number; lastAckNonce: string; lastNack?: { message: string } }[] }[];
}

/** One agent: its own captured cgroup, pins, sockets and state directory. */
class AgentUnderTest {
  child?: ChildProcess;
  readonly cgroup: string;
  readonly bpffs: string;
  readonly adminSocket: string;
  readonly stateDir: string;
  readonly log: string;

  constructor(
    private readonly dir: string,
    readonly label: string,
    private readonly controlPlane: () => string,
    private readonly extraArgs: string[] = [],
  ) {
    this.cgroup = path.join(cgroupRoot, `captured-${label}`);
    this.bpffs = path.join(bpffsRoot, `${NAME}-${label}`);
    this.adminSocket = path.join(dir, `agent-${label}.sock`);
    this.stateDir = path.join(dir, `state-${label}`);
    this.log = path.join(dir, `agent-${label}.log`);
    fs.mkdirSync(this.cgroup, { recursive: true });
    fs.mkdirSync(path.join(dir, `pods-${label}`), { recursive: true });
  }

  async start(): Promise<void> {
    const proxyPort = await freePort();
    this.child = startProcess(
      [
        process.execPath, agentMain,
        '--node-name', 'node-1',
        '--control-plane', this.controlPlane(),
        '--state-dir', this.stateDir,
        '--pod-netns-dir', path.join(this.dir, `pods-${this.label}`),
        '--bpffs', this.bpffs,
        '--cgroup', this.cgroup,
        '--proxy-address', '127.0.0.1',
        '--proxy-port', String(proxyPort),
        '--admin-socket', this.adminSocket,
        '--admin-port', '0',
        '--metrics-port', '0',
        '--readiness-port', '0',
        '--log-file', this.log,
        ...this.extraArgs,
      ],
      `${this.log}.stderr`,
    );
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return stopProcess(this.child, signal);
  }

  async status(): Promise<AgentStatus> {
    const r = await getJson(this.adminSocket, '/status', 2000);
    return r.body as AgentStatus;
  }

  async vips(): Promise<{ vip: string; serviceId: number; service: string }[]> {
    const r = await getJson(this.adminSocket, '/maps', 2000);
    return ((r.body as { vips: { vip: string; serviceId: number; service: string }[] }).vips ?? []).sort((a, b) => a.vip.localeCompare(b.vip));
  }

  async vipList(): Promise<string[]> {
    return (await this.vips()).map((v) => v.vip);
  }

  serviceType(s: AgentStatus): XdsType {
    const t = s.config.xds.types.find((x) => x.type === SERVICE_TYPE);
    assert.ok(t, `the agent subscribes to ${SERVICE_TYPE}`);
    return t;
  }

  waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15000): Promise<T> {
    return waitFor(what, probe, timeoutMs, [this.log, `${this.log}.stderr`]);
  }
}

const manifest = (services: { name: string; ip: string; port?: number }[]) =>
  [
    `apiVersion: v1
kind: Namespace
metadata: { name: t, labels: { sluice.dev/mesh: enabled } }`,
    ...services.map(
      (s) => `apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: t }
spec:
  clusterIP: ${s.ip}
  ports: [{ port: ${s.port ?? 80}, targetPort: 8080 }]`,
    ),
  ].join('\n---\n') + '\n';

describe('sluice-agent against sluice-control over gRPC (privileged)', { timeout: 150000 }, () => {
  let dir = '';
  let manifestsDir = '';
  let servicesFile = '';
  let controlSocket = '';
  let controlLog = '';
  let controlPort = 0;
  let control: ChildProcess | undefined;
  let agent: AgentUnderTest;
  let fake: DeltaAdsServer | undefined;
  let nackAgent: AgentUnderTest | undefined;
  let fullAgent: AgentUnderTest | undefined;
  let fakeFull: DeltaAdsServer | undefined;

  const writeServices = (text: string) => {
    const tmp = path.join(dir, 'services.yaml.tmp');
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, servicesFile);
  };
  const controlStatus = async () => (await getJson(controlSocket, '/status', 2000)).body as ControlStatus;
  const startControl = () => {
    control = startProcess(
      [process.execPath, controlMain, '--manifests', manifestsDir, '--listen', `127.0.0.1:${controlPort}`, '--metrics-listen', '127.0.0.1:0', '--admin-socket', controlSocket, '--log-file', controlLog],
      `${controlLog}.stderr`,
    );
  };
  const waitControl = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15000) =>
    waitFor(what, probe, timeoutMs, [controlLog, `${controlLog}.stderr`]);

  before(async () => {
    await clearLeftovers();
    ensureBpffs();
    fs.mkdirSync(procsCgroup, { recursive: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${NAME}-`));
    manifestsDir = path.join(dir, 'manifests');
    fs.mkdirSync(manifestsDir);
    servicesFile = path.join(manifestsDir, 'services.yaml');
    controlSocket = path.join(dir, 'control.sock');
    controlLog = path.join(dir, 'control.log');
    controlPort = await freePort();
    agent = new AgentUnderTest(dir, 'main', () => `127.0.0.1:${controlPort}`);
  });

  after(async () => {
    await stopProcess(agent?.child, 'SIGKILL');
    await stopProcess(nackAgent?.child, 'SIGKILL');
    await stopProcess(fullAgent?.child, 'SIGKILL');
    await fakeFull?.close();
    await stopProcess(control, 'SIGKILL');
    await fake?.close().catch(() => undefined);
    await clearLeftovers();
  });

  it('initial sync: the services of the manifests become VIPs in the agent', async () => {
    writeServices(manifest([{ name: 'a', ip: '10.96.5.1' }, { name: 'b', ip: '10.96.5.2', port: 443 }]));
    startControl();
    const cs = await waitControl('the control plane to serve', async () => {
      const s = await controlStatus();
      return s.version !== '0' && s.manifestDigest ? s : undefined;
    });
    assert.deepEqual(cs.fileProblems, []);
    assert.deepEqual(cs.objectErrors, []);
    await agent.start();
    const s = await agent.waitFor('the agent to be ready', async () => {
      const st = await agent.status();
      return st.ready ? st : undefined;
    });
    assert.equal(s.config.xds.state, 'connected');
    assert.equal(s.config.version, cs.version, 'the agent serves the control plane version');
    assert.equal(s.config.xds.types.length, 4, 'one subscription per resource type');
    for (const t of s.config.xds.types) {
      assert.ok(t.lastAck, `${t.type} was ACKed`);
      assert.equal(t.lastAck.version, cs.version);
      assert.equal(t.lastNack, undefined, `${t.type} was not NACKed`);
    }
    assert.equal(agent.serviceType(s).received, 2);
    await agent.waitFor('VIPs in the maps', async () => (await agent.vipList()).length === 2);
    assert.deepEqual(
      (await agent.vips()).map((v) => [v.vip, v.service]),
      [
        ['10.96.5.1:80', 't/a'],
        ['10.96.5.2:443', 't/b'],
      ],
    );
    const streams = (await controlStatus()).streams;
    assert.deepEqual(streams.map((st) => st.node), ['node-1'], 'the control plane sees one stream, from node-1');
  });

  it('incremental update: a new service appears, untouched ones keep their entries and are not re-sent', async () => {
    const before = await agent.vips();
    const s0 = await agent.status();
    const receivedBefore = agent.serviceType(s0).received;
    const ackBefore = agent.serviceType(s0).lastAck!.nonce;
    writeServices(manifest([{ name: 'a', ip: '10.96.5.1' }, { name: 'b', ip: '10.96.5.2', port: 443 }, { name: 'c', ip: '10.96.5.3' }]));
    await agent.waitFor('the new VIP', async () => (await agent.vipList()).includes('10.96.5.3:80'));
    const after = await agent.vips();
    assert.deepEqual(after.map((v) => v.vip), ['10.96.5.1:80', '10.96.5.2:443', '10.96.5.3:80']);
    for (const v of before) assert.deepEqual(after.find((x) => x.vip === v.vip), v, `${v.vip} kept its entry`);
    const s1 = await agent.status();
    const t = agent.serviceType(s1);
    assert.notEqual(t.lastAck!.nonce, ackBefore, 'the change came as a new response, ACKed');
    assert.equal(t.received - receivedBefore, 1, 'only the new service was sent (delta), not the untouched ones');
    assert.equal(s1.config.version, (await controlStatus()).version);
  });

  it('resource removal: a service deleted from the file leaves the maps', async () => {
    writeServices(manifest([{ name: 'a', ip: '10.96.5.1' }, { name: 'c', ip: '10.96.5.3' }]));
    await agent.waitFor('the removed VIP to go', async () => !(await agent.vipList()).includes('10.96.5.2:443'));
    assert.deepEqual(await agent.vipList(), ['10.96.5.1:80', '10.96.5.3:80']);
    const s = await agent.status();
    assert.equal(s.services, 2);
    assert.equal(s.config.version, (await controlStatus()).version);
    assert.equal(agent.serviceType(s).lastNack, undefined);
  });

  it('a manifest that becomes invalid YAML: the control plane reports it and keeps serving the last good state', async () => {
    const good = await controlStatus();
    const agentBefore = await agent.status();
    writeServices('apiVersion: v1\nkind: Service\nmetadata: { name: broken\nspec: [\n');
    const cs = await waitControl('the file problem to be reported', async () => {
      const s = await controlStatus();
      return s.fileProblems.length ? s : undefined;
    });
    assert.equal(cs.fileProblems.length, 1);
    assert.equal(cs.fileProblems[0].file, servicesFile);
    assert.match(cs.fileProblems[0].reason, /services\.yaml \(document 1\): invalid YAML/);
    assert.equal(cs.version, good.version, 'nothing new was published');
    assert.equal(cs.manifestDigest, good.manifestDigest, 'the objects in use are those of the last good file');
    // Give a push (if one were wrongly made) time to arrive, then check the agent kept everything.
    await sleep(1500);
    const s = await agent.status();
    assert.equal(s.config.version, agentBefore.config.version);
    assert.equal(agent.serviceType(s).received, agent.serviceType(agentBefore).received, 'nothing was pushed');
    assert.deepEqual(await agent.vipList(), ['10.96.5.1:80', '10.96.5.3:80']);
    // Fixed again: the problem clears.
    writeServices(manifest([{ name: 'a', ip: '10.96.5.1' }, { name: 'c', ip: '10.96.5.3' }]));
    await waitControl('the problem to clear', async () => (await controlStatus()).fileProblems.length === 0);
    assert.deepEqual(await agent.vipList(), ['10.96.5.1:80', '10.96.5.3:80']);
  });

  it('control plane restart: the agent keeps its VIPs throughout and reconnects', async () => {
    const s0 = await agent.status();
    assert.equal(s0.config.xds.state, 'connected');
    const expected = ['10.96.5.1:80', '10.96.5.3:80'];
    const checkVips = async (when: string) => assert.deepEqual(await agent.vipList(), expected, `VIPs intact ${when}`);

    await stopProcess(control, 'SIGKILL');
    await agent.waitFor('the agent to notice the control plane is gone', async () => {
      await checkVips('while the control plane goes away');
      return (await agent.status()).config.xds.state !== 'connected';
    });
    const down = await agent.status();
    assert.notEqual(down.config.xds.lastError, '', 'the agent says why it is not connected');
    assert.equal(down.ready, true, 'the agent stays ready on its last good state');
    for (let i = 0; i < 5; i++) {
      await checkVips('while the control plane is down');
      await sleep(200);
    }
    startControl();
    const s1 = await agent.waitFor(
      'the agent to reconnect',
      async () => {
        await checkVips('while the control plane comes back');
        const s = await agent.status();
        return s.config.xds.state === 'connected' ? s : undefined;
      },
      45000,
    );
    assert.ok(s1.config.xds.connectedSince > s0.config.xds.connectedSince, 'a new stream was opened');
    assert.equal(s1.config.xds.lastError, '');
    await checkVips('after reconnecting');
    const cs = await waitControl('the control plane to see the stream', async () => {
      const s = await controlStatus();
      return s.streams.length === 1 ? s : undefined;
    });
    await agent.waitFor('the agent to serve the new control plane version', async () => (await agent.status()).config.version === cs.version);
    assert.equal((await agent.status()).pid, s0.pid, 'the same agent process throughout');
  });

  it('control plane down and agent restarted: the agent comes up from its persisted state', async () => {
    const before = await agent.status();
    // A stop (SIGTERM) persists what is pending; the file's format is the agent's own business.
    assert.equal(await agent.stop('SIGTERM'), 0);
    assert.notDeepEqual(fs.readdirSync(agent.stateDir), [], 'the agent left its state in --state-dir');
    await stopProcess(control, 'SIGKILL');
    // Remove the pins too (as after a reboot): whatever the maps hold afterwards
    // comes from the persisted state, not from the previous run's maps.
    fs.rmSync(agent.bpffs, { recursive: true, force: true });
    await agent.start();
    const s = await agent.waitFor('the restarted agent to be ready without a control plane', async () => {
      const st = await agent.status();
      return st.ready ? st : undefined;
    });
    assert.notEqual(s.pid, before.pid, 'a new agent process');
    assert.notEqual(s.config.xds.state, 'connected', 'there is no control plane to talk to');
    assert.match(s.config.source, /serving state saved at/);
    assert.equal(s.config.version, before.config.version);
    assert.equal(s.services, 2);
    await agent.waitFor('VIPs from the persisted state', async () => (await agent.vipList()).length === 2);
    assert.deepEqual(await agent.vipList(), ['10.96.5.1:80', '10.96.5.3:80']);
    await agent.stop('SIGKILL');
  });

  it('a bad resource is NACKed, naming it, while the others apply', async () => {
    fake = fakeControlPlane();
    const port = await fake.listen('127.0.0.1:0');
    const goodService: Service = {
      name: 'good',
      namespace: 't',
      clusterIPs: ['10.96.6.1'],
      ports: [{ name: '', port: 80, targetPort: 8080 }],
      endpoints: [],
      loadBalancing: { ...defaultLoadBalancing },
    };
    const good = serviceCodec.encode(goodService);
    // Encoded by hand: the codec would refuse to encode nothing, but the wire can carry anything.
    const T = sluiceType('sluice.v1.Service');
    const badMessage = { name: 'bad', namespace: 't', clusterIps: ['10.96.6.2'], ports: [{ name: '', port: 80, targetPort: 0 }], endpoints: [] };
    assert.equal(T.verify(badMessage), null);
    const bad: Any = { type_url: SERVICE_TYPE, value: Buffer.from(T.encode(T.fromObject(badMessage)).finish()) };
    fake.setResources(
      SERVICE_TYPE,
      new Map([
        ['t/good', { version: 'g1', resource: good }],
        ['t/bad', { version: 'b1', resource: bad }],
      ]),
      'fake-1',
    );
    nackAgent = new AgentUnderTest(dir, 'nack', () => `127.0.0.1:${port}`);
    await nackAgent.start();
    const s = await nackAgent.waitFor('the agent to sync with the fake server', async () => {
      const st = await nackAgent!.status();
      return st.ready ? st : undefined;
    });
    const t = nackAgent.serviceType(s);
    assert.ok(t.lastNack, 'the Service response was NACKed');
    assert.match(t.lastNack.reason, /^t\/bad: .*targetPort.*must be >= 1/);
    assert.doesNotMatch(t.lastNack.reason, /t\/good/, 'only the bad resource is named');
    assert.equal(t.nacks, 1);
    await nackAgent.waitFor('the good service in the maps', async () => (await nackAgent!.vipList()).length === 1);
    assert.deepEqual(
      (await nackAgent.vips()).map((v) => [v.vip, v.service]),
      [['10.96.6.1:80', 't/good']],
      'the good service applied, the bad one did not',
    );
    // The server saw the NACK on that stream and type.
    const streams = fake.status();
    assert.equal(streams.length, 1);
    const sub = streams[0].types.find((x) => x.type === SERVICE_TYPE);
    assert.ok(sub?.lastNack, 'the server recorded the NACK');
    assert.match(sub.lastNack.message, /t\/bad: .*targetPort/);
    assert.equal(fake.counters.nacks, 1);

    // The stream is not wedged: a fixed version of the bad resource is ACKed and applied.
    const fixed = serviceCodec.encode({ ...goodService, name: 'bad', clusterIPs: ['10.96.6.2'] });
    fake.setResources(
      SERVICE_TYPE,
      new Map([
        ['t/good', { version: 'g1', resource: good }],
        ['t/bad', { version: 'b2', resource: fixed }],
      ]),
      'fake-2',
    );
    await nackAgent.waitFor('the fixed service in the maps', async () => (await nackAgent!.vipList()).length === 2);
    const s2 = await nackAgent.status();
    assert.equal(nackAgent.serviceType(s2).lastAck?.version, 'fake-2');
    assert.deepEqual(await nackAgent.vipList(), ['10.96.6.1:80', '10.96.6.2:80']);
  });

  it('a service that does not fit in the VIP map is NACKed whole, naming the map; nothing half installed, nothing stale', async () => {
    fakeFull = fakeControlPlane();
    const port = await fakeFull.listen('127.0.0.1:0');
    const service = (name: string, ip: string): Service => ({
      name,
      namespace: 't',
      clusterIPs: [ip],
      ports: [{ name: 'a', port: 80, targetPort: 8080 }, { name: 'b', port: 81, targetPort: 8081 }],
      endpoints: [],
      loadBalancing: { ...defaultLoadBalancing },
    });
    const push = (services: Service[], version: string) =>
      fakeFull!.setResources(SERVICE_TYPE, new Map(services.map((s) => [`t/${s.name}`, { version, resource: serviceCodec.encode(s) }])), version);
    // Room for three entries: a needs two, b two more.
    push([service('a', '10.96.7.1'), service('b', '10.96.7.2')], 'v1');
    fullAgent = new AgentUnderTest(dir, 'full', () => `127.0.0.1:${port}`, ['--max-vip-entries', '3']);
    await fullAgent.start();
    const s = await fullAgent.waitFor('a NACK for the service that does not fit', async () => {
      const st = await fullAgent!.status();
      return fullAgent!.serviceType(st).lastNack ? st : undefined;
    });
    assert.match(fullAgent.serviceType(s).lastNack!.reason, /^t\/b: does not fit in map sluice_vips: needs 2 entries, 1 of 3 free/);
    await fullAgent.waitFor('a in the maps', async () => (await fullAgent!.vipList()).length === 2);
    assert.deepEqual(await fullAgent.vipList(), ['10.96.7.1:80', '10.96.7.1:81'], 'a whole, nothing of b');
    const fill = (await getJson(fullAgent.adminSocket, '/status', 2000)).body as { mapFill: { sluice_vips: { admitted: { entries: number; limit: number }; rejectedResources: number } } };
    assert.deepEqual(fill.mapFill.sluice_vips.admitted, { entries: 2, limit: 3 });
    assert.ok(fill.mapFill.sluice_vips.rejectedResources >= 1);
    // a goes away: b fits now, and nothing of a is left behind.
    push([service('b', '10.96.7.2')], 'v2');
    await fullAgent.waitFor('b in place of a', async () => (await fullAgent!.vipList()).join() === '10.96.7.2:80,10.96.7.2:81');
  });
});
