// The local sandbox server keeps its sandboxes across a restart, as Daytona keeps sandboxes whatever
// happens to its API: each sandbox's record lives beside its folders (record.json under --root), so a
// new server on the same root lists every sandbox again, `stopped` (no process survives, as after an
// auto-stop), labels and files intact, and starts it on request; a sandbox whose delete was accepted is
// gone for good. Here the first server process is killed with SIGKILL, as a crash would.
import { Daytona } from '@daytonaio/sdk';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startLocalSandbox } from '../support/processes.ts';
import { isAlive } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'local-sandbox-restart-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a restarted local sandbox server', () => {
  it('finds every sandbox again, stopped, with its labels and files, and starts it', { timeout: 120_000 }, async () => {
    const first = await startLocalSandbox(['--root', root, '--profile', 'lenient']);
    let daytona = new Daytona({ apiKey: 'any', apiUrl: first.apiUrl });
    const kept = await daytona.create({ labels: { app: 'multishot', attempt: '1' } });
    const gone = await daytona.create({ labels: { app: 'multishot', attempt: '2' } });
    await kept.fs.uploadFile(Buffer.from('work in progress\n'), 'workspace/notes.txt');
    await kept.process.createSession('s');
    const started = await kept.process.executeSessionCommand('s', { command: 'sleep 600 & echo $!', runAsync: false });
    const sleeper = Number(started.output?.trim() ?? started.stdout?.trim());
    expect(isAlive(sleeper)).toBe(true);
    await gone.delete();
    await daytona[Symbol.asyncDispose]();

    // A crash: the server dies at once; its sandbox processes are swept by the next one.
    process.kill(first.child.pid!, 'SIGKILL');
    await new Promise((r) => first.child.once('exit', r));

    const second = await startLocalSandbox(['--root', root, '--profile', 'lenient']);
    try {
      daytona = new Daytona({ apiKey: 'any', apiUrl: second.apiUrl });
      const listed: string[] = [];
      for await (const s of daytona.list({ labels: { app: 'multishot' } })) listed.push(s.id);
      expect(listed).toEqual([kept.id]);
      const back = await daytona.get(kept.id);
      expect(back.state).toBe('stopped');
      expect(back.labels).toMatchObject({ app: 'multishot', attempt: '1' });
      await expect.poll(() => isAlive(sleeper), { timeout: 10_000 }).toBe(false);
      await back.start();
      expect((await daytona.get(kept.id)).state).toBe('started');
      const read = await back.process.executeCommand('cat workspace/notes.txt');
      expect(read.result).toBe('work in progress\n');
      await expect(daytona.get(gone.id)).rejects.toThrow(/not found/i);
      // The record on disk follows the sandbox.
      const record = JSON.parse(readFileSync(join(root, 'sandboxes', kept.id, 'record.json'), 'utf8')) as { state: string };
      expect(record.state).toBe('started');
      await back.delete();
      await daytona[Symbol.asyncDispose]();
    } finally {
      await second.stop();
    }
  });
});
