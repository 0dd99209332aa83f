// The plugin's side of the agent socket: one HTTP/1.1 request over a unix
// socket, written by hand on node:net so the plugin does not load node:http.
import * as net from 'node:net';

export interface AgentAnswer {
  status: number;
  body: unknown;
}

/**
 * Sends one request and reads the whole answer (the agent closes the
 * connection after it). Rejects with an Error when the socket cannot be
 * reached (`code` ENOENT, ECONNREFUSED, ...), on timeout (code ETIMEDOUT), or
 * when the answer is not HTTP with a JSON body.
 */
export function agentRequest(socketPath: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<AgentAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const socket = net.connect(socketPath);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (err: Error | undefined, answer?: AgentAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(Object.assign(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    // Write without half-closing: Node's HTTP server ends a connection whose
    // client has sent FIN before it answered, and the agent answers a pod
    // report only once the pod is enrolled, which takes a while.
    socket.on('connect', () => {
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: sluice-agent\r\nConnection: close\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
      );
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => finish(err));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m || head < 0) return finish(new Error(`answer from ${socketPath} is not HTTP`));
      const headers = text.slice(0, head);
      let rest = text.slice(head + 4);
      if (/\r\ntransfer-encoding: *chunked/i.test(headers)) rest = unchunk(rest);
      try {
        finish(undefined, { status: Number(m[1]), body: rest ? JSON.parse(rest) : undefined });
      } catch {
        finish(new Error(`answer from ${socketPath} is not JSON (status ${m[1]})`));
      }
    });
  });
}

function unchunk(text: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', at);
    if (eol < 0) return out;
    const size = parseInt(text.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}
