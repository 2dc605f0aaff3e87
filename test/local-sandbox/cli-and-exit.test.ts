// Whole processes: an SDK client's Node process exits promptly once its work is done (the socket.io
// channel must not hold it), and the CLI prints its URL and kills every sandbox process on SIGTERM.
import { Daytona } from '@daytonaio/sdk';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { isAlive, useLocalSandbox, waitFor } from './helpers.ts';

const h = useLocalSandbox();
const projectRoot = path.resolve(import.meta.dirname, '../..');

/** Resolves with each stdout line as it comes, and the exit code at the end. */
function watch(child: ChildProcess): { lines: string[]; line(re: RegExp): Promise<RegExpExecArray>; exited: Promise<number | null> } {
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = async (re: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      for (const l of lines) {
        const m = re.exec(l);
        if (m) return m;
      }
      const more = new Promise<void>((resolve) => waiters.push(resolve));
      const done = await Promise.race([more.then(() => false), exited.then(() => true)]);
      if (done && !lines.some((l) => re.test(l))) throw new Error(`process exited without printing ${re}: ${lines.join('\n')}`);
    }
  };
  return { lines, line, exited };
}

describe('client process', () => {
  it('exits within 2 s of finishing its work, without dispose', async () => {
    const script = `
      import { Daytona } from '@daytonaio/sdk';
      const daytona = new Daytona({ apiKey: 'k', apiUrl: process.env.API_URL });
      const sb = await daytona.create({});
      const r = await sb.process.executeCommand('echo ran');
      await sb.delete();
      console.log('WORK_DONE ' + r.result.trim());
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: projectRoot,
      env: { ...process.env, API_URL: h.server.apiUrl },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const w = watch(child);
    await w.line(/^WORK_DONE ran$/);
    const doneAt = Date.now();
    const code = await Promise.race([w.exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 5000))]);
    if (code === 'late') child.kill('SIGKILL');
    expect(code).toBe(0);
    expect(Date.now() - doneAt).toBeLessThan(2000);
    const stats = await h.admin<{ socketIoConnections: number }>('/stats');
    expect(stats.socketIoConnections).toBeGreaterThanOrEqual(1);
  });
});

describe('CLI', () => {
  it('prints its URL, serves the SDK, and kills every sandbox process on SIGTERM', async () => {
    const child = spawn(process.execPath, ['tools/local-sandbox/main.ts', '--port', '0'], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const w = watch(child);
    try {
      const m = await w.line(/^listening on (http:\/\/127\.0\.0\.1:(\d+))$/);
      const daytona = new Daytona({ apiKey: 'k', apiUrl: `${m[1]}/api` });
      const sb = await daytona.create({});
      const pid = Number((await sb.process.executeCommand('sleep 60 >/dev/null 2>&1 & echo $!')).result.trim());
      const home = (await sb.getUserHomeDir())!;
      expect(isAlive(pid)).toBe(true);
      await daytona[Symbol.asyncDispose]();

      child.kill('SIGTERM');
      expect(await w.exited).toBe(0);
      await waitFor('the sandbox process to die', () => !isAlive(pid) || undefined);
      // the CLI made its own data dir, so it removed it again
      expect(existsSync(home)).toBe(false);
      expect(stderr).toMatch(/SIGTERM/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
