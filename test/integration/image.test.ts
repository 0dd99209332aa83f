// The container image `npm run image` builds (scripts/test.sh builds it
// before the tests): its OCI archive is read without a container engine,
// and every binary is run from the unpacked root filesystem with chroot, on
// the image's own Node.js and libbpf. Needs root.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
