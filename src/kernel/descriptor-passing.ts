// Descriptors passed between processes over a unix socket (SCM_RIGHTS),
// which Node.js does not expose outside its own child-process IPC. Used to
// hand an agent's listening sockets to the agent that replaces it.
import type * as net from 'node:net';
import { addon } from '../native/bpf-addon';
import { socketFd } from './socket-options';

/**
 * Writes `payload` on a connected unix stream socket with `fds` attached to
 * its first byte. The receiver gets its own references: closing ours after
 * does not close the sockets. Blocks at most timeoutMs (ms). Throws a
 * NativeError (code ETIMEDOUT, EPIPE, ...), or when the socket has no
 * descriptor any more.
 */
export function sendDescriptors(socket: net.Socket, payload: Buffer, fds: number[], timeoutMs: number): void {
  const fd = socketFd(socket);
  if (fd < 0) throw new Error('send descriptors: the socket is closed');
  addon().sendFds(fd, payload, fds, timeoutMs);
}

/**
 * Connects to the unix socket at `path`, writes `request`, and reads one
 * reply line (to '\n' or the peer's close). Returns the bytes read, the
 * descriptors attached (close-on-exec, owned by the caller from here on),
 * and the still open connection (`socket`, a descriptor: closing it tells
 * the peer the caller is done); or undefined when nothing listens at
 * `path`. Blocks the thread for at most timeoutMs (ms); throws a
 * NativeError otherwise (ETIMEDOUT, EMSGSIZE past 1 MiB or 16 fds).
 */
export function receiveDescriptors(path: string, request: Buffer, timeoutMs: number): { payload: Buffer; fds: number[]; socket: number } | undefined {
  return addon().receiveFds(path, request, timeoutMs) ?? undefined;
}

/** Writes `payload` on a connected socket given by its descriptor (one from receiveDescriptors), within timeoutMs. */
export function sendOnDescriptor(fd: number, payload: Buffer, timeoutMs: number): void {
  addon().sendFds(fd, payload, [], timeoutMs);
}

/** Closes a received descriptor (a listener not used after all, or the connection of a receive). */
export function closeDescriptor(fd: number): void {
  addon().closeFd(fd);
}
