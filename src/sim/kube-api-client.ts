// How the sim's CLI changes its cluster: through the Kubernetes API
// stand-in's unix socket (kube-api-main.ts), with the verbs kubectl uses
// (POST to create, PUT to replace, DELETE), so that sluice-control sees
// every change as watch events, as it would on a real cluster.
import * as http from 'node:http';
import * as path from 'node:path';
import type { KubeObject } from '../control/kubernetes-objects';
import { WATCHED_RESOURCES, type WatchedResource } from '../control/kubernetes-resources';
import { MANAGED_BY, MANAGED_BY_LABEL } from './endpoint-slice-controller';

/** Files the stand-in process (kube-api-main.ts) keeps in its --dir. */
export function kubeApiFiles(dir: string): { kubeconfig: string; socket: string; token: string; certificate: string; key: string } {
  return { kubeconfig: path.join(dir, 'kubeconfig'), socket: path.join(dir, 'api.sock'), token: path.join(dir, 'token'), certificate: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
}

interface ApiAnswer {
  status: number;
  body: { metadata?: { resourceVersion?: string }; items?: KubeObject[]; message?: string };
}

/** Fields the API server sets: left out when comparing what is stored with what is wanted. */
const SERVER_SET_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields'];

/** JSON with object keys sorted, so that two objects compare by content. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}

function comparable(o: KubeObject, resource: WatchedResource, keepUid: boolean): string {
  const metadata = Object.fromEntries(Object.entries(o.metadata).filter(([k]) => !SERVER_SET_METADATA.includes(k) || (keepUid && k === 'uid' && o.metadata.uid !== undefined)));
  // A policy's status is sluice-control's to write (status subresource), not the sim's.
  const { status, apiVersion: _a, kind: _k, ...rest } = o as KubeObject & { status?: unknown };
  return canonical({ ...rest, metadata, ...(resource.apiVersion.startsWith('security.sluice.dev/') ? {} : { status }) });
}

/** The sim CLI's client of the API stand-in: requests over its unix socket with its bearer token, and sync(). */
export class SimKubeApi {
  constructor(
    private readonly socket: string,
    private readonly token: string,
  ) {}

  /** One request; resolves with the status code and the JSON body, rejects when the socket does not answer within 10 s. */
  request(method: string, path: string, body?: object): Promise<ApiAnswer> {
    const payload = body ? Buffer.from(JSON.stringify(body)) : undefined;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socket, path, method, headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ApiAnswer['body'] });
            } catch (err) {
              reject(new Error(`${method} ${path}: the answer is not JSON: ${(err as Error).message}`));
            }
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer from ${this.socket} in 10 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** The API's current resourceVersion (every change, slices included, is at or before it). */
  async revision(): Promise<number> {
    const r = await this.request('GET', '/api/v1/namespaces?limit=1');
    if (r.status !== 200) throw new Error(`GET /api/v1/namespaces: HTTP ${r.status}: ${r.body.message ?? ''}`);
    return Number(r.body.metadata?.resourceVersion ?? 0);
  }

  /**
   * Makes the API hold exactly `desired` (of the kinds sluice-control
   * watches; others are skipped): creates what is missing, replaces what
   * differs, deletes what is no longer wanted, except the EndpointSlices of
   * the controller stand-in, which follow on their own. A pod's uid is the
   * one in `desired`. Returns the number of writes. Rejects with the API's
   * message on the first refused write.
   */
  async sync(desired: KubeObject[]): Promise<number> {
    let writes = 0;
    for (const resource of WATCHED_RESOURCES) {
      const listed = await this.request('GET', resource.path);
      if (listed.status !== 200) throw new Error(`GET ${resource.path}: HTTP ${listed.status}: ${listed.body.message ?? ''}`);
      const stored = new Map((listed.body.items ?? []).map((o) => [key(o), o]));
      const wanted = desired
        .filter((o) => o.kind === resource.kind)
        .map((o) => (resource.namespaced ? { ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace || 'default' } } : o));
      for (const o of wanted) {
        const now = stored.get(key(o));
        stored.delete(key(o));
        if (now && comparable(now, resource, true) === comparable({ ...o, metadata: { ...o.metadata, uid: o.metadata.uid ?? now.metadata.uid } }, resource, true)) continue;
        // A pod whose uid changed is a new pod: delete it first, as its replacement would be created.
        if (now && o.metadata.uid !== undefined && now.metadata.uid !== o.metadata.uid) {
          await this.write('DELETE', objectPath(resource, now));
          await this.write('POST', objectPath(resource, o, false), o);
        } else if (now) await this.write('PUT', objectPath(resource, o), { ...o, metadata: { ...o.metadata, resourceVersion: now.metadata.resourceVersion } });
        else await this.write('POST', objectPath(resource, o, false), o);
        writes++;
      }
      for (const gone of stored.values()) {
        if (resource.kind === 'EndpointSlice' && (gone.metadata.labels as Record<string, string> | undefined)?.[MANAGED_BY_LABEL] === MANAGED_BY) continue;
        await this.write('DELETE', objectPath(resource, gone));
        writes++;
      }
    }
    return writes;
  }

  private async write(method: string, path: string, body?: object): Promise<void> {
    const r = await this.request(method, path, body);
    if (r.status !== 200 && r.status !== 201) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.body.message ?? ''}`);
  }
}

function key(o: KubeObject): string {
  return `${o.metadata.namespace || 'default'}/${o.metadata.name}`;
}

/** The object's path (or its collection's, with `named` false) in the API. */
function objectPath(resource: WatchedResource, o: KubeObject, named = true): string {
  const base = resource.namespaced
    ? `${resource.path.slice(0, resource.path.length - resource.plural.length)}namespaces/${encodeURIComponent(o.metadata.namespace || 'default')}/${resource.plural}`
    : resource.path;
  return named ? `${base}/${encodeURIComponent(o.metadata.name)}` : base;
}
