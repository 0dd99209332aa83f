// Agent upgrade without a refused connection. A new agent, before it binds
// anything, asks the running one (over a unix socket, --handover-socket) to
// hand over. The old agent closes what the new one binds (admin, CNI,
// metrics and readiness sockets, this socket), stops writing the maps, and
// passes its listening sockets (node proxy, tunnel) with SCM_RIGHTS. Both
// accept on them until the new agent says it does, and the kernel queues
// connections all along, so none is refused. Then the old agent drains: its
// open connections run to their end, or to --drain-seconds, when the rest are
// reset at both ends. A new agent that goes away first, or stays silent,
// gives everything back to the old one. Envoy's hot restart passes listeners
// the same way.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { closeDescriptor, receiveDescriptors, sendDescriptors, sendOnDescriptor } from '../kernel/descriptor-passing';

/** Bumped when the messages below change; an agent refuses a version it does not know. */
export const HANDOVER_VERSION = 1;

/** The listening sockets an agent hands over. */
export type ListenerName = 'proxy' | 'tunnel';

/** New agent -> old agent, one JSON line. */
export interface HandoverRequest {
  version: number;
  node: string;
  pid: number;
  /**
   * Set by the listener keeper (listener-keeper.ts): it asks for copies of
   * the listening sockets, to hold them while no agent runs. The agent keeps
   * its own and goes on serving.
   */
  copy?: boolean;
}

/** Old agent -> new agent: JSON, with the descriptors of `listeners` attached in that order. */
export interface HandoverReply {
  version: number;
  node: string;
  pid: number;
  listeners: ListenerName[];
}

/** What a new agent received. */
export interface HandedOver {
  /** The old agent's pid. */
  from: number;
  /** Listening descriptors by name, owned by the receiver. */
  listeners: Map<ListenerName, number>;
  /**
   * Tells the old agent that this one accepts on the listeners now: it
   * stops accepting and drains. Until then both accept, so nothing waits
   * on this agent's start-up. Idempotent.
   */
  accepting(): void;
}

/** New agent -> old agent once it accepts on the listeners; a close without it means the new agent failed. */
const ACCEPTING = 'accepting\n';

/** How long the old agent waits for the new one to start accepting, ms: a start that takes longer is taken for failed. */
const ACCEPT_TIMEOUT_MS = 10 * 60_000;

/** The old agent may take this long to release its sockets and answer, ms. */
export const HANDOVER_TIMEOUT_MS = 10_000;
const MAX_REQUEST_BYTES = 4096;

/**
 * Asks the agent at `socketPath` to hand over. Returns what it passed, or
 * undefined when no agent listens there (a first start, or one after a
 * crash). Blocks for at most timeoutMs. Throws when an agent answers
 * wrongly (another node, another version, a malformed reply) or not in
 * time; descriptors received with a bad reply are closed.
 */
export function requestHandover(socketPath: string, node: string, timeoutMs = HANDOVER_TIMEOUT_MS): HandedOver | undefined {
  const request: HandoverRequest = { version: HANDOVER_VERSION, node, pid: process.pid };
  let received: { payload: Buffer; fds: number[]; socket: number } | undefined;
  try {
    received = receiveDescriptors(socketPath, Buffer.from(`${JSON.stringify(request)}\n`), timeoutMs);
  } catch (err) {
    throw new Error(`handover from the running agent at ${socketPath}: ${(err as Error).message}`);
  }
  if (!received) return undefined;
  const connection = received.socket;
  let open = true;
  const accepting = (say = true) => {
    if (!open) return;
    open = false;
    try {
      if (say) sendOnDescriptor(connection, Buffer.from(ACCEPTING), HANDOVER_TIMEOUT_MS);
    } catch (err) {
      // The old agent stopped waiting (or died): it may have taken its
      // sockets back, and two agents must never both own the node.
      throw new Error(`handover: the running agent no longer waits for this one (${(err as Error).message}); exiting so that a fresh start decides`);
    } finally {
      closeDescriptor(connection);
    }
  };
  try {
    const reply = parseReply(received.payload, node, received.fds.length);
    return { from: reply.pid, listeners: new Map(reply.listeners.map((name, i) => [name, received!.fds[i]])), accepting };
  } catch (err) {
    accepting(false);
    for (const fd of received.fds) closeDescriptor(fd);
    throw new Error(`handover from the running agent at ${socketPath}: ${(err as Error).message}`);
  }
}

