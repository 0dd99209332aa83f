// The source side of the tunnel between node proxies: HTTP/2 CONNECT over
// mutual TLS 1.3 to the destination node's agent (port 15008), the shape
// Istio calls HBONE. Sessions are pooled per (source identity, destination
// identity, destination node), so an application connection costs a stream,
// not a TLS handshake.
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type * as net from 'node:net';
import { forwardedFor } from './connection-decision';
import { QUEUED_HEADER, TUNNEL_SESSION_WINDOW, TUNNEL_STREAM_WINDOW, sniFor, uriSanOf, type TlsCredentials } from './tunnel-identity';
import { DEFAULT_LIVENESS, watchLiveness, type LivenessSettings } from './tunnel-liveness';

export const TUNNEL_PORT = 15008;

export interface TunnelRequest {
  sourceIdentity: string;
  /** The source pod's address, carried to the destination as `forwarded: for=` (its policy's ipBlocks see it). */
  sourceAddress: string;
  destinationIdentity: string;
  nodeAddress: string;
  /** The destination pod's ip:port, as the CONNECT target. */
  target: string;
}

/** The destination never processed the stream: safe to send again. */
class UnprocessedStream extends Error {}

/**
 * How much longer than the connect timeout a tunnel open waits for a
 * destination whose kernel accepted the connection but whose agent does not
 * answer yet (restarting, its listener keeper holding the socket), ms.
 */
export const RESTARTING_PEER_GRACE_MS = 10_000;

/** The longest wait a destination may ask for, ms (a larger value is ignored). */
const MAX_QUEUED_WAIT_MS = 60_000;
/** Time past the destination's wait before the source gives up on its answer, ms. */
const QUEUED_GRACE_MS = 2_000;

