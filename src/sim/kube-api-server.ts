// A TEST STAND-IN for the Kubernetes API, not an API server. No
// kube-apiserver can be installed on the machines sluice is developed and
// tested on, so this serves objects held in memory over the subset of the
// Kubernetes API that sluice-control's informers use, following the API
// conventions for that subset:
//   - HTTPS (a self-signed certificate for 127.0.0.1) and a bearer token;
//     anything else is 401 with a Status;
//   - GET of a collection (cluster-wide, /api/v1/pods, or one namespace's,
//     /api/v1/namespaces/NS/pods), as a <Kind>List with
//     metadata.resourceVersion; `limit` and `continue` paginate; built-in
//     kinds' list items carry no kind/apiVersion, custom resources' do;
//   - GET with watch=true: resourceVersion "" or "0" starts with an ADDED
//     event per object, a resourceVersion N replays every change after N,
//     then changes stream as newline-delimited JSON watch events;
//     allowWatchBookmarks=true adds BOOKMARK events; timeoutSeconds ends the
//     stream; a resourceVersion older than the last compaction is answered
//     with an ERROR event holding a Status of code 410 (reason Expired), as
//     kube-apiserver does, or with HTTP 410 when asked to.
//   - discovery (GET /api, /apis, /api/v1, /apis/GROUP/VERSION), as
//     APIVersions, APIGroupList and APIResourceList, so that kubectl can
//     find the kinds it serves (`kubectl get pods`, `kubectl get sap`);
//   - GET, POST (create: 409 AlreadyExists), PUT (replace: 404 NotFound,
//     409 Conflict on a stale metadata.resourceVersion) and DELETE of one
//     object of a watched kind (.../namespaces/NS/<plural>[/NAME]): how
//     `sluice-sim apply` and `delete` change the cluster;
//   - PATCH .../<plural>/<name>/status (application/merge-patch+json) of
//     sluice's policy kinds, whose status a write of the object keeps, as
//     for a CRD with a status subresource; metadata.generation counts spec
//     changes;
//   - POST /api/v1/namespaces/NS/events, kept for tests (not listed or
//     watched);
//   - POST /apis/authentication.k8s.io/v1/tokenreviews for the service
//     account tokens it issued itself (issueServiceAccountToken, standing in
//     for TokenRequest): as kube-apiserver answers for a pod-bound token,
//     the username system:serviceaccount:NS:NAME, the pod and node in the
//     user extra, the audiences the caller asked for that the token has
//     (none in common, or expired: not authenticated, with an error);
//   - GET, POST and PUT of one Secret, ConfigMap (.../namespaces/NS/secrets
//     [/NAME]) or Lease (coordination.k8s.io/v1): 404 NotFound, 409
//     AlreadyExists on a second create, 409 Conflict on a replace with a
//     stale resourceVersion (not listed or watched).
// It validates nothing (no admission, no schemas, no defaulting) and knows
// only the kinds in WATCHED_RESOURCES, Secrets, ConfigMaps and Leases. For tests it can inject failures:
// watch streams closed, 410 Gone, HTTP 500, slow responses. Besides HTTPS
// on TCP it can serve the same API as plain HTTP on a unix socket
// (listenUnix), for a client on the same host that cannot reach its
// address (the sim's CLI, outside the fabric's network namespace).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { WATCHED_RESOURCES, type WatchedResource } from '../control/kubernetes-resources';

x509.cryptoProvider.set(webcrypto);

/** An object as the stand-in holds it: any Kubernetes-shaped JSON with metadata.name. */
export interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** The faults a watch request can be given (WatchFault). */
export const WATCH_FAULTS = ['close', 'gone-event', 'gone-http', 'error'] as const;

/** What the next watch request of a resource gets instead of a normal stream. */
export type WatchFault =
  /** 200, then the stream ends before any event: a dropped connection. */
  | 'close'
  /** 200, an ERROR event with a Status of code 410 (Expired), then the end. */
  | 'gone-event'
  /** HTTP 410 with a Status. */
  | 'gone-http'
  /** HTTP 500 with a Status. */
  | 'error';

/** The list and watch requests a resource has received, for tests. */
export interface ResourceRequests {
  lists: number;
  watches: number;
  /** resourceVersion asked for by each watch, in order ("" for none). */
  watchedFrom: string[];
}

interface OpenWatch {
  resource: WatchedResource;
  namespace?: string;
  res: http.ServerResponse;
  timers: NodeJS.Timeout[];
}

interface Change {
  rv: number;
  plural: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: StoredObject;
}

