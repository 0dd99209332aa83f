// Kernel socket options the node proxy needs and Node.js does not expose.
// The only place that reads a net.Socket's or net.Server's descriptor.
import type * as net from 'node:net';
import { addon } from '../native/bpf-addon';

/** How long a silent peer is tolerated before its connection fails with ETIMEDOUT. */
export interface KeepaliveSettings {
  /** Idle time before the first probe, seconds. */
  idleSeconds: number;
  /** Time between probes, seconds. */
  intervalSeconds: number;
  /** Unanswered probes before the connection fails. */
  probes: number;
}

/** Worst case, in ms, between a peer going silent and its socket failing. */
export function keepaliveDetectionMs(k: KeepaliveSettings): number {
  return (k.idleSeconds + k.intervalSeconds * k.probes) * 1000;
}

/**
 * The descriptor behind a connected net.Socket, or -1 (not connected yet,
 * or already closed). Reads libuv's handle: Node has no public accessor.
 */
export function socketFd(socket: net.Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}

/**
 * The listening descriptor behind a net.Server (a tls or http2 server too),
 * or -1 when it is not listening. Reads libuv's handle, as socketFd does.
 */
export function serverFd(server: net.Server): number {
  return (server as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
}

/**
 * Turns on TCP keepalive with these settings, and TCP_USER_TIMEOUT equal to
 * the same detection time, so a dead peer is noticed whether the connection
 * is idle or has data in flight. Throws a NativeError naming the fd.
 */
export function setTcpKeepalive(socket: net.Socket, k: KeepaliveSettings): void {
  const fd = socketFd(socket);
  if (fd < 0) return;
  addon().tcpKeepalive(fd, k.idleSeconds, k.intervalSeconds, k.probes, keepaliveDetectionMs(k));
}

/**
 * True when the peer reset the connection although Node reported a clean
 * end: libuv turns a reset that arrives after a partial read into
 * end-of-file, and only SO_ERROR still says ECONNRESET. Call it on 'end'
 * before forwarding a FIN. False when the descriptor is gone.
 */
export function endedByReset(socket: net.Socket): boolean {
  const fd = socketFd(socket);
  return fd >= 0 && addon().socketError(fd) === 104; // ECONNRESET
}

/**
 * Whether the kernel resets the peer when this socket is closed, including
 * by the process dying: on for a proxied socket while bytes may still flow
 * (a crash must end a transfer with a reset, never a clean end), off again
 * once this side has sent its FIN. No-op when the descriptor is gone.
 */
export function resetOnClose(socket: net.Socket, on: boolean): void {
  const fd = socketFd(socket);
  if (fd >= 0) addon().resetOnClose(fd, on);
}
