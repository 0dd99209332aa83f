// How one agent follows another on the node without a refused connection:
// at start it takes the listening sockets from the running agent (an
// upgrade, handover.ts) or from the listener keeper (a restart or a crash,
// listener-keeper.ts); while it runs it offers its own to a newer agent;
// after a handover it drains; on SIGTERM with no successor it stops
// accepting and lets the connections in flight end first. The agent says
// what each step means for its parts (SuccessionDeps); the order and the
// state (handed over, maps paused, draining) are kept here.
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/agent-config';
import { closeDescriptor } from '../kernel/descriptor-passing';
import { HandoverServer, requestHandover, type HandedOver, type ListenerName } from './handover';
import { requestKeptListeners } from './listener-keeper';

/** What each step of a succession does to the agent's parts. */
export interface SuccessionDeps {
  config: Pick<AgentConfig, 'nodeName' | 'handoverSocket' | 'listenerKeeperSocket' | 'drainSeconds' | 'stopDrainMs'>;
  logger: Logger;
  /** The listening descriptors by name (those listening now). */
  listeners(): Map<ListenerName, number>;
  /**
   * Before the listeners go to a newer agent: close what it binds (CNI,
   * admin, metrics, readiness, the inbound listeners), stop writing the maps
   * and the state file. The data path goes on serving.
   */
  release(): Promise<void>;
  /** The newer agent failed before it took over: bind again, take the maps back, one full pass. */
  resume(): Promise<void>;
  /** After a handover: stop following the control plane, renewing and scanning, and stop accepting. */
  quiesce(): void;
  /** Connections, waiting connections, tunnel streams and sessions still open (a drain waits for none). */
  openAfterHandover(): number;
  /**
   * A stop without successor: stop accepting (the kernel queues new
   * connections for the next agent) and stop listening for tunnels. False
   * when nothing accepts yet (the proxy never started): there is nothing to drain.
   */
  stopAccepting(): boolean;
  /** Connections and tunnel streams in flight, served or waiting (a stop drain waits for none). */
  inFlight(): number;
  /** Stops every part. */
  stop(): Promise<void>;
}

/**
 * The succession of one agent. inherit() at start, offer() once serving;
 * stopGracefully() or stopAfterHandover() on SIGTERM. `drained` resolves
 * when, after a handover, the drain is over and the agent stopped.
 */
export class Succession {
  /** Set while a newer agent owns the maps, or while this one only finishes: changes go to the store only. */
  mapsPaused = false;
  /** Set once this agent only finishes what it has (a drain or a stop drain runs). */
  draining = false;
  /** When this agent handed its listeners to a newer one (epoch ms). */
  private handedOverAt?: number;
  private handover?: HandoverServer;
  private resolveDrained!: () => void;
  /**
   * Resolves when, after a handover, this agent's open connections have all
   * ended, or --drain-seconds passed and the rest were reset: the process
   * may exit then.
   */
  readonly drained = new Promise<void>((resolve) => (this.resolveDrained = resolve));

  constructor(private readonly deps: SuccessionDeps) {}

  /**
   * Before anything is bound: the listening sockets of the agent running on
   * this node (it releases its sockets and hands over), or else those the
   * listener keeper held, with the connections queued on them. Undefined on
   * a first start. Throws when a running agent answers wrongly
   * (handover.ts); a keeper that answers wrongly is logged and left out.
   */
  inherit(): HandedOver | undefined {
    const { config, logger } = this.deps;
    const inherited = requestHandover(config.handoverSocket, config.nodeName) ?? this.keptListeners();
    if (inherited) logger.info({ from: inherited.from, listeners: [...inherited.listeners.keys()] }, inherited.from === 0 ? 'took the listening sockets the listener keeper held' : 'took over the listening sockets of the running agent');
    return inherited;
  }

  /**
   * Listens on the descriptor inherited for `name`, or binds afresh when
   * there is none or it does not fit (a changed address). A descriptor used
   * is taken out of `inherited`.
   */
  async listenInherited(name: ListenerName, inherited: HandedOver | undefined, listen: (fd?: number) => Promise<void>): Promise<void> {
    const fd = inherited?.listeners.get(name);
    if (fd === undefined) return listen();
    inherited!.listeners.delete(name);
    try {
      await listen(fd);
    } catch (err) {
      this.deps.logger.warn({ listener: name, err: (err as Error).message }, 'inherited listener not used; binding afresh');
      await listen();
    }
  }

  /** Once listening on all: closes the inherited descriptors not used and tells the old agent to stop accepting. */
  took(inherited: HandedOver | undefined): void {
    if (!inherited) return;
    for (const fd of inherited.listeners.values()) closeDescriptor(fd);
    inherited.accepting();
  }

