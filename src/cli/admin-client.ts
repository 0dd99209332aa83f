// sluicectl talks to admin endpoints only (an agent's or the control plane's):
// a unix socket path or host:port.
import * as http from 'node:http';

/** The admin endpoint could not be reached or refused the request; sluicectl exits 1 on it. */
export class AdminError extends Error {}

export interface AdminEndpoint {
  /** A unix socket path (starts with "/") or HOST:PORT. */
  address: string;
  /** "agent" or "control plane": used in messages. */
  what: string;
  /** The flag that names the endpoint, for hints ("--admin"). */
  flag: string;
}

/** Why `address` is not a usable admin address, or undefined when it is. */
export function addressProblem(address: string): string | undefined {
  if (address.startsWith('/')) return undefined;
  const m = /^(.*):(\d{1,5})$/.exec(address);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `${JSON.stringify(address)} is not a unix socket path (/...) or HOST:PORT`;
  return undefined;
}

/**
 * GETs (or POSTs, for run-time changes) `path` from the endpoint and returns the body, parsed as JSON when it
 * is JSON (else the text). Status 503 counts as an answer (a status that is
 * not ready). Rejects with AdminError when the endpoint cannot be reached,
 * does not answer within timeoutMs, or answers with another error status
 * (the message carries the endpoint's "error" field when it has one).
 */
export function adminGet(endpoint: AdminEndpoint, path: string, timeoutMs = 5000, method: 'GET' | 'POST' = 'GET'): Promise<unknown> {
  const { address: admin, what, flag } = endpoint;
  const at = admin.lastIndexOf(':');
  const target: http.RequestOptions = admin.startsWith('/') ? { socketPath: admin } : { host: admin.slice(0, at) || '127.0.0.1', port: Number(admin.slice(at + 1)) };
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, path, method, timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        let body: unknown = data;
        try {
          body = JSON.parse(data);
        } catch {
          // keep text
        }
        const status = res.statusCode ?? 500;
        if (status >= 400 && status !== 503) {
          const error = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : typeof body === 'object' ? JSON.stringify(body) : String(body).slice(0, 200);
          reject(new AdminError(`the ${what} at ${admin} answered ${status} for ${path.split('?')[0]}: ${error}`));
        } else resolve(body);
      });
      res.on('error', (err) => reject(new AdminError(`reading the answer of the ${what} at ${admin}: ${err.message}`)));
    });
    req.on('timeout', () => req.destroy(new AdminError(`no answer from the ${what} at ${admin} within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof AdminError) return reject(err);
      const hint = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? ` (is the ${what} running? pass ${flag} SOCKET|HOST:PORT)` : '';
      reject(new AdminError(`cannot reach the ${what} at ${admin}: ${err.message}${hint}`));
    });
    req.end();
  });
}
