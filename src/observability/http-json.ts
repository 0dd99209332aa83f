// A minimal JSON-over-HTTP router shared by the admin, metrics and readiness servers.
import * as fs from 'node:fs';
import * as http from 'node:http';

export type Handler = (url: URL) => { status?: number; body: unknown; contentType?: string } | Promise<{ status?: number; body: unknown; contentType?: string }>;

/**
 * `routes` answer GET and HEAD; `postRoutes` answer POST (changes made at run
 * time, such as log levels: only on the admin socket, never on a status port).
 */
export function createJsonServer(routes: Record<string, Handler>, postRoutes: Record<string, Handler> = {}): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const handler = req.method === 'POST' ? postRoutes[url.pathname] : req.method === 'GET' || req.method === 'HEAD' ? routes[url.pathname] : undefined;
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no such endpoint ${req.method} ${url.pathname}`, endpoints: Object.keys(routes), post: Object.keys(postRoutes) }));
      return;
    }
    req.resume();
    Promise.resolve()
      .then(() => handler(url))
      .then(
        ({ status = 200, body, contentType = 'application/json' }) => {
          res.writeHead(status, { 'content-type': contentType });
          res.end(typeof body === 'string' ? body : JSON.stringify(body, bigintReplacer, 2));
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: err.message }));
        },
      );
  });
}

/** JSON.stringify replacer: a bigint (a netns cookie) becomes its decimal string. */
export function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Listens on host:port; rejects with "listen host:port: <reason>". */
export function listenTcp(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`listen ${host}:${port}: ${err.message}`)));
    server.listen(port, host, () => resolve());
  });
}

/** Listens on a unix socket, replacing a stale socket file from an earlier run. */
export function listenUnix(server: http.Server, socketPath: string): Promise<void> {
  fs.rmSync(socketPath, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`listen ${socketPath}: ${err.message}`)));
    server.listen(socketPath, () => resolve());
  });
}
