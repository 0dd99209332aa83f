// sluice-control: serves workloads, services and policies to node agents over
// Delta ADS, from the Kubernetes API (--kubeconfig, --in-cluster) or from
// manifest files (--manifests), followed as they change.
import { EXIT, SERVING, exitAfterFlush, runProgram, type CommandResult, type FlagValues } from '../command-line';
import { ConfigError } from '../config/flags';
import { controlConfigFromValues, controlSource, type ControlConfig } from '../config/control-config';
import type { KubeConfig } from '@kubernetes/client-node';
import { createControlRegistry } from '../observability/control-metrics';
import { createJsonServer, listenTcp, listenUnix } from '../observability/http-json';
import { createLogger } from '../observability/logger';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NODE_METADATA } from '../identity/certificate-protocol';
import { controlPlaneServerCredentials } from '../identity/control-plane-tls';
import { SharedSecretAuthenticator, TokenReviewAuthenticator, type NodeAuthenticator } from '../identity/node-credential';
import { CertificateAuthority } from '../identity/ca';
import { CertificateService } from './certificate-service';
import { ControlPlane } from './control-plane';
import type { KubernetesSource } from './kubernetes-source';
import type { LeaderElector } from './leader-election';
import { ManifestSource } from './manifest-source';
import { PolicyStatusWriter } from './policy-status';
import { ManifestError } from './manifests';
import { renderManifests } from './render';
import { formatTranslationError } from './translate';
import { controlProgram } from './command-line';
import { packageVersion } from '../command-line/version';

/** `sluice-control ca`: a new mesh root in --ca-dir, never over an existing one. */
async function createRoot(values: FlagValues): Promise<CommandResult> {
  const config = controlConfigFromValues(values, process.env, 'ca');
  const files = ['root-cert.pem', 'root-key.pem'].map((f) => path.join(config.caDir, f));
  const present = files.filter((f) => fs.existsSync(f));
  if (present.length) {
    process.stderr.write(`sluice-control ca: ${present.join(', ')} already exists; remove it to create a new root (every workload certificate then changes)\n`);
    return EXIT.FAILURE;
  }
  const ca = await CertificateAuthority.loadOrCreate(config.caDir, { trustDomain: config.trustDomain });
  process.stdout.write(
    [
      `mesh root for ${config.trustDomain} in ${config.caDir} (fingerprint ${ca.rootFingerprint})`,
      'to have sluice-control use it rather than generate one on first start, create this before applying deploy/',
      '(the key stays in the Secret; sluice-control publishes the root alone in the sluice-ca-root ConfigMap):',
      `  kubectl -n sluice-system create secret generic sluice-ca --from-file=${files[0]} --from-file=${files[1]}`,
      '',
    ].join('\n'),
  );
  return EXIT.OK;
}

function render(values: FlagValues): CommandResult {
  const config = controlConfigFromValues(values, process.env, 'render');
  const { rendering, fileErrors } = renderManifests(config.manifests, config);
  const errors = [...fileErrors, ...rendering.errors.map(formatTranslationError)];
  const out = { ...rendering, errors, warnings: rendering.warnings.map(formatTranslationError) };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return errors.length ? EXIT.FAILURE : EXIT.OK;
}

/** The mesh root kept in the cluster (--ca-secret), published in --ca-root-configmap. */
async function meshRootInCluster(config: ControlConfig, kubeConfig: KubeConfig, logger: Logger): Promise<CertificateAuthority> {
  const { clusterMeshRoot, parseObjectRef } = await import('./ca-secret');
  return clusterMeshRoot(kubeConfig, {
    secret: parseObjectRef('ca-secret', config.caSecret),
    rootConfigMap: config.caRootConfigmap ? parseObjectRef('ca-root-configmap', config.caRootConfigmap) : undefined,
    trustDomain: config.trustDomain,
    log: (message) => logger.info({ component: 'ca' }, message),
  });
}