/**
 * The listener keeper's request: copies of the listening sockets of the
 * agent at `socketPath`, which keeps serving. Undefined when no agent
 * listens there. Throws on a wrong or late answer (descriptors received
 * with it are closed).
 */
export function requestListenerCopies(socketPath: string, node: string, timeoutMs: number): Map<ListenerName, number> | undefined {
  return requestListeners(socketPath, { version: HANDOVER_VERSION, node, pid: process.pid, copy: true }, timeoutMs);
}

/**
 * One request whose answer names listeners, their descriptors attached (a
 * copy request here, or an agent asking the listener keeper): the
 * descriptors by name, the caller's; undefined when nobody listens at
 * `socketPath`. The connection is closed; on a wrong answer so are the
 * descriptors, and it throws saying what was wrong.
 */
export function requestListeners(socketPath: string, request: HandoverRequest, timeoutMs: number): Map<ListenerName, number> | undefined {
  const received = receiveDescriptors(socketPath, Buffer.from(`${JSON.stringify(request)}\n`), timeoutMs);
  if (!received) return undefined;
  closeDescriptor(received.socket);
  try {
    const reply = parseReply(received.payload, request.node, received.fds.length);
    return new Map(reply.listeners.map((name, i) => [name, received.fds[i]]));
  } catch (err) {
    for (const fd of received.fds) closeDescriptor(fd);
    throw err;
  }
}

/**
 * A handover or keeper reply (one JSON line) checked against this node and
 * the number of descriptors that came with it. Throws saying what is wrong.
 */
function parseReply(payload: Buffer, node: string, fds: number): HandoverReply {
  let reply: HandoverReply;
  try {
    reply = JSON.parse(payload.toString('utf8')) as HandoverReply;
  } catch {
    throw new Error(`the reply is not JSON (${payload.length} bytes)`);
  }
  if (reply?.version !== HANDOVER_VERSION) throw new Error(`it speaks handover version ${String(reply?.version)}, this agent ${HANDOVER_VERSION}`);
  if (reply.node !== node) throw new Error(`it runs node ${JSON.stringify(reply.node)}, this agent ${JSON.stringify(node)}`);
  if (!Array.isArray(reply.listeners) || reply.listeners.some((l) => l !== 'proxy' && l !== 'tunnel')) throw new Error(`listeners ${JSON.stringify(reply.listeners)}: expected "proxy" and "tunnel"`);
  if (reply.listeners.length !== fds) throw new Error(`it names ${reply.listeners.length} listeners but passed ${fds} descriptors`);
  return reply;
}

/**
 * Reads one request from a unix-socket client: a line of at most 4096
 * bytes, ending in a newline, within `timeoutMs`. Calls `onLine` with the
 * line (without the newline) and the socket paused; destroys the socket
 * instead when the line is too long, never ends, or the client errs. Used by
 * the handover server and the listener keeper.
 */
export function readRequestLine(socket: net.Socket, timeoutMs: number, onLine: (line: string) => void): void {
  socket.on('error', () => undefined);
  let line = '';
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  socket.on('close', () => clearTimeout(timer));
  socket.on('data', (d) => {
    line += d.toString('utf8');
    if (line.length > MAX_REQUEST_BYTES) return void socket.destroy();
    const end = line.indexOf('\n');
    if (end < 0) return;
    socket.removeAllListeners('data');
    socket.pause();
    clearTimeout(timer);
    onLine(line.slice(0, end));
  });
}

/**
 * The old agent's side: serves one handover. `release` closes what the new
 * agent will bind and returns the listening descriptors to pass (this agent
 * keeps accepting on them meanwhile); `passed` runs once the new agent says
 * it accepts on them: this agent stops accepting and drains. `failed` runs
 * when the handover cannot finish (the release or the send failed, the new
 * agent went away or stayed silent): this agent takes everything back.
 */