/** How KubeApiStandIn.start serves; every field has a default. */
export interface KubeApiStandInOptions {
  /** Bearer token clients must present (default: random). */
  token?: string;
  /** How often open watches that asked for bookmarks get one (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /** Where to listen for HTTPS (default 127.0.0.1, a port the OS chooses). The certificate names 127.0.0.1 and localhost. */
  host?: string;
  port?: number;
  /** The first resourceVersion; older ones are 410 Gone (default 1). */
  startRevision?: number;
  /** Certificate and key (PEM) to serve with, e.g. those of an earlier run (default: a new self-signed one). */
  certificate?: { cert: string; key: string };
}

/** A change to a watched object, as told to subscribers (after the watches). */
export interface StandInChange {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: StoredObject;
}

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';

/** sluice's policy kinds have a status subresource (deploy/base/crds); the built-in kinds here are served without one. */
function hasStatusSubresource(resource: WatchedResource): boolean {
  return resource.apiVersion.startsWith('security.sluice.dev/');
}

/** RFC 7386 JSON merge patch of `target` with `patch`. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Kinds served by GET, POST and PUT only (not listed or watched). */
const PLAIN_KINDS = {
  secrets: { kind: 'Secret', apiVersion: 'v1' },
  configmaps: { kind: 'ConfigMap', apiVersion: 'v1' },
  leases: { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1' },
} as const;
type PlainPlural = keyof typeof PLAIN_KINDS;

function pluralOfPlainKind(kind: string): PlainPlural {
  const found = (Object.keys(PLAIN_KINDS) as PlainPlural[]).find((p) => PLAIN_KINDS[p].kind === kind);
  if (!found) throw new Error(`the stand-in keeps no ${kind} objects`);
  return found;
}

interface IssuedToken {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  expiresAt: number;
  pod: { name: string; uid: string };
  node: string;
}

/** The request body as JSON (at most 1 MiB); rejects otherwise. */
function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) req.destroy(new Error('request body over 1 MiB'));
      else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(new Error(`request body is not JSON: ${(err as Error).message}`));
      }
    });
  });
}

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=sluice kube-api stand-in',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}

/** Every kind the stand-in serves, by group version, for discovery: [plural, kind, namespaced, short names, verbs]. */
const DISCOVERY: Record<string, [string, string, boolean, string[], string[]][]> = (() => {
  const readWrite = ['create', 'delete', 'get', 'list', 'update', 'watch'];
  const out: Record<string, [string, string, boolean, string[], string[]][]> = {};
  const short: Record<string, string[]> = { pods: ['po'], services: ['svc'], namespaces: ['ns'], authorizationpolicies: ['sap'], peerauthentications: ['spa'] };
  for (const r of WATCHED_RESOURCES) (out[r.apiVersion] ??= []).push([r.plural, r.kind, r.namespaced, short[r.plural] ?? [], readWrite]);
  for (const [plural, k] of Object.entries(PLAIN_KINDS)) (out[k.apiVersion] ??= []).push([plural, k.kind, true, [], ['create', 'get', 'update']]);
  (out.v1 ??= []).push(['events', 'Event', true, ['ev'], ['create']]);
  out['authentication.k8s.io/v1'] = [['tokenreviews', 'TokenReview', false, [], ['create']]];
  return out;
})();

/** The discovery document at `pathname`, or undefined when it is not one. */
function discoveryDocument(pathname: string): object | undefined {
  if (pathname === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (pathname === '/apis') {
    const groups = [...new Set(Object.keys(DISCOVERY).filter((gv) => gv.includes('/')))].map((gv) => {
      const [name, version] = gv.split('/');
      return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
    });
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }
  const gv = pathname === '/api/v1' ? 'v1' : /^\/apis\/([^/]+\/[^/]+)$/.exec(pathname)?.[1];
  const resources = gv ? DISCOVERY[gv] : undefined;
  if (!resources) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: gv,
    resources: resources.map(([name, kind, namespaced, shortNames, verbs]) => ({ name, singularName: kind.toLowerCase(), namespaced, kind, verbs, ...(shortNames.length ? { shortNames } : {}) })),
  };
}

/**
 * The Kubernetes API test stand-in described above: objects in memory,
 * served over HTTPS with a bearer token (and, with listenUnix, plain HTTP on
 * a unix socket); tests change objects with apply and delete and inject
 * faults. Obtained with start().
 */