async function serve(values: FlagValues): Promise<CommandResult> {
  const config = controlConfigFromValues(values, process.env);
  const logger = createLogger('sluice-control', config.logLevel, config.logFile);
  const from = controlSource(config);
  // The same translation for both sources; only the Kubernetes API has EndpointSlices to take endpoints from.
  const control = new ControlPlane({ ...config, endpointSource: from.kind === 'kubernetes' ? 'endpoint-slices' : 'pod-selectors' }, logger);
  let source: { start(): void; stop(): void; problems: { file: string; reason: string }[]; digest?: string };
  let kubernetes: KubernetesSource | undefined;
  let kubeConfigOfSource: KubeConfig | undefined;
  let elector: LeaderElector | undefined;
  if (from.kind === 'kubernetes') {
    // Loaded only for this source: the manifest source (and the sim) never load the Kubernetes client.
    const { KubernetesSource, loadKubeConfig } = await import('./kubernetes-source');
    let kubeConfig: ReturnType<typeof loadKubeConfig>;
    try {
      kubeConfig = loadKubeConfig(from.kubeconfig);
    } catch (err) {
      throw new ConfigError(`${from.kubeconfig ? '--kubeconfig' : '--in-cluster'}: ${(err as Error).message}`);
    }
    kubeConfigOfSource = kubeConfig;
    // Each policy object gets an Accepted condition saying whether it is served, and why not.
    const statusWriter = new PolicyStatusWriter(
      (objectPath, status) => kubernetes!.patchStatus(objectPath, status),
      logger.child({ component: 'policy-status' }),
      (event) => kubernetes!.createEvent(event.metadata.namespace, event),
      os.hostname(),
    );
    kubernetes = new KubernetesSource(kubeConfig, logger.child({ component: 'kubernetes' }), (objects) => statusWriter.update(objects, control.publish(objects).errors));
    if (config.leaderElectionLease) {
      const { LeaderElector } = await import('./leader-election');
      const { parseObjectRef } = await import('./ca-secret');
      statusWriter.setLeading(false);
      elector = new LeaderElector(kubeConfig, {
        lease: parseObjectRef('leader-election-lease', config.leaderElectionLease),
        // The pod's name (the Deployment sets POD_NAME; a pod's hostname is its name too).
        identity: process.env.POD_NAME || os.hostname(),
        leaseDurationSeconds: 15,
        retryPeriodMs: 2000,
        onLeading: (leading) => statusWriter.setLeading(leading),
        log: (message) => logger.info({ component: 'leader-election' }, message),
      });
      elector.start();
    }
    source = kubernetes;
  } else {
    source = new ManifestSource(config.manifests, logger.child({ component: 'manifests' }), (objects) => control.publish(objects));
  }
  source.start();
  let certificates: CertificateService | undefined;
  let serverCredentials: grpc.ServerCredentials | undefined;
  const nodes = await nodeAuthenticator(config, kubeConfigOfSource);
  if (nodes) {
    const ca = config.caSecret ? await meshRootInCluster(config, kubeConfigOfSource!, logger) : await CertificateAuthority.loadOrCreate(config.caDir, { trustDomain: config.trustDomain });
    certificates = new CertificateService(ca, nodes, () => control.resources().workloads, logger.child({ component: 'ca' }), () => control.publishes > 0);
    control.server.addService(certificates.definition(), certificates.implementation());
    // With a CA, agents talk to us over TLS and every xDS stream carries a node credential.
    serverCredentials = await controlPlaneServerCredentials(ca, config.servingDir || config.caDir, (err) => logger.error({ err: err.message }, 'control plane certificate renewal failed'));
    control.server.authenticate = async (md) => {
      const node = String(md.get(NODE_METADATA)[0] ?? '');
      const auth = String(md.get('authorization')[0] ?? '');
      if (!node || !auth.startsWith('Bearer ')) return { refused: `missing node credential (metadata ${NODE_METADATA} and authorization: Bearer <token>)` };
      const verdict = await nodes.verify(node, auth.slice('Bearer '.length));
      return verdict.ok ? { node } : { refused: verdict.reason };
    };
    logger.info({ ...(config.caSecret ? { caSecret: config.caSecret } : { caDir: config.caDir }), root: ca.rootFingerprint, nodeAuth: nodes.kind }, 'issuing workload certificates; agents connect over TLS with node credentials');
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
        leaderElection: elector ? { lease: config.leaderElectionLease, leader: elector.isLeader } : null,
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
    // A leader releases its Lease, so another replica writes status at once.
    Promise.allSettled([elector?.stop(), control.server.close()]).finally(() => logger.flush(() => exitAfterFlush(EXIT.OK)));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return SERVING;
}

void runProgram(
  controlProgram,
  process.argv.slice(2),
  { serve: (p) => serve(p.values), render: (p) => render(p.values), ca: (p) => createRoot(p.values) },
  {
    classify: (err) =>
      err instanceof ManifestError
        ? { code: EXIT.USAGE, message: err.message }
        : /listen/.test(err.message)
          ? { code: EXIT.FAILURE, message: err.message }
          : undefined,
  },
);

/** How agents prove their node (--node-auth); undefined for none. Throws ConfigError naming the flag. */
async function nodeAuthenticator(config: Readonly<ControlConfig>, kubeConfig: KubeConfig | undefined): Promise<NodeAuthenticator | undefined> {
  if (config.nodeAuth === 'secret') {
    let secret: Buffer;
    try {
      secret = fs.readFileSync(config.nodeSecretFile);
    } catch (err) {
      throw new ConfigError(`--node-secret-file ${config.nodeSecretFile}: ${(err as Error).message}`);
    }
    if (secret.length < 16) throw new ConfigError(`--node-secret-file ${config.nodeSecretFile}: too short (${secret.length} bytes, want at least 16)`);
    return new SharedSecretAuthenticator(secret);
  }
  if (config.nodeAuth === 'tokenreview') {
    const { apiServerTokenReviewer } = await import('./token-review');
    const [namespace, name] = config.agentServiceAccount.split('/');
    // --node-auth tokenreview requires the Kubernetes source (checked with the configuration).
    return new TokenReviewAuthenticator(apiServerTokenReviewer(kubeConfig!), { audience: config.tokenAudience, serviceAccount: { namespace, name } });
  }
  return undefined;
}
