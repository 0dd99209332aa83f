// sluicectl talks to the agent's admin endpoint only: a unix socket path or host:port.
import * as http from 'node:http';

export function adminGet(admin: string, path: string, timeoutMs = 5000): Promise<unknown> {
  const target: http.RequestOptions = admin.startsWith('/')
    ? { socketPath: admin }
    : { host: admin.slice(0, admin.lastIndexOf(':')) || '127.0.0.1', port: Number(admin.slice(admin.lastIndexOf(':') + 1)) };
  return new Promise((resolve, reject) => {
    const req = http.get({ ...target, path, timeout: timeoutMs }, (res) => {
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
        if ((res.statusCode ?? 500) >= 400 && res.statusCode !== 503) {
          reject(new Error(`agent answered ${res.statusCode} for ${path}: ${typeof body === 'object' ? JSON.stringify(body) : body}`));
        } else resolve(body);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent at ${admin} within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? ' (is the agent running? pass --admin SOCKET|HOST:PORT)' : '';
      reject(new Error(`cannot reach the agent at ${admin}: ${err.message}${hint}`));
    });
  });
}
