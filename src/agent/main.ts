// sluice-agent: the per-node agent.
import { EXIT, SERVING, UsageError, exitAfterFlush, runProgram, type CommandResult } from '../command-line';
import { agentConfigFromValues } from '../config/agent-config';
import { BpfDatapath, isNativeError } from '../kernel/bpf-datapath';
import { createLogger } from '../observability/logger';
import { Agent } from './agent';
import { ListenerKeeper } from './listener-keeper';
import { agentProgram } from './command-line';

/** How long a stop may take past --stop-drain-ms before the process exits anyway, ms. */
const STOP_GRACE_MS = 8000;

async function run(values: Parameters<typeof agentConfigFromValues>[0]): Promise<CommandResult> {
  const config = agentConfigFromValues(values, process.env);
  const logger = createLogger('sluice-agent', config.logLevel, config.logFile);
  const agent = new Agent(config, logger);
  let stopping = false;
  let starting: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    if (agent.stopAfterHandover()) {
      // A newer agent serves (or is taking over); this one exits once drained (--drain-seconds at most).
      logger.info({ signal, drainSeconds: config.drainSeconds }, 'agent handed over; it exits when its connections are drained');
      return;
    }
    stopping = true;
    logger.info({ signal }, 'agent stopping; capture programs stay attached');
    // Whatever still holds on (a peer that never answers), the process ends
    // within the grace period: a DaemonSet's terminationGracePeriodSeconds
    // must never run out on us.
    const deadline = setTimeout(() => {
      logger.warn({ graceMs: STOP_GRACE_MS + config.stopDrainMs }, 'agent stop did not finish in time; exiting');
      logger.flush(() => exitAfterFlush(EXIT.FAILURE));
    }, STOP_GRACE_MS + config.stopDrainMs);
    deadline.unref();
    // A stop during start waits for it: a drain beside a start that goes on
    // listening and offering the handover would leave the keeper empty.
    (starting ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => agent.stopGracefully())
      .then(
        () => {
          clearTimeout(deadline);
          logger.info('agent stopped');
          logger.flush(() => exitAfterFlush(EXIT.OK));
        },
        (err) => {
          logger.error({ err }, 'error while stopping');
          logger.flush(() => exitAfterFlush(EXIT.FAILURE));
        },
      );
  };
  void agent.drained.then(() => {
    logger.info('handed over and drained; exiting');
    logger.flush(() => exitAfterFlush(EXIT.OK));
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    starting = agent.start();
    await starting;
  } catch (err) {
    const e = err as Error;
    logger.fatal({ err: e, ...(isNativeError(e) ? { code: e.code, details: e.details } : {}) }, `agent failed to start: ${e.message}`);
    process.stderr.write(`sluice-agent: ${e.message}\n`);
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    await agent.stop().catch(() => undefined);
    return EXIT.FAILURE;
  }
  return SERVING;
}

/** `sluice-agent uninstall`: what BpfDatapath.uninstall removes, printed as JSON. */
function uninstall(bpffs: string): CommandResult {
  try {
    const removed = BpfDatapath.uninstall(bpffs);
    process.stdout.write(`${JSON.stringify({ bpffs, removed }, null, 2)}\n`);
    return EXIT.OK;
  } catch (err) {
    process.stderr.write(`sluice-agent uninstall: ${(err as Error).message}\n`);
    return EXIT.FAILURE;
  }
}

/** `sluice-agent keep-listeners`: the listener keeper (listener-keeper.ts) until SIGTERM. */
async function keepListeners(values: Record<string, unknown>): Promise<CommandResult> {
  const giveUp = Number(values['give-up-seconds'] ?? 30);
  if (!Number.isInteger(giveUp) || giveUp < 1) throw new UsageError(`--give-up-seconds ${String(values['give-up-seconds'])}: expected a whole number of seconds, at least 1`, 'keep-listeners');
  const logger = createLogger('sluice-listener-keeper', String(values['log-level'] ?? 'info'));
  const keeper = new ListenerKeeper({
    node: values['node-name'] as string,
    handoverSocket: values['handover-socket'] as string,
    keeperSocket: values['keeper-socket'] as string,
    giveUpMs: giveUp * 1000,
    logger,
  });
  await keeper.start();
  logger.info({ keeperSocket: values['keeper-socket'], handoverSocket: values['handover-socket'] }, 'listener keeper started');
  const stop = () => void keeper.stop().finally(() => logger.flush(() => exitAfterFlush(EXIT.OK)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return SERVING;
}

void runProgram(agentProgram, process.argv.slice(2), {
  run: (p) => run(p.values),
  uninstall: (p) => uninstall(p.values.bpffs as string),
  'keep-listeners': (p) => keepListeners(p.values),
});
