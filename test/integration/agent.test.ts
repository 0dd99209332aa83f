// The agent process on its own, in a network namespace and cgroup this test
// creates: readiness, a bad configuration rejected while the last good one
// keeps serving, start-up errors that say what is wrong, and a stop that
// leaves capture in place.
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { schemaDir } from '../../src/kernel/bpf-datapath';
import { cgroup2Root, ensureBpffs, getJson } from '../../src/sim/host';
import { projectRoot } from '../helpers/sim-fixture';

const NAME = 'sluice-it-agent';
const cgroup = path.join(cgroup2Root(), NAME);
const bpffs = path.join('/sys/fs/bpf', NAME);
const agentMain = path.join(projectRoot, 'dist', 'src', 'agent', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${NAME}-`));
const snapshotFile = path.join(dir, 'snapshot.json');
const adminSocket = path.join(dir, 'admin.sock');

const service = (name: string, ip: string, targetPort = 8080) => ({ name, namespace: 't', clusterIPs: [ip], ports: [{ port: 80, targetPort }] });

function writeSnapshot(doc: unknown): void {
  const tmp = `${snapshotFile}.tmp`;
  fs.writeFileSync(tmp, typeof doc === 'string' ? doc : JSON.stringify(doc));
  fs.renameSync(tmp, snapshotFile);
}

function clear(): void {
  fs.rmSync(bpffs, { recursive: true, force: true });
  try {
    fs.rmdirSync(cgroup);
  } catch {
    // absent
  }
  spawnSync('ip', ['netns', 'del', NAME]);
}

const flags = (extra: string[] = []) => [
  '--node-name', 'node-1',
  '--snapshot', snapshotFile,
  '--bpffs', bpffs,
  '--cgroup', cgroup,
  '--proxy-address', '10.78.0.1',
  '--pod-netns-dir', path.join(dir, 'pods'),
  '--admin-socket', adminSocket,
  '--admin-port', '0',
  '--metrics-port', '15020',
  '--readiness-port', '15021',
  '--log-file', path.join(dir, 'agent.log'),
  ...extra,
];

function startAgent(extra: string[] = []): ChildProcess {
  return spawn('nsenter', [`--net=/run/netns/${NAME}`, '--', process.execPath, agentMain, ...flags(extra)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function runAgentToExit(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync('nsenter', [`--net=/run/netns/${NAME}`, '--', process.execPath, agentMain, ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, stderr: r.stderr };
}

interface Status {
  ready: boolean;
  pending: string[];
  config: { version: string; file: { lastError: string; rejected: { name: string; reason: string }[] } };
  resync: { intervalSeconds: number; last: string; repairs: number };
  mapSync: { failingKeys: number; failing: unknown[] };
}

const status = async () => (await getJson(adminSocket, '/status')).body as Status;
const vips = async () => ((await getJson(adminSocket, '/maps')).body as { vips: { vip: string }[] }).vips.map((v) => v.vip).sort();

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}: ${fs.existsSync(path.join(dir, 'agent.log')) ? fs.readFileSync(path.join(dir, 'agent.log'), 'utf8').slice(-2000) : ''}`);
}

