// The Kubernetes API as sluice-control's source: one @kubernetes/client-node
// informer (ListWatch) per resource in WATCHED_RESOURCES. Each lists once,
// then watches from the list's resourceVersion with bookmarks; a watch that
// ends is resumed from the last resourceVersion seen (no new list); a
// watch answered with 410 Gone (an ERROR event with a Status of code 410,
// or HTTP 410) lists again, and objects missing from the new list are
// deleted; any other error is retried with full-jitter exponential backoff
// (0.5 s doubling to 30 s). Objects are handed to the same translation the
// manifest source feeds, once every resource has been listed (a partial
// view would publish Services without their endpoints).
import * as fs from 'node:fs';
import * as https from 'node:https';
import { KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeObject, SourcedObject } from './kubernetes-objects';
import { WATCHED_RESOURCES, type WatchedResource } from './kubernetes-resources';

/** How objects from the API are named in errors: "Kubernetes API: Service shop/web: spec.ports[0]: ...". */
export const KUBERNETES_SOURCE = 'Kubernetes API';

/** One watched resource ("pods", "endpointslices", ...) as sluice-control's /status shows it. */
export interface ResourceStatus {
  resource: string;
  /** Listed at least once since start (or found not served, e.g. a CRD not installed). */
  synced: boolean;
  resourceVersion: string;
  objects: number;
  lists: number;
  watches: number;
  /** Watches answered with 410 Gone (each followed by a new list). */
  expired: number;
  errors: number;
  /** The last error, '' after a successful list or watch event. */
  lastError: string;
  /**
   * The resourceVersion through which what sluice-control serves is
   * complete: every change of this resource up to it has been translated and
   * published ('' before the first publish). Opaque, as every
   * resourceVersion: equal to resourceVersion once nothing is pending.
   */
  servedResourceVersion: string;
}

/**
 * Tuning, mostly for tests. Defaults: backoff 500 ms doubling to 30 000 ms,
 * watch timeout 300-600 s, pages of 500 objects, a 50 ms debounce.
 */
export interface KubernetesSourceOptions {
  /** First retry delay after an error; doubles to maxBackoffMs (full jitter). */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Asked of the server per watch (it ends the stream then; the watch resumes). Default 300-600 s, random, as client-go does. */
  watchTimeoutSeconds?: () => number;
  /** Page size of lists. */
  pageSize?: number;
  /** Delay to gather a burst of changes into one publish. */
  debounceMs?: number;
}

/** Where the kubelet mounts the pod's service account token. */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/**
 * Builds the client configuration: a kubeconfig file (its current context)
 * for development, or, with no path, the in-cluster configuration (the
 * service account token and CA mounted into the pod, and
 * KUBERNETES_SERVICE_HOST/PORT). Throws when neither can be loaded.
 */
export function loadKubeConfig(kubeconfigPath: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else {
    // loadFromCluster does not check: without these it would aim at "https://undefined:undefined".
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod? use --kubeconfig)');
    }
    if (!fs.existsSync(SERVICE_ACCOUNT_TOKEN)) throw new Error(`in-cluster configuration: ${SERVICE_ACCOUNT_TOKEN}: no such file`);
    kc.loadFromCluster();
  }
  if (!kc.getCurrentCluster()) throw new Error(kubeconfigPath ? `${kubeconfigPath}: no current cluster (set current-context)` : 'in-cluster configuration: no cluster');
  return kc;
}

class HttpError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

interface Informer {
  resource: WatchedResource;
  lw: ListWatch<KubernetesObject>;
  status: ResourceStatus;
  attempt: number;
  retry?: NodeJS.Timeout;
  /** The list answered 404: the API does not serve this resource (yet). */
  notServed: boolean;
}

/**
 * Objects from the Kubernetes API: an informer (list, then watch from its
 * resourceVersion) per resource in WATCHED_RESOURCES. onChange gets every
 * object held, after a debounce, once all resources have been listed and on
 * each change after that. patchStatus and createEvent write what
 * PolicyStatusWriter decides.
 */
