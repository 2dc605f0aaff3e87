// Builds port-shim.c once per source version into `<root>/.cache/`, with whatever C compiler the machine
// has. Without one, sandboxes still run, but their ports are not remapped (two sandboxes on port 3000
// collide), and the server says so.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('./port-shim.c', import.meta.url));

export async function buildPortShim(cacheDir: string, log: (line: string) => void): Promise<string | undefined> {
  if (process.platform !== 'linux') {
    log('warning: port remapping needs Linux (LD_PRELOAD); sandbox ports are not remapped');
    return undefined;
  }
  const source = await readFile(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const out = path.join(cacheDir, `port-shim-${hash}.so`);
  if (existsSync(out)) return out;
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter((c): c is string => !!c)) {
    try {
      await run(cc, ['-shared', '-fPIC', '-O2', '-o', tmp, SOURCE, '-ldl'], { timeout: 60_000 });
      await rename(tmp, out);
      return out;
    } catch {
      /* try the next compiler */
    }
  }
  log('warning: could not compile the port shim (no C compiler?); sandbox ports are not remapped');
  return undefined;
}