describe('sluice-agent process (privileged)', { timeout: 120000 }, () => {
  let agent: ChildProcess | undefined;

  before(() => {
    clear();
    ensureBpffs();
    fs.mkdirSync(cgroup);
    execFileSync('ip', ['netns', 'add', NAME]);
    execFileSync('ip', ['-n', NAME, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', NAME, 'addr', 'add', '10.78.0.1/32', 'dev', 'lo']);
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent!.once('exit', r));
    }
    clear();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad flags with a message that names the flag', () => {
    writeSnapshot({ version: 'v1', workloads: [], services: [] });
    const r = runAgentToExit(flags(['--proxy-port', 'abc']));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--proxy-port: must be integer \(got "abc"\)/);
  });

  it('fails to start, saying why, when the snapshot file does not exist', () => {
    const r = runAgentToExit(flags(['--snapshot', path.join(dir, 'missing.json')]));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--snapshot .*missing\.json: no such file/);
  });

  it('becomes ready, serves metrics, and reports readiness on 15021', async () => {
    writeSnapshot({ version: 'v1', workloads: [], services: [service('a', '10.96.0.1')] });
    agent = startAgent(['--resync-interval', '1']);
    await waitFor(async () => (await status()).ready, 'agent ready');
    assert.deepEqual(await vips(), ['10.96.0.1:80']);
    const metrics = execFileSync('nsenter', [`--net=/run/netns/${NAME}`, '--', 'curl', '-sf', 'http://127.0.0.1:15020/metrics'], { encoding: 'utf8' });
    assert.match(metrics, /^sluice_config_info\{version="v1"\} 1$/m);
    assert.match(metrics, /^sluice_bpf_events_total\{event="connect_captured"\} \d+$/m);
    const ready = execFileSync('nsenter', [`--net=/run/netns/${NAME}`, '--', 'curl', '-s', '-w', ' %{http_code}', 'http://127.0.0.1:15021/healthz/ready'], { encoding: 'utf8' });
    assert.match(ready, /"ready": true[\s\S]* 200$/);
  });

  it('keeps serving the last good state when the file becomes unreadable JSON', async () => {
    writeSnapshot('{ "version": "v2", "services": [');
    await waitFor(async () => (await status()).config.file.lastError !== '', 'error reported');
    const s = await status();
    assert.match(s.config.file.lastError, /snapshot\.json: not valid JSON/);
    assert.equal(s.config.version, 'v1');
    assert.deepEqual(await vips(), ['10.96.0.1:80'], 'the last good services are still in the maps');
  });

  it('rejects a bad resource alone and applies the rest', async () => {
    writeSnapshot({ version: 'v3', workloads: [], services: [service('a', '10.96.0.1'), service('b', '10.96.0.2', 0), service('c', '10.96.0.3')] });
    await waitFor(async () => (await status()).config.version === 'v3', 'v3 applied');
    const s = await status();
    assert.equal(s.config.file.lastError, '');
    assert.deepEqual(s.config.file.rejected.map((r) => `${r.name}: ${r.reason}`), ['t/b: services[1]: ports.0.targetPort: must be >= 1 (got 0)']);
    await waitFor(async () => (await vips()).length === 2, 'maps reconciled');
    assert.deepEqual(await vips(), ['10.96.0.1:80', '10.96.0.3:80']);
  });

  it('repairs VIP entries deleted or added behind its back within the resync interval, and counts them', async () => {
    const map = path.join(schemaDir(bpffs), 'sluice_vips');
    // Key: ::ffff:10.96.0.x, port 80 (network order), TCP, pad.
    const key = (last: number) => ['00', '00', '00', '00', '00', '00', '00', '00', '00', '00', 'ff', 'ff', '0a', '60', '00', last.toString(16).padStart(2, '0'), '00', '50', '06', '00'];
    const repairsBefore = (await status()).resync.repairs;
    execFileSync('bpftool', ['map', 'delete', 'pinned', map, 'key', 'hex', ...key(3)]);
    execFileSync('bpftool', ['map', 'update', 'pinned', map, 'key', 'hex', ...key(99), 'value', 'hex', '07', '00', '00', '00', '00', '00', '00', '00']);
    assert.deepEqual(await vips(), ['10.96.0.1:80', '10.96.0.99:80'], 'changed behind the agent');
    await waitFor(async () => (await vips()).join() === '10.96.0.1:80,10.96.0.3:80', 'the resync put the map right');
    const after = await status();
    assert.ok(after.resync.repairs >= repairsBefore + 2, 'both repairs counted');
    assert.deepEqual({ failingKeys: after.mapSync.failingKeys, failing: after.mapSync.failing }, { failingKeys: 0, failing: [] }, 'nothing left failing');
    const metrics = execFileSync('nsenter', [`--net=/run/netns/${NAME}`, '--', 'curl', '-sf', 'http://127.0.0.1:15020/metrics'], { encoding: 'utf8' });
    assert.match(metrics, /^sluice_map_repairs_total [1-9]\d*$/m);
    assert.match(metrics, /^# TYPE sluice_map_failing_keys gauge$/m);
    assert.match(metrics, /^sluice_map_retries_total 0$/m);
  });

  it('stops on SIGTERM and leaves the programs attached and pinned', async () => {
    const exited = new Promise<number | null>((r) => agent!.once('exit', (code) => r(code)));
    agent!.kill('SIGTERM');
    assert.equal(await exited, 0);
    const attached = JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' })) as unknown[];
    assert.equal(attached.length, 5);
    assert.ok(fs.existsSync(path.join(schemaDir(bpffs), 'sluice_vips')));
  });
});
