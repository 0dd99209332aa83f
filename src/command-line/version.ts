// The package version, read from the package.json the binaries ship in.
import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

/**
 * The "version" field of the sluice package.json, found by walking up from
 * this file (src/ or dist/src/). Returns "unknown" when there is none.
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sluice' && pkg.version) return (cached = pkg.version);
    } catch {
      // no package.json here; keep walking up
    }
    if (path.dirname(dir) === dir) return (cached = 'unknown');
  }
}

/** "sluicectl 0.1.0 (Node.js v20.11.0)": what `version` and `--version` print. */
export function versionText(program: string): string {
  return `${program} ${packageVersion()} (Node.js ${process.version})\n`;
}
