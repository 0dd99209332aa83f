// The agent to control plane link: TLS with the control plane's SPIFFE
// identity checked against the mesh root, and a node credential on every
// xDS stream.
import * as assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { CertificateAuthority } from '../../src/identity/ca';
import { NODE_METADATA } from '../../src/identity/certificate-protocol';
import { controlPlaneChannelCredentials, controlPlaneServerCredentials } from '../../src/identity/control-plane-tls';
import { nodeToken, verifyNodeToken } from '../../src/identity/node-credential';
import { DeltaAdsClient, type TypeHandler } from '../../src/xds/delta-client';
import { DeltaAdsServer } from '../../src/xds/delta-server';
import { SERVICE_TYPE } from '../../src/xds/resource-types';

const quiet = pino({ level: 'silent' });
const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const handler: TypeHandler = { typeUrl: SERVICE_TYPE, versions: () => ({}), apply: () => [] };

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out: ${what}`);
}

describe('agent to control plane over TLS with node credentials', { timeout: 60000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ctls-'));
  const server = new DeltaAdsServer(quiet);
  let port = 0;
  let rootFile = '';
  let otherRootFile = '';

  const client = (root: string, token: string) => {
    const c = new DeltaAdsClient(
      {
        target: `127.0.0.1:${port}`,
        nodeId: 'node-1',
        credentials: controlPlaneChannelCredentials(root, 'cluster.local'),
        metadata: () => {
          const md = new Metadata();
          md.set(NODE_METADATA, 'node-1');
          md.set('authorization', `Bearer ${token}`);
          return md;
        },
        initialBackoffMs: 50,
        maxBackoffMs: 100,
      },
      [handler],
      quiet,
    );
    c.start();
    return c;
  };

  before(async () => {
    const ca = await CertificateAuthority.loadOrCreate(path.join(dir, 'ca'), { trustDomain: 'cluster.local' });
    rootFile = path.join(dir, 'ca', 'root-cert.pem');
    const other = await CertificateAuthority.create({ trustDomain: 'cluster.local' });
    otherRootFile = path.join(dir, 'other-root.pem');
    fs.writeFileSync(otherRootFile, other.rootPem);
    server.authenticate = async (md) => {
      const node = String(md.get(NODE_METADATA)[0] ?? '');
      const auth = String(md.get('authorization')[0] ?? '');
      return verifyNodeToken(secret, node, auth.replace(/^Bearer /, '')) ? { node } : { refused: `node credential for ${node} does not verify` };
    };
    server.setResources(SERVICE_TYPE, new Map(), '1');
    port = await server.listen('127.0.0.1:0', await controlPlaneServerCredentials(ca, path.join(dir, 'ca'), () => undefined));
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('connects and syncs with the mesh root and a valid node credential', async () => {
    const c = client(rootFile, nodeToken(secret, 'node-1'));
    try {
      await until(() => c.synced && c.state === 'connected', 'synced over TLS');
      assert.equal(server.status()[0]?.node, 'node-1');
    } finally {
      c.stop();
    }
  });

  it('is refused with a credential of another node', async () => {
    const c = client(rootFile, nodeToken(secret, 'node-2'));
    try {
      await until(() => c.lastError !== '', 'refused');
      assert.match(c.lastError, /UNAUTHENTICATED: node credential for node-1 does not verify/);
      assert.equal(c.synced, false);
    } finally {
      c.stop();
    }
  });

  it('does not trust a control plane whose certificate another root signed', async () => {
    const c = client(otherRootFile, nodeToken(secret, 'node-1'));
    try {
      await until(() => c.lastError !== '', 'TLS failure');
      assert.equal(c.synced, false);
      assert.match(c.lastError, /UNAVAILABLE/);
    } finally {
      c.stop();
    }
  });
});
