// Entry point of sluice-cni. Called by the container runtime with CNI_COMMAND
// set: runs the plugin. Called by hand or by the DaemonSet without it:
// `sluice-cni install|uninstall ...` (loaded only then, to keep ADD fast).
import { runPlugin } from './plugin';

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function main(): Promise<void> {
  if (process.env.CNI_COMMAND === undefined && process.argv.length > 2) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { installCommand } = require('./install') as typeof import('./install');
    process.exitCode = await installCommand(process.argv.slice(2));
    return;
  }
  const stdin = process.env.CNI_COMMAND === 'VERSION' && process.stdin.isTTY ? '' : await readStdin();
  const outcome = await runPlugin(process.env, stdin);
  if (outcome.log) process.stderr.write(`${outcome.log}\n`);
  process.exitCode = outcome.exitCode;
  if (outcome.stdout) process.stdout.write(outcome.stdout);
}

void main();