export class HandoverServer {
  private readonly server: net.Server;
  private handled = false;

  /** `listeners` gives the listening descriptors as they are, for a copy request (the listener keeper); this agent keeps them. */
  constructor(
    private readonly socketPath: string,
    private readonly node: string,
    private readonly release: () => Promise<Map<ListenerName, number>>,
    private readonly passed: () => void,
    private readonly failed: () => void,
    private readonly logger: Logger,
    private readonly listeners: () => Map<ListenerName, number> = () => new Map(),
  ) {
    this.server = net.createServer((socket) => this.serve(socket));
    this.server.on('error', (err) => logger.error({ err: err.message, socket: socketPath }, 'handover socket error'));
  }

  /** Listens at the socket path; a file left there by an agent that is gone is replaced. */
  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o700 });
    // The caller asked whoever listened there first: nobody answered, so the file is stale.
    fs.rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(this.socketPath, 0o600);
  }

  /**
   * Stops listening (libuv unlinks the socket file); a request already
   * connected but read after this is refused, copy requests included.
   */
  close(): Promise<void> {
    this.handled = true;
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private serve(socket: net.Socket): void {
    readRequestLine(socket, HANDOVER_TIMEOUT_MS, (line) => void this.answer(socket, line));
  }

  private async answer(socket: net.Socket, text: string): Promise<void> {
    let request: HandoverRequest;
    try {
      request = JSON.parse(text) as HandoverRequest;
    } catch {
      this.logger.warn({ socket: this.socketPath }, 'handover request is not JSON; ignored');
      return void socket.destroy();
    }
    if (request?.copy === true && request.version === HANDOVER_VERSION && request.node === this.node && !this.handled) {
      // The kernel gives the keeper its own references; nothing changes here.
      try {
        const listeners = this.listeners();
        const reply: HandoverReply = { version: HANDOVER_VERSION, node: this.node, pid: process.pid, listeners: [...listeners.keys()] };
        sendDescriptors(socket, Buffer.from(`${JSON.stringify(reply)}\n`), [...listeners.values()], HANDOVER_TIMEOUT_MS);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'copies of the listeners not sent to the listener keeper');
      }
      return void socket.end();
    }
    if (request?.version !== HANDOVER_VERSION || request.node !== this.node || this.handled) {
      this.logger.warn({ request, handled: this.handled }, 'handover request refused (another version or node, or already handed over)');
      return void socket.destroy();
    }
    this.handled = true;
    this.logger.info({ successorPid: request.pid }, 'handing over to a new agent');
    // Stops listening before the reply, so the file is unlinked before the
    // new agent binds its own. Not awaited: close() resolves only when this
    // very connection has ended.
    this.server.close();
    let listeners: Map<ListenerName, number>;
    try {
      listeners = await this.release();
      const reply: HandoverReply = { version: HANDOVER_VERSION, node: this.node, pid: process.pid, listeners: [...listeners.keys()] };
      sendDescriptors(socket, Buffer.from(`${JSON.stringify(reply)}\n`), [...listeners.values()], HANDOVER_TIMEOUT_MS);
    } catch (err) {
      // The new agent then fails to start; this one takes back what it released.
      this.logger.error({ err: (err as Error).message }, 'handover failed');
      socket.destroy();
      this.failed();
      return;
    }
    // Both accept until the new agent says it does; one that never does is taken for failed.
    const giveUp = setTimeout(() => {
      this.logger.error({ waitedMs: ACCEPT_TIMEOUT_MS }, 'the new agent did not say it accepts; taking everything back');
      socket.destroy();
    }, ACCEPT_TIMEOUT_MS);
    socket.once('close', () => clearTimeout(giveUp));
    let said = '';
    socket.on('data', (d) => (said = (said + d.toString('utf8')).slice(0, ACCEPTING.length)));
    socket.once('close', () => {
      if (said === ACCEPTING) return this.passed();
      this.logger.error('the new agent went away before it accepted on the listeners');
      this.failed();
    });
    socket.resume();
  }
}
