// Hands established (client, endpoint) socket pairs to the addon's relay
// threads: bytes move with splice(2) inside the kernel, off the JS thread.
// The proxy decides; this only carries the sockets over.
import type * as net from 'node:net';
import { addon } from '../native/bpf-addon';
import { socketFd } from './socket-options';

export interface RelayDone {
  bytesFromClient: number;
  bytesFromEndpoint: number;
  /** '' when both sides closed normally, else the errno name (the other side was reset). */
  error: string;
}

/**
 * The addon's relay threads, one per process: established socket pairs are
 * handed over and relayed with splice(2) until both sides end; each pair's
 * end (bytes per direction, the errno name of a reset) is reported back on
 * the JS thread.
 */
export class SpliceRelay {
  private readonly pending = new Map<number, (r: RelayDone) => void>();
  private started = false;
  /** Pairs finished since start and the bytes they moved (for metrics: add bytes() of live pairs). */
  readonly finished = { pairs: 0, bytesFromClient: 0, bytesFromEndpoint: 0 };
  /** Relay threads running (0 before start). */
  threads = 0;

  start(threads: number): void {
    addon().relayStart(threads, (id, fromClient, fromEndpoint, error) => {
      const done = this.pending.get(id);
      this.pending.delete(id);
      this.finished.pairs++;
      this.finished.bytesFromClient += fromClient;
      this.finished.bytesFromEndpoint += fromEndpoint;
      done?.({ bytesFromClient: fromClient, bytesFromEndpoint: fromEndpoint, error });
    });
    this.started = true;
    this.threads = threads;
  }

  /**
   * Takes the bytes of both sockets over. The JS sockets are destroyed
   * afterwards (the relay holds its own descriptors). Returns false, leaving
   * the sockets untouched, when the relay cannot take them.
   */
  handOver(id: number, client: net.Socket, upstream: net.Socket, done: (r: RelayDone) => void): boolean {
    const a = socketFd(client);
    const b = socketFd(upstream);
    if (!this.started || a < 0 || b < 0 || client.readableLength > 0) return false;
    // The endpoint may have spoken first (a greeting) before the hand-over.
    const early = upstream.readableLength > 0 ? (upstream.read() as Buffer | null) : null;
    try {
      addon().relayAdd(id, a, b, early ?? undefined);
    } catch {
      if (early) upstream.unshift(early);
      return false;
    }
    this.pending.set(id, done);
    client.destroy();
    upstream.destroy();
    return true;
  }

  /**
   * Ends a relayed pair with a reset at both ends (a policy no longer allows
   * it); its done callback then reports error 'ECONNABORTED'. Unknown ids are ignored.
   */
  reset(id: number): void {
    if (this.started) addon().relayReset(id);
  }

  /** Bytes moved so far per live pair: id -> [from client, from endpoint]. */
  bytes(): Map<number, [number, number]> {
    return new Map(addon().relayStats().map(([id, ab, ba]) => [id, [ab, ba]]));
  }

  stop(): void {
    if (!this.started) return;
    addon().relayStop();
    this.started = false;
    this.threads = 0;
    this.pending.clear();
  }
}