  /** Listens on --handover-socket for a newer agent; without it the agent still serves, only an upgrade would refuse connections for a moment. */
  async offer(): Promise<void> {
    const { config, logger } = this.deps;
    this.handover = new HandoverServer(
      config.handoverSocket,
      config.nodeName,
      () => this.release(),
      () => this.drain(),
      () => void this.resume(),
      logger,
      () => this.deps.listeners(),
    );
    await this.handover
      .listen()
      .catch((err) => logger.error({ err: (err as Error).message, socket: config.handoverSocket }, 'handover socket not available; a newer agent cannot take over without a gap'));
  }

  /** Stops offering the handover (the agent stops). */
  async close(): Promise<void> {
    await this.handover?.close();
  }

  /**
   * A stop with no successor (SIGTERM: a restart, a node drain): stops
   * accepting (with a listener keeper, new connections wait in the kernel's
   * queue for the next agent instead of being refused), lets the connections
   * in flight end for up to --stop-drain-ms, then stops, resetting what is
   * left. Tunnel sessions from other nodes go on serving meanwhile: a GOAWAY
   * would only send their streams to this node's next agent before it is up.
   * Resolves once stopped.
   */
  async stopGracefully(): Promise<void> {
    const limitMs = this.deps.config.stopDrainMs;
    // From here this agent only finishes: no handover resumes it, no drain
    // starts beside this one, and the maps are left to the next agent.
    this.draining = true;
    this.mapsPaused = true;
    if (limitMs > 0) {
      // First: the listener keeper must keep the copies it holds, not be
      // answered with the empty set of a proxy that stopped listening.
      await this.handover?.close();
      if (this.deps.stopAccepting()) {
        const started = Date.now();
        const log = this.deps.logger;
        const inFlight = () => this.deps.inFlight();
        if (inFlight() > 0) log.info({ inFlight: inFlight(), stopDrainMs: limitMs }, 'stopping: letting the connections in flight end');
        while (inFlight() > 0 && Date.now() - started < limitMs) await new Promise((r) => setTimeout(r, 10));
        if (inFlight() > 0) log.warn({ reset: inFlight(), stopDrainMs: limitMs }, 'stop drain time is up; resetting the connections still open');
      }
    }
    await this.deps.stop();
  }

  /**
   * SIGTERM while a handover is under way or done: drain now (from where
   * the new agent took the listeners, this agent only finishes what it has).
   * False when no handover began: the caller stops normally.
   */
  stopAfterHandover(): boolean {
    if (this.handedOverAt === undefined) return false;
    this.drain();
    return true;
  }

  /**
   * With no agent to take over from (a restart, a crash): the listening
   * sockets the listener keeper held meanwhile (listener-keeper.ts).
   * Undefined without a keeper or when it holds none.
   */
  private keptListeners(): HandedOver | undefined {
    const { config, logger } = this.deps;
    if (!config.listenerKeeperSocket) return undefined;
    try {
      const listeners = requestKeptListeners(config.listenerKeeperSocket, config.nodeName);
      if (!listeners?.size) return undefined;
      return { from: 0, listeners, accepting: () => undefined };
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'the listener keeper gave nothing usable; binding afresh');
      return undefined;
    }
  }

  /**
   * The old agent's part of a handover, until the new agent says it
   * accepts: the agent releases what the new one binds, and the listening
   * descriptors go. Nothing here is lost should the new agent fail (resume()).
   */
  private async release(): Promise<Map<ListenerName, number>> {
    this.handedOverAt = Date.now();
    this.mapsPaused = true;
    await this.deps.release();
    return this.deps.listeners();
  }

  /**
   * The new agent went away (or never said it accepts) after it took the
   * listeners: this agent takes everything back and serves as before; a
   * later upgrade may try again.
   */
  private async resume(): Promise<void> {
    // Told to stop meanwhile (SIGTERM): the drain has begun and goes on.
    if (this.draining) return;
    this.deps.logger.warn('the new agent failed before it took over; this agent resumes in full');
    this.handedOverAt = undefined;
    this.mapsPaused = false;
    try {
      await this.deps.resume();
      await this.offer();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'resuming after a failed handover failed; the data path still serves');
    }
  }

  /**
   * After a handover: the agent quiesces (the new agent accepts on the same
   * sockets; tunnel peers are asked to open new sessions), and open
   * connections run to their end. Past --drain-seconds the rest are reset at
   * both ends. Resolves `drained` either way. Idempotent.
   */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.handedOverAt ??= Date.now();
    const { logger: log, config } = this.deps;
    this.deps.quiesce();
    const open = () => this.deps.openAfterHandover();
    log.info({ open: open(), drainSeconds: config.drainSeconds }, 'listeners handed over; draining open connections');
    const deadline = Date.now() + config.drainSeconds * 1000;
    const check = setInterval(() => {
      const left = open();
      if (left > 0 && Date.now() < deadline) return;
      clearInterval(check);
      if (left > 0) log.warn({ reset: left, drainSeconds: config.drainSeconds }, 'drain time is up; resetting the connections still open');
      else log.info('every open connection ended');
      void this.deps.stop().finally(() => this.resolveDrained());
    }, 100);
  }
}
