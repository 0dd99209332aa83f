// Which files the manifest reader picks up, with a directory laid out as
// Kubernetes mounts a ConfigMap: every file twice, through "..data".
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { manifestFiles } from '../../src/control/manifests';
import { renderManifests } from '../../src/control/render';

const SAMPLE = ['web', 'api', 'db']
  .map(
    (name, i) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: demo, labels: { app: ${name} } }
spec: { nodeName: node-1, containers: [{ name: c, command: [x] }] }
status: { podIP: 10.244.1.${i + 2} }
---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: demo }
spec: { clusterIP: 10.96.0.${i + 10}, selector: { app: ${name} }, ports: [{ port: 80 }] }
`,
  )
  .join('---\n');

describe('manifest files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-manifests-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a ConfigMap volume once: "..data" and "..<timestamp>" directories and hidden files are skipped', () => {
    const volume = path.join(dir, 'configmap');
    const stamp = '..2026_11_30_18_00_00.123456789';
    fs.mkdirSync(path.join(volume, stamp), { recursive: true });
    fs.writeFileSync(path.join(volume, stamp, 'sample.yaml'), SAMPLE);
    fs.symlinkSync(stamp, path.join(volume, '..data'));
    fs.symlinkSync(path.join('..data', 'sample.yaml'), path.join(volume, 'sample.yaml'));
    fs.writeFileSync(path.join(volume, '.editor-backup.yaml'), 'not: [valid');

    assert.deepEqual(manifestFiles(volume), [path.join(volume, 'sample.yaml')]);
    const { rendering, fileErrors } = renderManifests(volume);
    assert.deepEqual([fileErrors, rendering.errors], [[], []]);
    assert.deepEqual(rendering.workloads.map((w) => w.name), ['web', 'api', 'db']);
    assert.deepEqual(rendering.services.map((s) => s.clusterIPs[0]), ['10.96.0.10', '10.96.0.11', '10.96.0.12']);
  });

  it('still reads ordinary subdirectories', () => {
    const root = path.join(dir, 'tree');
    fs.mkdirSync(path.join(root, 'apps'), { recursive: true });
    fs.writeFileSync(path.join(root, 'apps', 'a.yaml'), '');
    fs.writeFileSync(path.join(root, 'b.json'), '');
    fs.writeFileSync(path.join(root, 'notes.txt'), '');
    assert.deepEqual(manifestFiles(root), [path.join(root, 'apps', 'a.yaml'), path.join(root, 'b.json')]);
  });
});
