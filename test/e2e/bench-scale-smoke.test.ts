// A smoke run of `npm run bench:scale` with tiny sizes, from both of its
// configuration sources: an xDS server in the harness, and sluice-control
// following the Kubernetes API stand-in. It proves the harness still runs
// end to end (a real agent, real connections through new VIPs) and writes
// its JSON; it asserts no timing (BENCHMARKS.md: benchmarks are not tests).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

const SCALE = path.resolve(__dirname, '..', '..', 'bench', 'scale.js');

interface ScaleResult {
  source: string;
  scale: { services: number; endpoints: number; workloads: number };
  fullSyncMs: number;
  controlSyncMs: number | null;
  propagationMs: { samples: number[] };
  withIdleConnections: { connections: number; failed: number };
}

describe('bench:scale smoke run', { timeout: 300000 }, () => {
  // The harness clears its own leftovers (netns, cgroup, pins named sluice-scale); these are the test's.
  for (const e of fs.readdirSync(os.tmpdir())) if (e.startsWith('sluice-test-bench-scale-')) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-bench-scale-'));
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  for (const source of ['xds', 'kubernetes']) {
    it(`runs from ${source}: every service synced, every change reached its endpoint, the JSON written`, () => {
      const dir = path.join(out, source);
      const r = spawnSync(process.execPath, [SCALE, '--source', source, '--services', '20', '--endpoints-per-service', '2', '--changes', '3', '--idle-connections', '10', '--out', dir], {
        encoding: 'utf8',
        timeout: 240000,
      });
      assert.equal(r.status, 0, `bench:scale --source ${source} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
      const files = fs.readdirSync(dir).filter((f) => f.startsWith('scale-') && f.endsWith('.json'));
      assert.equal(files.length, 1, `one result file in ${dir}: ${files.join(', ')}`);
      const result = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8')) as ScaleResult;
      assert.equal(result.source, source);
      assert.deepEqual([result.scale.services, result.scale.endpoints], [20, 40]);
      assert.ok(result.fullSyncMs > 0, 'the agent became ready with every service');
      assert.equal(result.propagationMs.samples.length, 3, 'each change was answered through its new VIP');
      assert.deepEqual([result.withIdleConnections.connections, result.withIdleConnections.failed], [10, 0]);
      if (source === 'kubernetes') {
        assert.ok((result.controlSyncMs ?? 0) > 0, 'sluice-control listed the API and published');
        assert.equal(result.scale.workloads, 41, 'the control plane serves every pod as a workload, and the client');
      }
      assert.match(r.stdout, /\| full sync \(agent\)/, 'the table is printed');
    });
  }
});
