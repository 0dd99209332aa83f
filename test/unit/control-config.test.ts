// sluice-control's node authentication settings: derived defaults, and the
// combinations that cannot work refused with the flag named.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadControlConfig } from '../../src/config/control-config';

describe('control plane node authentication', () => {
  it('defaults: secret with --node-secret-file, none without', () => {
    assert.equal(loadControlConfig(['--manifests', 'm.yaml'], {}).nodeAuth, 'none');
    assert.equal(loadControlConfig(['--manifests', 'm.yaml', '--node-secret-file', 's'], {}).nodeAuth, 'secret');
    const review = loadControlConfig(['--kubeconfig', 'k', '--node-auth', 'tokenreview'], {});
    assert.deepEqual([review.nodeAuth, review.agentServiceAccount, review.tokenAudience], ['tokenreview', 'sluice-system/sluice-agent', 'sluice']);
  });

  it('refuses what cannot work, naming the flags', () => {
    assert.throws(() => loadControlConfig(['--manifests', 'm.yaml', '--node-auth', 'tokenreview'], {}), /--node-auth tokenreview needs the Kubernetes API/);
    assert.throws(() => loadControlConfig(['--manifests', 'm.yaml', '--node-auth', 'secret'], {}), /--node-auth secret needs --node-secret-file/);
    assert.throws(() => loadControlConfig(['--kubeconfig', 'k', '--node-auth', 'kerberos'], {}), /node-auth/);
    assert.throws(() => loadControlConfig(['--kubeconfig', 'k', '--agent-service-account', 'no-slash'], {}), /agent-service-account/);
  });
});
