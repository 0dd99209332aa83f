// The import direction between the folders of src/ (DESIGN.md section 4):
// pure folders stay pure, only datapath/ reaches the kernel through native/,
// and only native/ loads the compiled addon.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const srcRoot = path.resolve(__dirname, '..', '..', '..', 'src');

/** folder -> folders it may import from */
const allowed: Record<string, string[]> = {
  model: [],
  // The CNI plugin runs for every pod: node built-ins only, nothing of the agent.
  cni: [],
  'command-line': [],
  config: ['command-line', 'model'],
  control: ['command-line', 'config', 'identity', 'model', 'observability', 'xds'],
  xds: ['model'],
  identity: ['model'],
  native: [],
  datapath: ['model', 'native'],
  proxy: ['model'],
  observability: [],
  agent: ['cni', 'command-line', 'config', 'datapath', 'identity', 'model', 'observability', 'proxy', 'xds'],
  cli: ['command-line', 'observability'],
  sim: ['command-line', 'control', 'identity', 'model'],
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('architecture', () => {
  const files = sourceFiles(srcRoot);

  it('every folder of src/ is known', () => {
    const folders = fs.readdirSync(srcRoot, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.deepEqual(folders.sort(), Object.keys(allowed).sort());
  });

  it('imports follow the allowed direction', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = path.relative(srcRoot, file).split(path.sep)[0];
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from '(\.\.\/[^']+)'/g)) {
        const target = path.relative(srcRoot, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
        if (target !== from && !allowed[from].includes(target)) violations.push(`${path.relative(srcRoot, file)} imports ${m[1]}`);
      }
    }
    assert.deepEqual(violations, []);
  });

  it('only native/ loads the compiled addon', () => {
    const loaders = files.filter((f) => /sluice\.node|require\(addonPath\)/.test(fs.readFileSync(f, 'utf8')));
    assert.deepEqual(loaders.map((f) => path.relative(srcRoot, f)), ['native/bpf-addon.ts']);
  });
});