export class TunnelPool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  /** Sessions the peer sent a GOAWAY on: their unanswered streams were never processed. */
  private readonly wentAway = new WeakSet<http2.ClientHttp2Session>();
  readonly counters = { sessionsOpened: 0, streamsOpened: 0, refused: 0, deadPeers: 0, retriedUnprocessed: 0 };

  /**
   * `keepalive`: applied to each session's TCP socket (may throw);
   * `liveness`: HTTP/2 PING interval and timeout for dead-peer detection.
   */
  constructor(
    private readonly credentials: (identity: string) => TlsCredentials | undefined,
    private readonly port = TUNNEL_PORT,
    private readonly options: { keepalive?: (socket: net.Socket) => void; liveness?: LivenessSettings } = {},
  ) {}

  /**
   * Resolves with the stream once the destination agent answered 200.
   * A stream that ended before any answer (REFUSED_STREAM, a GOAWAY: the
   * destination agent is handing over; or its session died with the agent)
   * is opened once more, on a new session: no byte of the client's was sent
   * (RFC 9113 §8.7 for the refused ones). A destination whose kernel took
   * the connection but whose agent does not answer yet gets
   * RESTARTING_PEER_GRACE_MS more.
   */
  async open(req: TunnelRequest, timeoutMs: number): Promise<Duplex> {
    const deadline = Date.now() + timeoutMs;
    try {
      return await this.openOnce(req, timeoutMs);
    } catch (err) {
      if (!(err instanceof UnprocessedStream) || Date.now() >= deadline) throw err;
      this.counters.retriedUnprocessed++;
      return this.openOnce(req, deadline - Date.now());
    }
  }

  private openOnce(req: TunnelRequest, timeoutMs: number): Promise<Duplex> {
    const creds = this.credentials(req.sourceIdentity);
    if (!creds) return Promise.reject(new Error(`no certificate for ${req.sourceIdentity} yet`));
    const session = this.session(req, creds);
    return new Promise<Duplex>((resolve, reject) => {
      const stream = session.request({ ':method': 'CONNECT', ':authority': req.target, forwarded: forwardedFor(req.sourceAddress) }, { endStream: false });
      let answered = false;
      let peerRestarting = false;
      const started = Date.now();
      // After the I/O already pending when the time is up: an answer that came in time counts on a loaded agent.
      const expire = () =>
        setImmediate(() => {
          if (answered || queued) return; // queued meanwhile: its own timer decides
          // The destination's kernel took the connection but no agent speaks on it yet: its agent is
          // restarting and the listener keeper holds the socket. Worth waiting for, a while longer,
          // also once the new agent has taken the socket and is still starting.
          peerRestarting ||= session.connecting && session.socket !== undefined && !session.socket.connecting;
          const waited = Date.now() - started;
          if (peerRestarting && !session.destroyed && waited < timeoutMs + RESTARTING_PEER_GRACE_MS) {
            timer = setTimeout(expire, Math.min(100, timeoutMs + RESTARTING_PEER_GRACE_MS - waited));
            return;
          }
          stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(new Error(`tunnel to ${req.nodeAddress} for ${req.target}: no answer in ${waited} ms`));
        });
      let timer = setTimeout(expire, timeoutMs);
      // The destination queued the stream for the source pod's share of its
      // budget (tunnel-server.ts): wait as long as it says it may, then a little.
      // Only the first such answer counts: a destination cannot keep the source waiting by repeating it.
      let queued = false;
      stream.on('headers', (headers) => {
        const queuedMs = Number(headers[QUEUED_HEADER]);
        if (answered || queued || Number(headers[':status']) !== 100 || !Number.isInteger(queuedMs) || queuedMs < 0 || queuedMs > MAX_QUEUED_WAIT_MS) return;
        queued = true;
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (answered) return;
          stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(new Error(`tunnel to ${req.nodeAddress} for ${req.target}: queued at the destination and no answer in ${Date.now() - started} ms`));
        }, queuedMs + QUEUED_GRACE_MS);
      });
      stream.once('response', (headers) => {
        answered = true;
        clearTimeout(timer);
        const status = Number(headers[':status']);
        if (status === 200) {
          this.counters.streamsOpened++;
          resolve(stream);
          return;
        }
        this.counters.refused++;
        stream.close();
        reject(new Error(`tunnel to ${req.nodeAddress} for ${req.target}: refused (${status}${headers['sluice-reason'] ? `: ${headers['sluice-reason']}` : ''})`));
      });
      stream.once('error', (err) => {
        clearTimeout(timer);
        // Unanswered, the CONNECT carried no byte of the client's (they follow the 200): opening it again is safe,
        // e.g. when the session died with the destination agent (crashed or restarted).
        const unprocessed = !answered || this.wentAway.has(session) || stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
        reject(unprocessed ? new UnprocessedStream(`tunnel to ${req.nodeAddress} for ${req.target}: not processed (${err.message})`) : new Error(`tunnel to ${req.nodeAddress} for ${req.target}: ${err.message}`));
      });
      // A stream refused without an error event (closed by the GOAWAY, no response).
      stream.once('close', () => {
        clearTimeout(timer);
        reject(new UnprocessedStream(`tunnel to ${req.nodeAddress} for ${req.target}: closed before an answer (code ${stream.rstCode})`));
      });
    });
  }

  close(): void {
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  private session(req: TunnelRequest, creds: TlsCredentials): http2.ClientHttp2Session {
    // The source certificate's leaf is part of the key: after a rotation new
    // streams go over a session that presents the new certificate.
    const peer = `${req.sourceIdentity} ${req.destinationIdentity} ${req.nodeAddress} `;
    const key = `${peer}${creds.chainPem[0].length}:${creds.chainPem[0].slice(-64)}`;
    const existing = this.sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    // A session of an earlier certificate for the same peer: no new streams go
    // there; close() (GOAWAY) lets the open ones finish, then it ends.
    for (const [k, old] of this.sessions) {
      if (k !== key && k.startsWith(peer)) {
        this.sessions.delete(k);
        old.close();
      }
    }
    const session = http2.connect(`https://${req.nodeAddress}:${this.port}`, {
      key: creds.keyPem,
      cert: creds.chainPem.slice(0, -1).join(''),
      ca: creds.chainPem[creds.chainPem.length - 1],
      servername: sniFor(req.destinationIdentity),
      minVersion: 'TLSv1.3',
      settings: { initialWindowSize: TUNNEL_STREAM_WINDOW },
      // The server must be the destination workload's identity, nothing else.
      checkServerIdentity: (_host, cert) =>
        uriSanOf(cert.subjectaltname) === req.destinationIdentity ? undefined : new Error(`tunnel peer is ${uriSanOf(cert.subjectaltname) ?? 'no identity'}, expected ${req.destinationIdentity}`),
    });
    session.on('connect', () => {
      session.setLocalWindowSize(TUNNEL_SESSION_WINDOW);
      try {
        this.options.keepalive?.(session.socket as net.Socket);
      } catch {
        // PINGs below still detect a dead peer
      }
    });
    watchLiveness(session, this.options.liveness ?? DEFAULT_LIVENESS, () => {
      this.counters.deadPeers++;
      this.sessions.delete(key);
    });
    session.on('error', () => this.sessions.delete(key));
    session.on('close', () => this.sessions.delete(key));
    session.on('goaway', () => {
      this.wentAway.add(session);
      this.sessions.delete(key);
    });
    session.unref();
    this.sessions.set(key, session);
    this.counters.sessionsOpened++;
    return session;
  }
}
