// The kernel side on its own: load, attach to a cgroup this test creates,
// pin, re-use after a restart, map operations, detach, and nothing left behind.
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BpfDatapath, PROGRAMS, schemaDir } from '../../src/kernel/bpf-datapath';
import { IPPROTO_TCP } from '../../src/datapath/map-codecs';
import { addon, isNativeError } from '../../src/native/bpf-addon';
import { cgroup2Root, ensureBpffs } from '../../src/sim/host';
import { fixtures } from '../helpers/sim-fixture';

const NAME = 'sluice-it-datapath';
const cgroup = path.join(cgroup2Root(), NAME);
const bpffs = path.join('/sys/fs/bpf', NAME);
const NETNS = NAME;
const PROXY = '10.77.0.1';
const opts = { bpffsDir: bpffs, cgroupPath: cgroup, proxyAddress: PROXY, proxyPort: 15001 };

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

function clear(): void {
  if (fs.existsSync(bpffs)) fs.rmSync(bpffs, { recursive: true, force: true });
  try {
    fs.rmdirSync(cgroup);
  } catch {
    // absent
  }
  try {
    sh('ip', ['netns', 'del', NETNS]);
  } catch {
    // absent
  }
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function attachedTo(dir: string): string[] {
  const out = sh('bpftool', ['-j', 'cgroup', 'show', dir]).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((p) => p.name) : [];
}

describe('bpf datapath (privileged)', { timeout: 120000 }, () => {
  before(() => {
    clear(); // leftovers of a crashed earlier run
    ensureBpffs();
    fs.mkdirSync(cgroup);
    sh('ip', ['netns', 'add', NETNS]);
    sh('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', NETNS, 'addr', 'add', `${PROXY}/32`, 'dev', 'lo']);
  });
  after(() => {
    if (fs.existsSync(bpffs)) BpfDatapath.uninstall(bpffs);
    clear();
  });

  it('loads, attaches every program through pinned links, and closes without leaking handles', async () => {
    const fdsBefore = openFds();
    const dp = await BpfDatapath.open(opts);
    assert.deepEqual(dp.attached.map((a) => a.program), [...PROGRAMS]);
    assert.ok(dp.attached.every((a) => !a.reused));
    const pins = fs.readdirSync(schemaDir(bpffs)).sort();
    assert.deepEqual(pins, ['links', 'sluice_config', 'sluice_counters', 'sluice_enroll', 'sluice_inbound', 'sluice_orig', 'sluice_strict', 'sluice_tuples', 'sluice_vips']);
    assert.deepEqual(fs.readdirSync(path.join(schemaDir(bpffs), 'links')).sort(), [...PROGRAMS].sort());
    assert.deepEqual(attachedTo(cgroup).sort(), [...PROGRAMS].sort());
    dp.close();
    assert.equal(openFds(), fdsBefore, 'every kernel handle is closed');
    assert.deepEqual(attachedTo(cgroup).length, PROGRAMS.length, 'programs stay attached while the agent is away');
  });

  it('reconciles map contents: update, delete, prune, and nothing on a second pass', async () => {
    const dp = await BpfDatapath.open(opts);
    try {
      const vip = (port: number) => ({ key: { address: '10.96.0.99', port, proto: IPPROTO_TCP }, value: { serviceId: port, flags: 0 } });
      let r = dp.apply({ enrollments: new Map([[42n, { workloadId: 1, flags: 0 }]]), vips: new Map([['t/a', [vip(80), vip(81)]]]) });
      assert.deepEqual(r.map((x) => [x.updated, x.deleted]), [[1, 0], [2, 0]]);
      assert.deepEqual(dp.enroll.lookup(42n), { workloadId: 1, flags: 0 });
      r = dp.apply({ enrollments: new Map([[42n, { workloadId: 1, flags: 0 }]]), vips: new Map([['t/a', [vip(80), vip(81)]]]) });
      assert.deepEqual(r.map((x) => [x.updated, x.deleted, x.unchanged]), [[0, 0, 1], [0, 0, 2]]);
      r = dp.apply({ enrollments: new Map(), vips: new Map([['t/a', [vip(81)]]]) });
      assert.deepEqual(r.map((x) => [x.updated, x.deleted]), [[0, 1], [0, 1]]);
      assert.deepEqual(dp.vips.entries().map((e) => e.key.port), [81]);
      assert.equal(dp.enroll.lookup(42n), undefined);
      // one service at a time: only its entries are written or removed
      assert.deepEqual(dp.updateServiceVips('t/b', [vip(90), vip(91)]), { updated: 2, deleted: 0 });
      assert.deepEqual(dp.updateServiceVips('t/b', [vip(91)]), { updated: 0, deleted: 1 });
      assert.deepEqual(dp.updateServiceVips('t/a', undefined), { updated: 0, deleted: 1 });
      assert.deepEqual(dp.vips.entries().map((e) => e.key.port), [91]);
    } finally {
      dp.close();
    }
  });

  it('counts the maps\' entries for metrics off the JS thread, and fill() serves the last count', async () => {
    const dp = await BpfDatapath.open(opts);
    try {
      dp.apply({ enrollments: new Map([[5n, { workloadId: 1, flags: 0 }], [6n, { workloadId: 2, flags: 0 }]]), vips: new Map() });
      const counted = await dp.countFill();
      assert.deepEqual(counted.find((m) => m.map === 'sluice_enroll'), { map: 'sluice_enroll', entries: 2, capacity: 65536 });
      assert.deepEqual(dp.fill(), counted, 'fill() answers from the count, without walking the maps itself');
      dp.apply({ enrollments: new Map(), vips: new Map() });
      assert.equal(dp.fill().find((m) => m.map === 'sluice_enroll')?.entries, 2, 'within 10 s of a count the last one is served');
    } finally {
      dp.close();
    }
  });

  it('a failed map operation names the map, with the errno kept', async () => {
    const dp = await BpfDatapath.open(opts);
    const enroll = dp.enroll;
    dp.close(); // its descriptors are gone: every operation fails
    assert.throws(() => enroll.lookup(1n), (err: Error & { code?: string }) => /^map sluice_enroll: map lookup/.test(err.message) && typeof err.code === 'string');
    assert.throws(() => enroll.update(1n, { workloadId: 1, flags: 0 }), (err: Error) => /^map sluice_enroll: map update/.test(err.message));
  });

  it('re-uses pinned maps and links after a restart: entries survive, programs are swapped in place', async () => {
    const first = await BpfDatapath.open(opts);
    first.apply({ enrollments: new Map([[7n, { workloadId: 3, flags: 0 }]]), vips: new Map() });
    first.close();
    const second = await BpfDatapath.open(opts);
    try {
      assert.ok(second.attached.every((a) => a.reused), JSON.stringify(second.attached));
      assert.deepEqual(second.enroll.lookup(7n), { workloadId: 3, flags: 0 }, 'map contents survive the restart');
      assert.equal(attachedTo(cgroup).length, PROGRAMS.length, 'no duplicate attachments');
    } finally {
      second.close();
    }
  });

  it('captures an enrolled netns connecting to a VIP and records its original destination', async () => {
    const dp = await BpfDatapath.open(opts);
    try {
      const cookie = await addon().netnsCookie(`/run/netns/${NETNS}`);
      dp.apply({
        enrollments: new Map([[cookie, { workloadId: 9, flags: 0 }]]),
        vips: new Map([['t/probe', [{ key: { address: '10.96.0.99', port: 80, proto: IPPROTO_TCP }, value: { serviceId: 5, flags: 0 } }]]]),
      });
      const before = dp.counters();
      const probe = spawn('/bin/sh', [
        '-c',
        'echo $$ > "$0/cgroup.procs" && exec nsenter --net=/run/netns/$1 -- "$2" "$3" "$4" 10.96.0.99 80',
        cgroup,
        NETNS,
        process.execPath,
        `${fixtures}/capture-probe.js`,
        PROXY,
      ]);
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        probe.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        probe.on('exit', (code) => reject(new Error(`probe exited ${code}: ${out}`)));
      });
      const seen = JSON.parse(line) as { acceptedFrom: string; acceptedOn: string; clientPeer: string };
      assert.equal(seen.acceptedOn, `${PROXY}:15001`, 'the connect was rewritten to the proxy address');
      assert.equal(seen.clientPeer, '10.96.0.99:80', 'getpeername shows the VIP');
      const tuples = dp.tuples.entries();
      const [srcAddress, srcPort] = seen.acceptedFrom.split(':');
      const entry = tuples.find((t) => t.key.srcAddress === srcAddress && t.key.srcPort === Number(srcPort));
      assert.ok(entry, `tuple recorded: ${JSON.stringify(tuples, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
      assert.deepEqual(entry.value, { address: '10.96.0.99', port: 80, serviceId: 5, netnsCookie: cookie });
      const after = dp.counters();
      assert.equal(after.connect_captured - before.connect_captured, 1);
      await new Promise((r) => probe.on('exit', r));
    } finally {
      dp.close();
    }
  });

  it('removes the pins of another schema version once its own programs are attached', async () => {
    const stale = path.join(bpffs, 'v0');
    fs.mkdirSync(path.join(stale, 'links'), { recursive: true });
    const dp = await BpfDatapath.open(opts);
    dp.close();
    assert.equal(fs.existsSync(stale), false);
    assert.ok(fs.existsSync(schemaDir(bpffs)));
  });

  it('fails with a clear, coded error on a cgroup that does not exist', async () => {
    await assert.rejects(BpfDatapath.open({ ...opts, cgroupPath: `${cgroup}-missing` }), /--cgroup .*-missing: no such cgroup directory/);
    const dp = await BpfDatapath.open(opts);
    dp.close();
    const obj = await addon().loadObject(`${__dirname}/../../../build/bpf/sluice.bpf.o`, schemaDir(bpffs));
    try {
      await assert.rejects(obj.attachCgroup('sluice_connect4', `${cgroup}-missing`, path.join(bpffs, 'x')), (e: unknown) => {
        assert.ok(isNativeError(e));
        assert.equal(e.code, 'ENOENT');
        assert.match(e.message, /^attach sluice_connect4 to .*-missing: No such file or directory \(ENOENT\)$/);
        return true;
      });
    } finally {
      obj.close();
    }
  });

  it('refuses a --bpffs directory that is not on a bpf filesystem', async () => {
    await assert.rejects(BpfDatapath.open({ ...opts, bpffsDir: '/tmp/sluice-not-bpffs' }), /--bpffs \/tmp\/sluice-not-bpffs: not on a bpf filesystem/);
  });

  it('uninstall detaches every program and removes every pin', () => {
    BpfDatapath.uninstall(bpffs);
    assert.deepEqual(attachedTo(cgroup), []);
    assert.equal(fs.existsSync(bpffs), false);
  });
});
