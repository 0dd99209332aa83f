// sluice-agent: the per-node agent.
import { ConfigError, loadAgentConfig } from '../config/agent-config';
import { isNativeError } from '../datapath/bpf-datapath';
import { createLogger } from '../observability/logger';
import { Agent } from './agent';

async function main(): Promise<void> {
  let config;
  try {
    config = loadAgentConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('sluice-agent', config.logLevel, config.logFile);
  const agent = new Agent(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping; capture programs stay attached');
    agent.stop().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    const e = err as Error;
    logger.fatal({ err: e, ...(isNativeError(e) ? { code: e.code, details: e.details } : {}) }, `agent failed to start: ${e.message}`);
    process.stderr.write(`sluice-agent: ${e.message}\n`);
    logger.flush();
    await agent.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();