export class KubeApiStandIn {
  /** The certificate clients must trust (PEM). */
  readonly caPem: string;
  /** Its private key (PEM), to serve again with the same certificate after a restart. */
  readonly keyPem: string;
  readonly token: string;
  /** Delay before every response is started (a slow API server). */
  delayMs = 0;
  private readonly server: https.Server;
  private unixServer?: http.Server;
  private readonly subscribers: ((change: StandInChange) => void)[] = [];
  private readonly bookmarkIntervalMs: number;
  private readonly store = new Map<string, Map<string, StoredObject>>(WATCHED_RESOURCES.map((r) => [r.plural, new Map()]));
  private readonly changes: Change[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly faults = new Map<string, WatchFault[]>();
  private readonly counts = new Map<string, ResourceRequests>(WATCHED_RESOURCES.map((r) => [r.plural, { lists: 0, watches: 0, watchedFrom: [] }]));
  private revision = 1;
  private readonly issuedTokens = new Map<string, IssuedToken>();
  /** Changes at or before this revision are forgotten: watching from there is 410 Gone. */
  private compactedAt = 0;

  private constructor(cert: { cert: string; key: string }, options: KubeApiStandInOptions) {
    this.caPem = cert.cert;
    this.keyPem = cert.key;
    this.token = options.token ?? randomBytes(16).toString('hex');
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    if (options.startRevision !== undefined) this.revision = this.compactedAt = options.startRevision;
    this.server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => void this.handle(req, res));
  }

  /**
   * Starts serving HTTPS on options.host:options.port (default 127.0.0.1, a
   * port the OS chooses), with options.certificate or a new self-signed one.
   */
  static async start(options: KubeApiStandInOptions = {}): Promise<KubeApiStandIn> {
    const api = new KubeApiStandIn(options.certificate ?? (await selfSignedCertificate()), options);
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', reject);
      api.server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    return api;
  }

