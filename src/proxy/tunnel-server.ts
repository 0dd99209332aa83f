// The destination side of the tunnel: accepts HTTP/2 CONNECT over mutual
// TLS 1.3 on :15008, presents the destination workload's certificate (by
// SNI), verifies the caller's certificate against the mesh root, applies
// authorization with the verified principal, and connects the local pod.
// Anything else (no or bad certificate, a target that is not a local pod, a
// denied principal) is refused, logged once and counted.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import type { Workload } from '../model/resources';
import type { Decision, Peer } from './authorization';
import { TUNNEL_SESSION_WINDOW, TUNNEL_STREAM_WINDOW, identityFromSni, uriSanOf, type TlsCredentials } from './tunnel-identity';

export interface TunnelServerDeps {
  credentials(identity: string): TlsCredentials | undefined;
  rootPem(): string | undefined;
  /** A workload of this node with that pod IP. */
  localWorkload(ip: string): Workload | undefined;
  authorize(destination: Workload, source: Peer, port: number): Decision;
  logger: Logger;
}

export class TunnelServer {
  readonly counters = { accepted: 0, refusedTarget: 0, refusedPolicy: 0, refusedTls: 0, connectFailed: 0 };
  private readonly server: http2.Http2SecureServer;

  constructor(private readonly deps: TunnelServerDeps) {
    this.server = http2.createSecureServer({
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      settings: { initialWindowSize: TUNNEL_STREAM_WINDOW },
      SNICallback: (servername, cb) => {
        const identity = identityFromSni(servername);
        const creds = identity ? deps.credentials(identity) : undefined;
        const root = deps.rootPem();
        if (!identity || !creds || !root) {
          cb(new Error(`no certificate here for ${servername}`));
          return;
        }
        cb(null, tls.createSecureContext({ key: creds.keyPem, cert: creds.chainPem.slice(0, -1).join(''), ca: root, minVersion: 'TLSv1.3' }));
      },
    });
    this.server.on('tlsClientError', (err, socket) => {
      this.counters.refusedTls++;
      deps.logger.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, `tunnel refused at TLS: ${err.message}`);
    });
    this.server.on('session', (session) => {
      try {
        session.setLocalWindowSize(TUNNEL_SESSION_WINDOW);
      } catch {
        // the session is already gone
      }
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('sessionError', () => undefined);
  }

  listen(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err) => reject(new Error(`tunnel listen ${address}:${port}: ${err.message}`)));
      this.server.listen(port, address, () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private refuse(stream: http2.ServerHttp2Stream, status: number, reason: string, log: object): void {
    this.deps.logger.warn(log, `tunnel stream refused: ${reason}`);
    if (!stream.destroyed) stream.respond({ ':status': status, 'sluice-reason': reason }, { endStream: true });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const socket = stream.session?.socket as tls.TLSSocket | undefined;
    const principal = uriSanOf(socket?.getPeerCertificate()?.subjectaltname);
    const target = String(headers[':authority'] ?? '');
    const peerAddress = socket?.remoteAddress ?? '';
    const log = { peer: principal ?? '(none)', from: peerAddress, target };
    if (headers[':method'] !== 'CONNECT' || !principal) {
      this.counters.refusedTls++;
      this.refuse(stream, 400, 'only CONNECT from a peer with a workload certificate', log);
      return;
    }
    const m = /^(.+):(\d+)$/.exec(target);
    const destination = m ? this.deps.localWorkload(m[1]) : undefined;
    if (!m || !destination) {
      this.counters.refusedTarget++;
      this.refuse(stream, 404, `${target} is not a pod on this node`, log);
      return;
    }
    const port = Number(m[2]);
    const ns = /\/ns\/([^/]+)\//.exec(principal)?.[1];
    const decision = this.deps.authorize(destination, { principal: principal.replace(/^spiffe:\/\//, ''), namespace: ns, ip: peerAddress }, port);
    if (!decision.allowed) {
      this.counters.refusedPolicy++;
      this.refuse(stream, 403, `denied: ${decision.reason}`, { ...log, destination: `${destination.namespace}/${destination.name}`, policy: decision.policy });
      return;
    }
    const upstream = net.connect({ host: m[1], port, allowHalfOpen: true, noDelay: true });
    upstream.once('error', (err) => {
      if (!stream.headersSent) {
        this.counters.connectFailed++;
        this.refuse(stream, 502, `connect ${target}: ${err.message}`, log);
      } else stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    });
    upstream.once('connect', () => {
      this.counters.accepted++;
      stream.respond({ ':status': 200 });
      stream.pipe(upstream);
      upstream.pipe(stream);
      upstream.on('error', () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
      stream.on('close', () => {
        if (!upstream.destroyed && stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) upstream.resetAndDestroy();
      });
    });
  }
}
