import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateSimName } from '../../src/sim/sim-state';
import { cgroup2Root, requireRoot } from '../../src/sim/host';

describe('sim host checks', () => {
  it('says that it needs root, and why', (t) => {
    t.mock.method(process as unknown as { getuid(): number }, 'getuid', () => 1000);
    assert.throws(() => requireRoot('sluice-sim'), /sluice-sim needs root: it creates network namespaces, cgroups and BPF pins/);
  });

  it('finds the cgroup v2 mount wherever the host put it', () => {
    assert.match(cgroup2Root(), /^\/sys\/fs\/cgroup(\/unified)?$/);
  });

  it('accepts only short DNS-style cluster names', () => {
    assert.equal(validateSimName('demo-1'), 'demo-1');
    assert.throws(() => validateSimName('Demo'), /--name "Demo": must be 1-16 lowercase letters, digits or '-'/);
    assert.throws(() => validateSimName('a'.repeat(17)), /must be 1-16/);
    assert.throws(() => validateSimName('x_y'), /must be 1-16/);
  });
});
