// sluice-control: serves workloads, services and policies to node agents over
// Delta ADS, from the Kubernetes API (--kubeconfig, --in-cluster) or from
// manifest files (--manifests), followed as they change.
import { EXIT, SERVING, exitAfterFlush, runProgram, type CommandResult, type FlagValues } from '../command-line';
import { ConfigError } from '../config/flags';
import { controlConfigFromValues, controlSource } from '../config/control-config';
import { createControlRegistry } from '../observability/control-metrics';
import { createJsonServer, listenTcp, listenUnix } from '../observability/http-json';
import { createLogger } from '../observability/logger';
import type * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { NODE_METADATA } from '../identity/certificate-protocol';
import { controlPlaneServerCredentials } from '../identity/control-plane-tls';
import { verifyNodeToken } from '../identity/node-credential';
import { CertificateAuthority } from '../identity/ca';
import { CertificateService } from './certificate-service';
import { ControlPlane } from './control-plane';
import type { KubernetesSource } from './kubernetes-source';
import { ManifestSource } from './manifest-source';
import { ManifestError } from './manifests';
import { renderManifests } from './render';
import { formatTranslationError } from './translate';
import { controlProgram } from './command-line';
import { packageVersion } from '../command-line/version';

function render(values: FlagValues): CommandResult {
  const config = controlConfigFromValues(values, process.env, 'render');
  const { rendering, fileErrors } = renderManifests(config.manifests, config);
  const errors = [...fileErrors, ...rendering.errors.map(formatTranslationError)];
  const out = { ...rendering, errors, warnings: rendering.warnings.map(formatTranslationError) };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return errors.length ? EXIT.FAILURE : EXIT.OK;
}

async function serve(values: FlagValues): Promise<CommandResult> {
  const config = controlConfigFromValues(values, process.env);
  const logger = createLogger('sluice-control', config.logLevel, config.logFile);
  const from = controlSource(config);
  // The same translation for both sources; only the Kubernetes API has EndpointSlices to take endpoints from.
  const control = new ControlPlane({ ...config, endpointSource: from.kind === 'kubernetes' ? 'endpoint-slices' : 'pod-selectors' }, logger);
  let source: { start(): void; stop(): void; problems: { file: string; reason: string }[]; digest?: string };
  let kubernetes: KubernetesSource | undefined;
  if (from.kind === 'kubernetes') {
    // Loaded only for this source: the manifest source (and the sim) never load the Kubernetes client.
    const { KubernetesSource, loadKubeConfig } = await import('./kubernetes-source');
    let kubeConfig: ReturnType<typeof loadKubeConfig>;
    try {
      kubeConfig = loadKubeConfig(from.kubeconfig);
    } catch (err) {
      throw new ConfigError(`${from.kubeconfig ? '--kubeconfig' : '--in-cluster'}: ${(err as Error).message}`);
    }
    kubernetes = new KubernetesSource(kubeConfig, logger.child({ component: 'kubernetes' }), (objects) => control.publish(objects));
    source = kubernetes;
  } else {
    source = new ManifestSource(config.manifests, logger.child({ component: 'manifests' }), (objects) => control.publish(objects));
  }
  source.start();
  let certificates: CertificateService | undefined;
  let serverCredentials: grpc.ServerCredentials | undefined;
  if (config.nodeSecretFile) {
    const ca = await CertificateAuthority.loadOrCreate(config.caDir, { trustDomain: config.trustDomain });
    let secret: Buffer;
    try {
      secret = fs.readFileSync(config.nodeSecretFile);
    } catch (err) {
      throw new ConfigError(`--node-secret-file ${config.nodeSecretFile}: ${(err as Error).message}`);
    }
    if (secret.length < 16) throw new ConfigError(`--node-secret-file ${config.nodeSecretFile}: too short (${secret.length} bytes, want at least 16)`);
    certificates = new CertificateService(ca, secret, () => control.resources().workloads, logger.child({ component: 'ca' }));
    control.server.addService(certificates.definition(), certificates.implementation());
    // With a CA, agents talk to us over TLS and every xDS stream carries a node credential.
    serverCredentials = await controlPlaneServerCredentials(ca, config.caDir, (err) => logger.error({ err: err.message }, 'control plane certificate renewal failed'));
    const nodeSecret = secret;
    control.server.authenticate = (md) => {
      const node = String(md.get(NODE_METADATA)[0] ?? '');
      const auth = String(md.get('authorization')[0] ?? '');
      if (!node || !auth.startsWith('Bearer ')) return { refused: `missing node credential (metadata ${NODE_METADATA} and authorization: Bearer <token>)` };
      return verifyNodeToken(nodeSecret, node, auth.slice('Bearer '.length)) ? { node } : { refused: `node credential for ${node} does not verify` };
    };
    logger.info({ caDir: config.caDir, root: ca.rootFingerprint }, 'issuing workload certificates; agents connect over TLS with node credentials');
  }
  const port = await control.server.listen(config.listen, serverCredentials);
  const admin = createJsonServer({
    '/status': () => ({
      body: {
        version: control.version,
        listen: config.listen.replace(/:\d+$/, `:${port}`),
        manifests: config.manifests,
        manifestDigest: source.digest ?? '',
        kubernetes: kubernetes ? { server: kubernetes.server, synced: kubernetes.synced, resources: kubernetes.status() } : null,
        publishedAt: control.lastPublishedAt,
        fileProblems: source.problems,
        objectErrors: control.lastErrors.map(formatTranslationError),
        objectWarnings: control.lastWarnings.map(formatTranslationError),
        counters: control.server.counters,
        certificates: certificates?.counters ?? null,
        streams: control.server.status(),
      },
    }),
    '/resources': () => ({ body: control.resources() }),
    '/agents': () => ({ body: control.server.status() }),
  });
  await listenUnix(admin, config.adminSocket);
  let metrics: ReturnType<typeof createJsonServer> | undefined;
  if (config.metricsListen) {
    const registry = createControlRegistry({
      version: packageVersion(),
      streams: () => control.server.status(),
      xdsByType: () => control.server.counters.byType,
      issuance: () => certificates?.counters,
      translationProblems: () => control.lastErrors.length,
      publishes: () => control.publishes,
      configVersion: () => control.version,
    });
    metrics = createJsonServer({ '/metrics': async () => ({ body: await registry.metrics(), contentType: registry.contentType }) });
    const at = config.metricsListen.lastIndexOf(':');
    // Metrics are not worth refusing to serve agents for: a busy port is logged, not fatal.
    await listenTcp(metrics, config.metricsListen.slice(0, at) || '0.0.0.0', Number(config.metricsListen.slice(at + 1))).catch((err) =>
      logger.error({ err: (err as Error).message }, 'metrics endpoint not available; xDS and the admin socket still serve'),
    );
  }
  logger.info({ listen: config.listen, port, metrics: config.metricsListen || 'none', source: kubernetes ? kubernetes.server : config.manifests, version: control.version }, 'control plane serving');
  const stop = () => {
    source.stop();
    admin.close();
    metrics?.close();
    control.server.close().finally(() => logger.flush(() => exitAfterFlush(EXIT.OK)));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return SERVING;
}

void runProgram(
  controlProgram,
  process.argv.slice(2),
  { serve: (p) => serve(p.values), render: (p) => render(p.values) },
  {
    classify: (err) =>
      err instanceof ManifestError
        ? { code: EXIT.USAGE, message: err.message }
        : /listen/.test(err.message)
          ? { code: EXIT.FAILURE, message: err.message }
          : undefined,
  },
);