export class KubernetesSource {
  private readonly informers: Informer[] = [];
  private readonly options: Required<KubernetesSourceOptions>;
  private stopped = false;
  private debounce?: NodeJS.Timeout;
  /** Something was listed or changed since the last publish. */
  private dirty = true;
  /** Each resource's resourceVersion when the objects were last published. */
  private readonly published = new Map<string, string>();
  /** The API server's address, for status. */
  readonly server: string;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly logger: Logger,
    private readonly onChange: (objects: SourcedObject[]) => void,
    options: KubernetesSourceOptions = {},
  ) {
    this.options = {
      baseBackoffMs: options.baseBackoffMs ?? 500,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300)),
      pageSize: options.pageSize ?? 500,
      debounceMs: options.debounceMs ?? 50,
    };
    this.server = kubeConfig.getCurrentCluster()?.server ?? '';
  }

  /** Starts every informer; returns at once (progress shows in status() and onChange). */
  start(): void {
    for (const resource of WATCHED_RESOURCES) {
      const status: ResourceStatus = { resource: resource.plural, synced: false, resourceVersion: '', objects: 0, lists: 0, watches: 0, expired: 0, errors: 0, lastError: '', servedResourceVersion: '' };
      const informer = { resource, status, attempt: 0, notServed: false } as Informer;
      informer.lw = new ListWatch<KubernetesObject>(resource.path, this.watcher(informer), () => this.list(informer), false);
      const changed = () => {
        informer.attempt = 0;
        informer.status.lastError = '';
        this.soon();
      };
      informer.lw.on('add', changed);
      informer.lw.on('update', changed);
      informer.lw.on('delete', changed);
      informer.lw.on('error', (err: unknown) => this.failed(informer, err));
      this.informers.push(informer);
      void informer.lw.start();
    }
  }

  /** Stops every informer, retry and pending publish; onChange is not called again. */
  stop(): void {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    for (const i of this.informers) {
      if (i.retry) clearTimeout(i.retry);
      void i.lw.stop();
    }
  }

  /** Every resource has been listed once: the objects are a whole view of the cluster. */
  get synced(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.status.synced);
  }

  /** Per resource: synced, resourceVersion, counts, last error (sluice-control's /status). */
  status(): ResourceStatus[] {
    return this.informers.map((i) => {
      const resourceVersion = i.lw.latestResourceVersion();
      // Nothing pending: a bookmark that moved the resourceVersion brought no change, so what is served is complete through it.
      const servedResourceVersion = this.dirty ? (this.published.get(i.resource.plural) ?? '') : resourceVersion;
      return { ...i.status, resourceVersion, servedResourceVersion, objects: i.lw.list().length };
    });
  }

  /** Problems to show in status: resources not served or failing. */
  get problems(): { file: string; reason: string }[] {
    return this.informers.filter((i) => i.status.lastError).map((i) => ({ file: `${this.server} ${i.resource.path}`, reason: i.status.lastError }));
  }

  /**
   * The objects the informers hold, typed (list items of built-in kinds come
   * without kind and apiVersion) and in WATCHED_RESOURCES order, then by
   * namespace and name.
   */
  objects(): SourcedObject[] {
    return this.informers.flatMap((i) =>
      i.lw
        .list()
        .map((o) => ({ ...o, apiVersion: o.apiVersion ?? i.resource.apiVersion, kind: o.kind ?? i.resource.kind }) as unknown as KubeObject)
        .sort((a, b) => `${a.metadata?.namespace ?? ''}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace ?? ''}/${b.metadata?.name}`))
        .map((object) => ({ object, source: KUBERNETES_SOURCE })),
    );
  }

  private soon(): void {
    this.dirty = true;
    if (this.stopped || !this.synced) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (this.stopped) return;
      for (const i of this.informers) this.published.set(i.resource.plural, i.lw.latestResourceVersion());
      this.dirty = false;
      this.onChange(this.objects());
    }, this.options.debounceMs);
  }

  private failed(informer: Informer, err: unknown): void {
    if (this.stopped) return;
    const e = err as { message?: string; statusCode?: number };
    informer.status.errors++;
    informer.status.lastError = e.statusCode ? `HTTP ${e.statusCode}: ${e.message}` : String(e.message ?? err);
    const delay = backoffDelay(informer.attempt++, this.options.baseBackoffMs, this.options.maxBackoffMs);
    this.logger.warn({ resource: informer.resource.plural, err: informer.status.lastError, retryInMs: delay }, 'list/watch failed, retrying; the last known objects keep being served');
    if (informer.retry) clearTimeout(informer.retry);
    // start() resumes the watch from the last resourceVersion, or lists when there is none.
    informer.retry = setTimeout(() => void informer.lw.start(), delay);
  }

  /** The Watch the informer uses, asking for bookmarks and a server-side timeout, and counting what happens. */
  private watcher(informer: Informer): Watch {
    const watch = new Watch(this.kubeConfig);
    const status = informer.status;
    return {
      config: this.kubeConfig,
      watch: (path: string, params: Record<string, unknown>, callback: (phase: string, obj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void) => {
        if (informer.notServed) {
          // Nothing to watch until a list finds the resource served.
          done(new HttpError(`${informer.resource.path} is not served by the API (not installed?)`, 404));
          return Promise.resolve(new AbortController());
        }
        status.watches++;
        return watch.watch(
          path,
          { ...params, allowWatchBookmarks: true, timeoutSeconds: this.options.watchTimeoutSeconds() },
          (phase, obj, watchObj) => {
            if (phase === 'ERROR' && (obj as { code?: number })?.code === 410) status.expired++;
            else if (phase !== 'ERROR') {
              informer.attempt = 0;
              status.lastError = '';
            }
            callback(phase, obj, watchObj);
          },
          (err) => {
            if ((err as { statusCode?: number } | null)?.statusCode === 410) status.expired++;
            done(err);
          },
        );
      },
    } as unknown as Watch;
  }

  /** GET of the resource's collection, page by page, as raw JSON. A 404 is an empty list (the resource is not served). */
  private async list(informer: Informer): Promise<{ metadata: { resourceVersion?: string }; items: KubernetesObject[] }> {
    informer.status.lists++;
    const items: KubernetesObject[] = [];
    let token = '';
    let resourceVersion = '';
    for (;;) {
      const query = new URLSearchParams({ limit: String(this.options.pageSize), ...(token ? { continue: token } : {}) });
      let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: KubernetesObject[] };
      try {
        page = (await this.get(`${informer.resource.path}?${query}`)) as typeof page;
      } catch (err) {
        if ((err as HttpError).statusCode === 404) {
          informer.notServed = true;
          informer.status.synced = true;
          throw err;
        }
        throw err;
      }
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata?.resourceVersion ?? '';
      token = page.metadata?.continue ?? '';
      if (!token) break;
    }
    informer.notServed = false;
    informer.status.synced = true;
    informer.status.lastError = '';
    informer.attempt = 0;
    // The informer fills its cache from these items right after this returns; publish after that.
    this.dirty = true;
    setImmediate(() => this.soon());
    return { metadata: { resourceVersion }, items };
  }

  private get(pathAndQuery: string): Promise<unknown> {
    return this.request('GET', pathAndQuery);
  }

  /**
   * A JSON merge patch of an object's status subresource (`objectPath`:
   * "/apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME"). Rejects with the API
   * server's message (HttpError with its status code).
   */
  async patchStatus(objectPath: string, status: object): Promise<void> {
    await this.request('PATCH', `${objectPath}/status`, { status }, 'application/merge-patch+json');
  }

  /** Creates a core/v1 Event in `namespace`. Rejects with the API server's message. */
  async createEvent(namespace: string, event: object): Promise<void> {
    await this.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, event);
  }

  private async request(method: 'GET' | 'PATCH' | 'POST', pathAndQuery: string, body?: object, contentType?: string): Promise<unknown> {
    const url = new URL(this.server + pathAndQuery);
    const payload = body ? Buffer.from(JSON.stringify(body)) : undefined;
    const options: https.RequestOptions = {
      method,
      headers: { accept: 'application/json', ...(payload ? { 'content-type': contentType ?? 'application/json', 'content-length': payload.length } : {}) },
    };
    await this.kubeConfig.applyToHTTPSOptions(options);
    return new Promise((resolve, reject) => {
      const req = https.request(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200 && res.statusCode !== 201) {
            let message = text.slice(0, 200);
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? message;
            } catch {
              // not a Status: keep the text
            }
            return reject(new HttpError(`${method} ${url.pathname}: ${message}`, res.statusCode ?? 0));
          }
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(new Error(`${method} ${url.pathname}: not JSON: ${(err as Error).message}`));
          }
        });
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 60 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
