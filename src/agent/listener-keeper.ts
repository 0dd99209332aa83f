// The listener keeper: a small process beside the agent (its own container
// in the DaemonSet's pod, `sluice-agent keep-listeners`) that holds copies
// of the agent's listening sockets, the node proxy's and the tunnel
// server's. While the agent restarts or after it crashed, the sockets stay
// open: the kernel completes connection handshakes and queues them, and the
// next agent takes the sockets from the keeper and serves what waited, so
// no connection is refused. The keeper never accepts on them.
//
// It asks the agent for copies over the handover socket (handover.ts, a
// request with `copy`), every second, so it always holds what the running
// agent listens on. An agent that starts with no predecessor to hand over
// asks the keeper for what it holds (`requestKeptListeners`). When no
// agent has answered for --give-up-seconds (a node whose agent is down for
// good), the keeper closes its copies: connections are then refused rather
// than left waiting for an agent that does not come.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { closeDescriptor, sendDescriptors } from '../kernel/descriptor-passing';
import { HANDOVER_VERSION, readRequestLine, requestListenerCopies, requestListeners, type HandoverReply, type ListenerName } from './handover';


/** Where the keeper asks and answers, and how long it holds on. */
export interface ListenerKeeperOptions {
  node: string;
  /** The agent's --handover-socket, where copies are asked for. */
  handoverSocket: string;
  /** Where agents ask the keeper for what it holds. */
  keeperSocket: string;
  logger: Logger;
  /** How often copies are asked for, ms (default 1000). */
  refreshMs?: number;
  /** Copies are closed once no agent has answered for this long, ms (default 30 s). */
  giveUpMs?: number;
}

/** The keeper's process side: holds copies of the agent's listening sockets and gives them to a starting agent. */
export class ListenerKeeper {
  /** The socket file this keeper made (its inode): another keeper may replace it during a rolling update. */
  private socketInode = 0;
  private held = new Map<ListenerName, number>();
  private lastAnswer = Date.now();
  private lastProblem = '';
  private timer?: NodeJS.Timeout;
  private readonly server: net.Server;
  private readonly refreshMs: number;
  private readonly giveUpMs: number;

  constructor(private readonly options: ListenerKeeperOptions) {
    this.refreshMs = options.refreshMs ?? 1000;
    this.giveUpMs = options.giveUpMs ?? 30_000;
    this.server = net.createServer((socket) => this.serve(socket));
    this.server.on('error', (err) => options.logger.error({ err: err.message }, 'keeper socket error'));
  }

  /** What it holds now, by listener name (descriptors stay the keeper's). */
  get listeners(): ListenerName[] {
    return [...this.held.keys()];
  }

  /** Listens on the keeper socket (mode 0600, a stale file replaced) and starts asking the agent for copies. */
  async start(): Promise<void> {
    const { keeperSocket } = this.options;
    fs.mkdirSync(path.dirname(keeperSocket), { recursive: true, mode: 0o700 });
    fs.rmSync(keeperSocket, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(keeperSocket, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(keeperSocket, 0o600);
    this.socketInode = fs.statSync(keeperSocket).ino;
    this.refresh();
  }

  /** Stops; the copies are closed (the agent's own references are not touched). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.release();
    // Closing unlinks the socket path: during a rolling update the new pod's keeper has replaced the file
    // with its own, which must stay. The process exits after stop(), which closes this socket anyway.
    let ours = false;
    try {
      ours = fs.statSync(this.options.keeperSocket).ino === this.socketInode;
    } catch {
      // gone already
    }
    if (ours) await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private refresh(): void {
    const { logger } = this.options;
    try {
      const copies = requestListenerCopies(this.options.handoverSocket, this.options.node, Math.min(1000, this.refreshMs));
      if (copies) {
        const before = this.listeners.join(',');
        this.release();
        this.held = copies;
        this.lastAnswer = Date.now();
        if (before !== this.listeners.join(',')) logger.info({ listeners: this.listeners }, 'holding copies of the agent\'s listeners');
      } else if (this.held.size && Date.now() - this.lastAnswer > this.giveUpMs) {
        logger.warn({ listeners: this.listeners, afterMs: this.giveUpMs }, 'no agent for too long: copies of its listeners closed, connections are refused until an agent starts');
        this.release();
      }
      this.lastProblem = '';
    } catch (err) {
      // A busy or misconfigured agent fails every second: said once, until it changes.
      const problem = (err as Error).message;
      if (problem !== this.lastProblem) logger.warn({ err: problem }, 'asking the agent for copies of its listeners failed; the last ones are kept');
      this.lastProblem = problem;
    }
    this.timer = setTimeout(() => this.refresh(), this.refreshMs);
  }

  private release(): void {
    for (const fd of this.held.values()) closeDescriptor(fd);
    this.held = new Map();
  }

  /** One request ({version, node, pid}, one JSON line): the reply names what is held, the descriptors attached. */
  private serve(socket: net.Socket): void {
    const { logger, node } = this.options;
    readRequestLine(socket, 10_000, (line) => {
      let request: { version?: unknown; node?: unknown; pid?: unknown };
      try {
        request = JSON.parse(line) as typeof request;
      } catch {
        return void socket.destroy();
      }
      if (request?.version !== HANDOVER_VERSION || request.node !== node) {
        logger.warn({ request }, 'request refused (another version or node)');
        return void socket.destroy();
      }
      const reply: HandoverReply = { version: HANDOVER_VERSION, node, pid: process.pid, listeners: this.listeners };
      try {
        sendDescriptors(socket, Buffer.from(`${JSON.stringify(reply)}\n`), [...this.held.values()], 10_000);
        logger.info({ agentPid: request.pid, listeners: reply.listeners }, 'gave the held listeners to a starting agent');
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'held listeners not sent');
      }
      socket.end();
    });
  }
}

/**
 * An agent's start: the listeners the keeper at `keeperSocket` holds (an
 * empty map when it holds none), or undefined when no keeper listens there.
 * The descriptors are the caller's. Throws on a wrong or late answer.
 */
export function requestKeptListeners(keeperSocket: string, node: string, timeoutMs = 5000): Map<ListenerName, number> | undefined {
  try {
    return requestListeners(keeperSocket, { version: HANDOVER_VERSION, node, pid: process.pid }, timeoutMs);
  } catch (err) {
    throw new Error(`listener keeper at ${keeperSocket}: ${(err as Error).message}`);
  }
}
