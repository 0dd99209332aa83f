import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadAgentConfig } from '../../src/config/agent-config';

const base = ['--node-name', 'node-1', '--snapshot', '/tmp/s.json', '--bpffs', '/sys/fs/bpf/x', '--cgroup', '/sys/fs/cgroup/x', '--proxy-address', '10.244.1.1'];

describe('agent configuration', () => {
  it('applies defaults and freezes the result', () => {
    const c = loadAgentConfig(base, {});
    assert.equal(c.proxyPort, 15001);
    assert.equal(c.adminPort, 15000);
    assert.equal(c.metricsPort, 15020);
    assert.equal(c.readinessPort, 15021);
    assert.ok(Object.isFrozen(c));
  });

  it('reads SLUICE_* environment variables, flags winning', () => {
    const c = loadAgentConfig([...base, '--proxy-port', '15002'], { SLUICE_PROXY_PORT: '16000', SLUICE_LOG_LEVEL: 'debug' });
    assert.equal(c.proxyPort, 15002);
    assert.equal(c.logLevel, 'debug');
  });

  it('names the missing flags', () => {
    assert.throws(() => loadAgentConfig(['--node-name', 'n'], {}), (e: Error) => e instanceof ConfigError && /missing --bpffs, --cgroup, --proxy-address/.test(e.message));
  });

  it('needs exactly one source of configuration', () => {
    const noSource = base.filter((_a, i) => i !== 2 && i !== 3);
    assert.throws(() => loadAgentConfig(noSource, {}), /give exactly one of --control-plane HOST:PORT \(xDS\) or --snapshot FILE \(static\)/);
    assert.throws(() => loadAgentConfig([...base, '--control-plane', '10.0.0.1:15010'], {}), /exactly one of/);
    assert.equal(loadAgentConfig([...noSource, '--control-plane', 'control:15010'], {}).controlPlane, 'control:15010');
    assert.throws(() => loadAgentConfig([...noSource, '--control-plane', 'control'], {}), /--control-plane: must match pattern .* \(got "control"\)/);
  });

  it('names the flag and the bad value', () => {
    assert.throws(() => loadAgentConfig([...base, '--proxy-port', '70000'], {}), /--proxy-port: must be <= 65535 \(got 70000\)/);
    assert.throws(() => loadAgentConfig([...base.slice(0, -1), '10.244.1.300'], {}), /--proxy-address: must match format "ipv4" \(got "10.244.1.300"\)/);
    assert.throws(() => loadAgentConfig([...base, '--log-level', 'loud'], {}), /--log-level: must be equal to one of the allowed values \(got "loud"\)/);
  });

  it('rejects unknown flags and flags without a value', () => {
    assert.throws(() => loadAgentConfig([...base, '--proxy-prot', '1'], {}), /unknown flag --proxy-prot/);
    assert.throws(() => loadAgentConfig([...base, '--proxy-port'], {}), /flag --proxy-port needs a value/);
  });
});