  /**
   * Also serves the API as plain HTTP on a unix socket at `socketPath`
   * (mode 0600: the file's permissions stand in for TLS; the bearer token
   * is still required). Replaces a stale socket file.
   */
  async listenUnix(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    const server = http.createServer((req, res) => void (req.url?.startsWith('/sim/') ? this.handleFault(req, res) : this.handle(req, res)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    fs.chmodSync(socketPath, 0o600);
    this.unixServer = server;
  }

  /**
   * Fault injection for tests, on the unix socket only (never on the API's
   * own address), with the bearer token:
   *   POST /sim/watch-fault {"resource": "pods", "fault": "close"|"gone-event"|"gone-http"|"error"}
   *     the resource's next watch request gets the fault, and its open
   *     watches are closed so that the informer's next request comes now;
   *   POST /sim/compact   forget the change history (older resourceVersions are 410 Gone);
   *   POST /sim/delay {"ms": N}   delay every answer by N ms (0: none).
   * Answers {"ok": true, ...} or a Status.
   */
  private async handleFault(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (code: number, body: object) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) return reply(401, status(401, 'Unauthorized', 'Unauthorized'));
      if (req.method !== 'POST') return reply(405, status(405, 'MethodNotAllowed', 'POST only'));
      const body = ((await readJson(req).catch(() => ({}))) ?? {}) as { resource?: unknown; fault?: unknown; ms?: unknown };
      const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
      if (path === '/sim/watch-fault') {
        const resource = WATCHED_RESOURCES.find((r) => r.plural === body.resource);
        if (!resource) return reply(400, status(400, 'BadRequest', `resource ${JSON.stringify(body.resource)}: expected one of ${WATCHED_RESOURCES.map((r) => r.plural).join(', ')}`));
        if (!WATCH_FAULTS.includes(body.fault as WatchFault)) return reply(400, status(400, 'BadRequest', `fault ${JSON.stringify(body.fault)}: expected one of ${WATCH_FAULTS.join(', ')}`));
        this.failNextWatch(resource.plural, body.fault as WatchFault);
        return reply(200, { ok: true, resource: resource.plural, fault: body.fault, closedWatches: this.closeWatches(resource.plural) });
      }
      if (path === '/sim/compact') {
        this.compact();
        return reply(200, { ok: true, compactedAt: this.resourceVersion });
      }
      if (path === '/sim/delay') {
        const ms = Number(body.ms);
        if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) return reply(400, status(400, 'BadRequest', `ms ${JSON.stringify(body.ms)}: expected 0-60000`));
        this.delayMs = ms;
        return reply(200, { ok: true, delayMs: ms });
      }
      return reply(404, status(404, 'NotFound', `${path}: expected /sim/watch-fault, /sim/compact or /sim/delay`));
    } catch (err) {
      reply(500, status(500, 'InternalError', (err as Error).message));
    }
  }

  /** Calls `listener` after every change of a watched object (the watches have been told). */
  subscribe(listener: (change: StandInChange) => void): void {
    this.subscribers.push(listener);
  }

  /** https://HOST:PORT */
  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `https://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /**
   * A kubeconfig (YAML) for this server: its URL, its certificate as the
   * cluster's CA, `token` (default: the one it accepts) as the user's bearer
   * token, in one current context.
   */
  kubeconfig(token = this.token): string {
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } }],
      users: [{ name: 'client', user: { token } }],
      contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'client' } }],
      'current-context': 'stand-in',
    });
  }

  /** The current resourceVersion (etcd's revision): every change increments it. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /**
   * A service account token for a pod, as the kubelet obtains it with a
   * TokenRequest for a projected volume: opaque here (kube-apiserver signs
   * a JWT), valid for `expirationSeconds` (negative: already expired), for
   * `audiences`, bound to the pod and its node.
   */
  issueServiceAccountToken(t: { namespace: string; serviceAccount: string; audiences: string[]; expirationSeconds: number; pod: { name: string; uid: string }; node: string }): string {
    const token = `sa.${randomBytes(24).toString('base64url')}`;
    this.issuedTokens.set(token, { ...t, expiresAt: Date.now() + t.expirationSeconds * 1000 });
    return token;
  }

  /** Requests seen for a resource ("pods"), for tests. */
  requests(plural: string): ResourceRequests {
    return this.counts.get(plural)!;
  }

  /**
   * Creates or replaces an object (by kind, namespace and name) and tells
   * the watches: ADDED or MODIFIED, with a new resourceVersion. Returns the
   * stored copy. Throws on a kind the stand-in does not serve.
   */
  apply(object: StoredObject): StoredObject {
    const resource = this.resourceOfKind(object.kind);
    const key = this.keyOf(resource, object.metadata.namespace, object.metadata.name);
    const before = this.store.get(resource.plural)!.get(key);
    const stored: StoredObject = structuredClone(object);
    stored.apiVersion = resource.apiVersion;
    stored.metadata.uid = before?.metadata.uid ?? object.metadata.uid ?? randomUUID();
    // metadata.generation counts changes of the spec, as kube-apiserver keeps it.
    const generation = typeof before?.metadata.generation === 'number' ? before.metadata.generation : 0;
    stored.metadata.generation = before && JSON.stringify(before.spec) === JSON.stringify(stored.spec) ? generation : generation + 1;
    // A kind with a status subresource keeps its status: a write of the object does not change it.
    if (hasStatusSubresource(resource)) {
      if (before?.status !== undefined) stored.status = structuredClone(before.status);
      else delete stored.status;
    }
    if (resource.namespaced) stored.metadata.namespace ||= 'default';
    stored.metadata.creationTimestamp = before?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    stored.metadata.resourceVersion = String(++this.revision);
    this.store.get(resource.plural)!.set(key, stored);
    this.emit({ rv: this.revision, plural: resource.plural, type: before ? 'MODIFIED' : 'ADDED', object: stored });
    return stored;
  }

  /** Deletes an object; false when there was none. Watches get DELETED with the deletion's resourceVersion. */
  delete(kind: string, namespace: string | undefined, name: string): boolean {
    const resource = this.resourceOfKind(kind);
    const key = this.keyOf(resource, namespace, name);
    const objects = this.store.get(resource.plural)!;
    const before = objects.get(key);
    if (!before) return false;
    objects.delete(key);
    const gone = { ...before, metadata: { ...before.metadata, resourceVersion: String(++this.revision) } };
    this.emit({ rv: this.revision, plural: resource.plural, type: 'DELETED', object: gone });
    return true;
  }

  /** Forgets the change history (as etcd compaction does): watching from an older resourceVersion is 410 Gone. */
  compact(): void {
    this.compactedAt = this.revision;
    this.changes.length = 0;
  }

  /** Ends every open watch stream (of one resource, or all): clients see the connection close. */
  closeWatches(plural?: string): number {
    let n = 0;
    for (const w of [...this.watches]) {
      if (plural && w.resource.plural !== plural) continue;
      this.endWatch(w);
      n++;
    }
    return n;
  }

  /** The next watch request of `plural` gets `fault` instead of a stream (queued, one per request). */
  failNextWatch(plural: string, fault: WatchFault): void {
    this.faults.set(plural, [...(this.faults.get(plural) ?? []), fault]);
  }

  /** The objects of a kind, as stored (sorted by namespace and name). */
  objectsOf(kind: string): StoredObject[] {
    return this.current(this.resourceOfKind(kind));
  }

  /** Number of watch streams open now. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Ends every watch and closes both servers, dropping their open connections. */
  async stop(): Promise<void> {
    for (const w of [...this.watches]) this.endWatch(w);
    await Promise.all(
      [this.server, this.unixServer].map(
        (server) =>
          server &&
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  }

  private resourceOfKind(kind: string | undefined): WatchedResource {
    const resource = WATCHED_RESOURCES.find((r) => r.kind === kind);
    if (!resource) throw new Error(`the stand-in does not serve kind ${JSON.stringify(kind)}`);
    return resource;
  }

  private keyOf(resource: WatchedResource, namespace: string | undefined, name: string): string {
    return resource.namespaced ? `${namespace || 'default'}/${name}` : name;
  }

  private emit(change: Change): void {
    this.changes.push(change);
    for (const w of this.watches) {
      if (w.resource.plural === change.plural && (!w.namespace || w.namespace === change.object.metadata.namespace)) this.send(w, change.type, change.object);
    }
    for (const listener of this.subscribers) listener({ type: change.type, object: change.object });
  }

  private send(w: OpenWatch, type: string, object: object): void {
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private endWatch(w: OpenWatch): void {
    for (const t of w.timers) clearTimeout(t);
    this.watches.delete(w);
    w.res.end();
  }

  /**
   * "/api/v1/pods", "/api/v1/namespaces/shop/pods" or
   * "/api/v1/namespaces/shop/pods/web-1" (a namespace's name:
   * "/api/v1/namespaces/shop") -> the resource, namespace and name.
   */
  private route(pathname: string): { resource: WatchedResource; namespace?: string; name?: string } | undefined {
    for (const resource of WATCHED_RESOURCES) {
      if (pathname === resource.path) return { resource };
      if (!resource.namespaced) {
        const one = new RegExp(`^${resource.path}/([^/]+)$`).exec(pathname);
        if (one) return { resource, name: decodeURIComponent(one[1]) };
        continue;
      }
      const prefix = resource.path.slice(0, resource.path.length - resource.plural.length);
      const m = new RegExp(`^${prefix}namespaces/([^/]+)/${resource.plural}(?:/([^/]+))?$`).exec(pathname);
      if (m) return { resource, namespace: decodeURIComponent(m[1]), name: m[2] === undefined ? undefined : decodeURIComponent(m[2]) };
    }
    return undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (code: number, body: object) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (req.headers.authorization !== `Bearer ${this.token}`) return reply(401, status(401, 'Unauthorized', 'Unauthorized'));
      const url = new URL(req.url ?? '/', 'https://stand-in');
      const statusOf = /^(.*)\/([^/]+)\/status$/.exec(url.pathname);
      if (statusOf && req.method === 'PATCH') {
        const owner = this.route(statusOf[1]);
        if (!owner || !hasStatusSubresource(owner.resource)) return reply(404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
        if (!String(req.headers['content-type'] ?? '').startsWith('application/merge-patch+json')) return reply(415, status(415, 'UnsupportedMediaType', 'the stand-in takes application/merge-patch+json'));
        const patched = this.patchStatus(owner.resource, owner.namespace, decodeURIComponent(statusOf[2]), await readJson(req));
        return patched ? reply(200, patched) : reply(404, status(404, 'NotFound', `${owner.resource.plural} "${decodeURIComponent(statusOf[2])}" not found`));
      }
      const events = /^\/api\/v1\/namespaces\/([^/]+)\/events$/.exec(url.pathname);
      if (events && req.method === 'POST') {
        const event = (await readJson(req)) as StoredObject;
        event.metadata = { ...(event.metadata ?? {}), namespace: decodeURIComponent(events[1]), name: `${event.metadata?.generateName ?? 'event.'}${randomBytes(4).toString('hex')}`, uid: randomUUID(), resourceVersion: String(++this.revision) };
        this.events.push(event);
        return reply(201, event);
      }
      const plain = /^\/(?:api\/v1|apis\/coordination\.k8s\.io\/v1)\/namespaces\/([^/]+)\/(secrets|configmaps|leases)(?:\/([^/]+))?$/.exec(url.pathname);
      if (plain && (plain[2] === 'leases') === url.pathname.startsWith('/apis/coordination.k8s.io/')) {
        return await this.plainObject(req, reply, plain[2] as PlainPlural, decodeURIComponent(plain[1]), plain[3] === undefined ? undefined : decodeURIComponent(plain[3]));
      }
      if (url.pathname === TOKEN_REVIEWS) {
        if (req.method !== 'POST') return reply(405, status(405, 'MethodNotAllowed', `${req.method} is not supported for tokenreviews`));
        return reply(201, this.review(await readJson(req)));
      }
      const discovery = req.method === 'GET' ? discoveryDocument(url.pathname) : undefined;
      if (discovery) return reply(200, discovery);
      const route = this.route(url.pathname);
      if (!route) return reply(404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
      if (route.name !== undefined || req.method === 'POST') return await this.oneObject(req, reply, route.resource, route.namespace, route.name);
      if (req.method !== 'GET') return reply(405, status(405, 'MethodNotAllowed', `${req.method} is not supported by the stand-in`));
      const watch = url.searchParams.get('watch');
      if (watch === 'true' || watch === '1') return this.watch(route.resource, route.namespace, url.searchParams, res, reply);
      return this.list(route.resource, route.namespace, url.searchParams, reply);
    } catch (err) {
      if (!res.headersSent) reply(500, status(500, 'InternalError', (err as Error).message));
      else res.destroy();
    }
  }

  /**
   * GET, PUT and DELETE of one object of a watched kind, and POST to its
   * namespace's collection, as kube-apiserver answers them: 404 NotFound,
   * 409 AlreadyExists on a second create, 409 Conflict on a replace with a
   * stale metadata.resourceVersion, 400 BadRequest when the body's
   * namespace or name is not the URL's. DELETE answers the object as it was.
   */
  private async oneObject(
    req: http.IncomingMessage,
    reply: (code: number, body: object) => void,
    resource: WatchedResource,
    namespace: string | undefined,
    name: string | undefined,
  ): Promise<void> {
    const objects = this.store.get(resource.plural)!;
    const notFound = (n: string) => reply(404, { ...status(404, 'NotFound', `${resource.plural} "${n}" not found`), details: { name: n, kind: resource.plural } });
    if (resource.namespaced && namespace === undefined) return reply(405, status(405, 'MethodNotAllowed', `${req.method} of ${resource.plural} needs a namespace in the path`));
    if (req.method === 'GET' && name !== undefined) {
      const found = objects.get(this.keyOf(resource, namespace, name));
      return found ? reply(200, found) : notFound(name);
    }
    if (req.method === 'DELETE' && name !== undefined) {
      const found = objects.get(this.keyOf(resource, namespace, name));
      if (!found) return notFound(name);
      this.delete(resource.kind, namespace, name);
      return reply(200, found);
    }
    if ((req.method === 'POST' && name === undefined) || (req.method === 'PUT' && name !== undefined)) {
      const body = (await readJson(req)) as StoredObject;
      if (body === null || typeof body !== 'object' || body.metadata === null || typeof body.metadata !== 'object') return reply(400, status(400, 'BadRequest', 'the body is not an object with metadata'));
      const objectName = name ?? body.metadata.name;
      if (typeof objectName !== 'string' || !objectName) return reply(422, status(422, 'Invalid', `${resource.kind} "": metadata.name: Required value`));
      if (name !== undefined && body.metadata.name !== undefined && body.metadata.name !== name) return reply(400, status(400, 'BadRequest', `the name of the object (${String(body.metadata.name)}) does not match the name on the URL (${name})`));
      if (resource.namespaced && body.metadata.namespace && body.metadata.namespace !== namespace) {
        return reply(400, status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'));
      }
      if (body.kind !== undefined && body.kind !== resource.kind) return reply(400, status(400, 'BadRequest', `kind ${String(body.kind)} sent to ${resource.plural}`));
      const current = objects.get(this.keyOf(resource, namespace, objectName));
      if (req.method === 'POST' && current) return reply(409, status(409, 'AlreadyExists', `${resource.plural} "${objectName}" already exists`));
      if (req.method === 'PUT') {
        if (!current) return notFound(objectName);
        const asked = body.metadata.resourceVersion;
        if (asked && asked !== current.metadata.resourceVersion) {
          return reply(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${resource.plural} "${objectName}": the object has been modified; please apply your changes to the latest version and try again`));
        }
      }
      const stored = this.apply({ ...body, kind: resource.kind, metadata: { ...body.metadata, name: objectName, ...(resource.namespaced ? { namespace } : {}) } });
      return reply(req.method === 'POST' ? 201 : 200, stored);
    }
    return reply(405, status(405, 'MethodNotAllowed', `${req.method} is not supported for ${resource.plural} by the stand-in`));
  }

  /** Secrets, ConfigMaps and Leases, by "plural namespace/name": read and written, never watched. */
  private readonly plainObjects = new Map<string, StoredObject>();
  /** Writes (POST, PUT) of Secrets, ConfigMaps and Leases, for tests ("POST secrets ns/name"). */
  readonly plainWrites: string[] = [];

  /**
   * GET, POST (create: 409 AlreadyExists when there is one) and PUT (replace:
   * 409 Conflict when metadata.resourceVersion is not the current one) of a
   * Secret, ConfigMap or Lease, as kube-apiserver answers them.
   */
  private async plainObject(req: http.IncomingMessage, reply: (code: number, body: object) => void, plural: PlainPlural, namespace: string, name: string | undefined): Promise<void> {
    const { kind, apiVersion } = PLAIN_KINDS[plural];
    const notFound = (n: string) => reply(404, { ...status(404, 'NotFound', `${plural} "${n}" not found`), details: { name: n, kind: plural } });
    if (req.method === 'GET' && name) {
      const found = this.plainObjects.get(`${plural} ${namespace}/${name}`);
      return found ? reply(200, found) : notFound(name);
    }
    if ((req.method === 'POST' && !name) || (req.method === 'PUT' && name)) {
      const body = (await readJson(req)) as StoredObject;
      const objectName = name ?? body?.metadata?.name;
      if (typeof objectName !== 'string' || !objectName) return reply(422, status(422, 'Invalid', `${kind} "": metadata.name: Required value`));
      const key = `${plural} ${namespace}/${objectName}`;
      const current = this.plainObjects.get(key);
      if (req.method === 'POST' && current) return reply(409, status(409, 'AlreadyExists', `${plural} "${objectName}" already exists`));
      if (req.method === 'PUT') {
        if (!current) return notFound(objectName);
        const asked = body.metadata?.resourceVersion;
        if (asked && asked !== current.metadata.resourceVersion) {
          return reply(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${plural} "${objectName}": the object has been modified; please apply your changes to the latest version and try again`));
        }
      }
      const stored: StoredObject = { ...body, kind, apiVersion, metadata: { ...body.metadata, name: objectName, namespace, uid: current?.metadata.uid ?? randomUUID(), resourceVersion: String(++this.revision) } };
      this.plainObjects.set(key, stored);
      this.plainWrites.push(`${req.method} ${plural} ${namespace}/${objectName}`);
      return reply(req.method === 'POST' ? 201 : 200, stored);
    }
    return reply(405, status(405, 'MethodNotAllowed', `${req.method} is not supported for ${plural} by the stand-in`));
  }

  /** Puts a Secret, ConfigMap or Lease in place as an operator would (kubectl create), for tests. */
  putPlainObject(object: StoredObject): void {
    const plural = pluralOfPlainKind(object.kind ?? '');
    this.plainObjects.set(`${plural} ${object.metadata.namespace}/${object.metadata.name}`, { ...object, metadata: { ...object.metadata, uid: randomUUID(), resourceVersion: String(++this.revision) } });
  }

  /** A Secret, ConfigMap or Lease as stored, for tests. */
  plainObjectOf(kind: 'Secret' | 'ConfigMap' | 'Lease', namespace: string, name: string): StoredObject | undefined {
    return this.plainObjects.get(`${pluralOfPlainKind(kind)} ${namespace}/${name}`);
  }

  /** Status PATCHes seen, for tests ("plural namespace/name"). */
  readonly statusPatches: string[] = [];
  /** Events created (POST /api/v1/namespaces/NS/events), for tests; not served back. */
  readonly events: StoredObject[] = [];

  /**
   * A JSON merge patch (RFC 7386) of the status subresource: only `status`
   * of the patch is applied; a new resourceVersion, MODIFIED to the
   * watches. Undefined when there is no such object.
   */
  private patchStatus(resource: WatchedResource, namespace: string | undefined, name: string, patch: unknown): StoredObject | undefined {
    const key = this.keyOf(resource, namespace, name);
    const before = this.store.get(resource.plural)!.get(key);
    if (!before) return undefined;
    this.statusPatches.push(`${resource.plural} ${namespace ?? ''}/${name}`);
    const stored = structuredClone(before);
    stored.status = mergePatch(before.status, (patch as { status?: unknown })?.status);
    stored.metadata.resourceVersion = String(++this.revision);
    this.store.get(resource.plural)!.set(key, stored);
    this.emit({ rv: this.revision, plural: resource.plural, type: 'MODIFIED', object: stored });
    return stored;
  }

  /** A TokenReview answered (authentication.k8s.io/v1), for the tokens this stand-in issued. */
  private review(body: unknown): object {
    const spec = (body as { spec?: { token?: unknown; audiences?: unknown } })?.spec ?? {};
    const token = typeof spec.token === 'string' ? spec.token : '';
    const wanted = Array.isArray(spec.audiences) ? spec.audiences.filter((a): a is string => typeof a === 'string') : [];
    const answer = (s: object) => ({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status: s });
    const issued = this.issuedTokens.get(token);
    if (!issued) return answer({ authenticated: false, user: {}, error: 'invalid bearer token' });
    if (issued.expiresAt <= Date.now()) return answer({ authenticated: false, user: {}, error: 'invalid bearer token, service account token has expired' });
    // kube-apiserver authenticates for the intersection of the asked and the token's audiences.
    const audiences = wanted.length ? wanted.filter((a) => issued.audiences.includes(a)) : issued.audiences;
    if (audiences.length === 0) return answer({ authenticated: false, user: {}, error: `invalid bearer token, token audiences ${JSON.stringify(issued.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}` });
    return answer({
      authenticated: true,
      audiences,
      user: {
        username: `system:serviceaccount:${issued.namespace}:${issued.serviceAccount}`,
        uid: randomUUID(),
        groups: ['system:serviceaccounts', `system:serviceaccounts:${issued.namespace}`, 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/pod-name': [issued.pod.name],
          'authentication.kubernetes.io/pod-uid': [issued.pod.uid],
          'authentication.kubernetes.io/node-name': [issued.node],
        },
      },
    });
  }

  private current(resource: WatchedResource, namespace?: string): StoredObject[] {
    return [...this.store.get(resource.plural)!.entries()]
      .filter(([, o]) => !namespace || o.metadata.namespace === namespace)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, o]) => o);
  }

  private listSnapshot?: { key: string; objects: StoredObject[] };

  private list(resource: WatchedResource, namespace: string | undefined, params: URLSearchParams, reply: (code: number, body: object) => void): void {
    this.counts.get(resource.plural)!.lists++;
    let start = 0;
    let rv = this.revision;
    const token = params.get('continue');
    if (token) {
      try {
        ({ start, rv } = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { start: number; rv: number });
      } catch {
        return reply(400, status(400, 'BadRequest', 'invalid continue token'));
      }
      // A continue token lives as long as its snapshot; the stand-in keeps none once anything changed.
      if (rv !== this.revision) return reply(410, status(410, 'Expired', 'the provided continue parameter is too old'));
    }
    // One sorted snapshot per resource and revision serves every page of a paginated list.
    const cacheKey = `${resource.plural} ${namespace ?? ''} ${rv}`;
    if (this.listSnapshot?.key !== cacheKey) this.listSnapshot = { key: cacheKey, objects: this.current(resource, namespace) };
    const all = this.listSnapshot.objects;
    const limit = Number(params.get('limit') ?? 0);
    const page = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const more = limit > 0 && start + limit < all.length;
    // Built-in kinds' list items carry no type; custom resources' do.
    const builtin = !resource.apiVersion.includes('.sluice.dev/');
    reply(200, {
      kind: `${resource.kind}List`,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: String(rv), ...(more ? { continue: Buffer.from(JSON.stringify({ start: start + limit, rv })).toString('base64') } : {}) },
      items: page.map((o) => (builtin ? (({ apiVersion: _a, kind: _k, ...rest }) => rest)(o) : { ...o, kind: resource.kind })),
    });
  }

  private watch(
    resource: WatchedResource,
    namespace: string | undefined,
    params: URLSearchParams,
    res: http.ServerResponse,
    reply: (code: number, body: object) => void,
  ): void {
    const from = params.get('resourceVersion') ?? '';
    const counts = this.counts.get(resource.plural)!;
    counts.watches++;
    counts.watchedFrom.push(from);
    const fault = this.faults.get(resource.plural)?.shift();
    if (fault === 'gone-http') return reply(410, status(410, 'Expired', `too old resource version: ${from} (${this.compactedAt})`));
    if (fault === 'error') return reply(500, status(500, 'InternalError', 'injected failure'));
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: OpenWatch = { resource, namespace, res, timers: [] };
    const gone = () => {
      this.send(w, 'ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.compactedAt})`));
      res.end();
    };
    if (fault === 'close') return void res.end();
    if (fault === 'gone-event') return gone();
    const since = from === '' || from === '0' ? undefined : Number(from);
    if (since !== undefined && (!Number.isInteger(since) || since < this.compactedAt)) return gone();
    this.watches.add(w);
    res.on('close', () => {
      for (const t of w.timers) clearTimeout(t);
      this.watches.delete(w);
    });
    const mine = (o: StoredObject) => !namespace || o.metadata.namespace === namespace;
    if (since === undefined) {
      for (const o of this.current(resource, namespace)) this.send(w, 'ADDED', o);
    } else {
      for (const c of this.changes) if (c.plural === resource.plural && c.rv > since && mine(c.object)) this.send(w, c.type, c.object);
    }
    if (params.get('allowWatchBookmarks') === 'true') {
      const bookmark = () => {
        this.send(w, 'BOOKMARK', { kind: resource.kind, apiVersion: resource.apiVersion, metadata: { resourceVersion: String(this.revision) } });
        w.timers[0] = setTimeout(bookmark, this.bookmarkIntervalMs);
      };
      w.timers[0] = setTimeout(bookmark, this.bookmarkIntervalMs);
    }
    const timeout = Number(params.get('timeoutSeconds') ?? 0);
    if (timeout > 0) w.timers[1] = setTimeout(() => this.endWatch(w), timeout * 1000);
  }
}
