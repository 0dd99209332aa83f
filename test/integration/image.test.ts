// The container image `npm run image` builds (scripts/test.sh builds it
// before the tests): its OCI archive is read without a container engine,
// and every binary is run from the unpacked root filesystem with chroot, on
// the image's own Node.js and libbpf; then the archive is imported into a
// real containerd (Debian's, a private instance in a directory of the
// test's, CRI plugin off) and run by runc, as a node would. Needs root.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unpackImage, type UnpackedImage } from '../../src/sim/oci-image';

const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const ARCHIVE = path.join(PROJECT_ROOT, 'build', 'image', `sluice-${VERSION}.oci.tar`);
const PREFIX = 'sluice-imagetest-';

function inImage(image: UnpackedImage, argv: string[], opts: { env?: Record<string, string>; input?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const env = Object.fromEntries(image.config.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const r = spawnSync('chroot', [image.rootfs, ...argv], { encoding: 'utf8', env: { ...env, ...opts.env }, input: opts.input, timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the container image', () => {
  let dir = '';
  let image: UnpackedImage;

  before(() => {
    for (const d of fs.readdirSync(os.tmpdir())) if (d.startsWith(PREFIX)) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
    assert.ok(fs.existsSync(ARCHIVE), `${ARCHIVE} is missing: build it with "npm run image" (scripts/test.sh does)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
    image = unpackImage(ARCHIVE, dir);
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is saved under the name deploy/ uses, with the version of package.json', () => {
    assert.equal(image.ref, `ghcr.io/sluice-mesh/sluice:${VERSION}`);
    for (const file of ['sluice-agent.yaml', 'sluice-control.yaml']) {
      const refs = [...fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'base', file), 'utf8').matchAll(/image: (\S+)/g)].map((m) => m[1]);
      assert.ok(refs.length > 0 && refs.every((r) => r === image.ref), `deploy/base/${file} names ${refs.join(', ')}`);
    }
    assert.equal(image.config.labels['org.opencontainers.image.title'], 'sluice');
  });

  it('runs every binary on the image\'s own Node.js 20', () => {
    const node = inImage(image, ['node', '--version']);
    assert.equal(node.status, 0, node.stderr);
    assert.ok(Number(/^v(\d+)/.exec(node.stdout)?.[1]) >= 20, `node ${node.stdout.trim()}`);
    for (const bin of ['sluice-agent', 'sluice-control', 'sluicectl']) {
      const r = inImage(image, [bin, '--version']);
      assert.equal(r.status, 0, `${bin}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(VERSION.replace(/\./g, '\\.')), bin);
    }
    const cni = inImage(image, ['sluice-cni'], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
    assert.equal(cni.status, 0, cni.stderr);
    assert.ok((JSON.parse(cni.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.1.0'));
  });

  it('holds the BPF object and an addon that loads against the image\'s libbpf', () => {
    assert.ok(fs.statSync(path.join(image.rootfs, 'opt/sluice/build/bpf/sluice.bpf.o')).size > 0);
    const r = inImage(image, ['node', '-e', "const a = require('/opt/sluice/build/native/Release/sluice.node'); console.log(typeof a.sendFds)"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'function');
  });

  it('has the tools the agent runs (ip, nsenter, setpriv) and no build toolchain', () => {
    for (const tool of ['ip', 'nsenter', 'setpriv']) assert.equal(inImage(image, ['sh', '-c', `command -v ${tool}`]).status, 0, `${tool} is in the image`);
    for (const tool of ['clang', 'gcc', 'cmake', 'npm']) assert.notEqual(inImage(image, ['sh', '-c', `command -v ${tool}`]).status, 0, `${tool} stays in the build stage`);
    assert.equal(fs.existsSync(path.join(image.rootfs, 'opt/sluice/node_modules/typescript')), false, 'no dev dependencies');
  });
});

const CONTAINERD_PREFIX = 'sluice-ctrtest-';

/** Unmounts whatever is mounted below dir (deepest first), then removes it. */
function removeTree(dir: string): void {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(`${dir}/`));
  for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A crashed earlier run's containerd (its pid file) and directory. */
function clearContainerdLeftovers(): void {
  for (const d of fs.readdirSync('/var/tmp')) {
    if (!d.startsWith(CONTAINERD_PREFIX)) continue;
    const dir = path.join('/var/tmp', d);
    const pid = Number(fs.readFileSync(path.join(dir, 'containerd.pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
    if (pid > 0 && fs.existsSync(`/proc/${pid}/cmdline`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    removeTree(dir);
  }
}

describe('the container image in containerd', { timeout: 180000 }, () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  const ctr = (args: string[], input?: string) => spawnSync('ctr', ['--address', path.join(dir, 'containerd.sock'), '--namespace', 'k8s.io', ...args], { encoding: 'utf8', input, timeout: 120000 });

  before(async () => {
    clearContainerdLeftovers();
    assert.ok(fs.existsSync(ARCHIVE), `${ARCHIVE} is missing: build it with "npm run image" (scripts/test.sh does)`);
    dir = fs.mkdtempSync(path.join('/var/tmp', CONTAINERD_PREFIX));
    fs.writeFileSync(
      path.join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        // The CRI plugin would read the machine's CNI configuration; a node's kubelet is not part of this test.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${dir}/containerd.sock"`,
        '[ttrpc]',
        `  address = "${dir}/containerd-ttrpc.sock"`,
      ].join('\n'),
    );
    daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', fs.openSync(path.join(dir, 'containerd.log'), 'a'), fs.openSync(path.join(dir, 'containerd.log'), 'a')] });
    fs.writeFileSync(path.join(dir, 'containerd.pid'), String(daemon.pid));
    for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'containerd.sock')); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.existsSync(path.join(dir, 'containerd.sock')), `containerd did not start: ${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8').slice(-2000)}`);
  });

  after(async () => {
    if (daemon?.pid && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon!.once('exit', r));
      process.kill(daemon.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (daemon.exitCode === null) process.kill(daemon.pid, 'SIGKILL');
    }
    if (dir) removeTree(dir);
  });

  it('imports under the name deploy/ uses (ctr images import, as on a containerd node)', () => {
    const imported = ctr(['images', 'import', ARCHIVE]);
    assert.equal(imported.status, 0, imported.stderr);
    const names = ctr(['images', 'ls', '-q']).stdout.split('\n');
    assert.ok(names.includes(`ghcr.io/sluice-mesh/sluice:${VERSION}`), names.join(', '));
  });

  it('runs the agent, the control plane and the CNI plugin under runc', () => {
    const ref = `ghcr.io/sluice-mesh/sluice:${VERSION}`;
    // No cgroup of its own (--cgroup ""): the machine's cgroup tree is left alone.
    const run = (id: string, argv: string[], env: string[] = []) => ctr(['run', '--rm', '--cgroup', '', ...env.flatMap((e) => ['--env', e]), ref, `${CONTAINERD_PREFIX}${id}`, ...argv]);
    for (const bin of ['sluice-agent', 'sluice-control']) {
      const r = run(bin, [bin, '--version']);
      assert.equal(r.status, 0, `${bin}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^${bin} ${VERSION.replace(/\./g, '\\.')} \\(Node\\.js v20\\.`));
    }
    const cni = run('cni', ['sh', '-c', 'echo \'{"cniVersion":"1.0.0"}\' | sluice-cni'], ['CNI_COMMAND=VERSION']);
    assert.equal(cni.status, 0, cni.stderr);
    assert.ok((JSON.parse(cni.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'));
  });
});
