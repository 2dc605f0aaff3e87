// Auto-stop and auto-delete with a fast "minute" (200 ms), the admin views, and injected faults.
import { DaytonaError, DaytonaProcessExecutionTimeoutError, DaytonaServiceUnavailableError, DaytonaSessionEndedError } from '@daytonaio/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, useLocalSandbox, waitFor } from './helpers.ts';

const MINUTE_MS = 200;
const h = useLocalSandbox({ minuteMs: MINUTE_MS });

interface AdminSandboxes {
  live: number;
  running: number;
  deleted: number;
  sandboxes: Array<{ id: string; state: string; labels: Record<string, string>; runningMinutes: number; lastActiveAt: string }>;
}

async function stateOf(id: string): Promise<string> {
  try {
    return (await h.daytona.get(id)).state ?? 'unknown';
  } catch (err) {
    if ((err as DaytonaError).statusCode === 404) return 'gone';
    throw err;
  }
}

afterEach(async () => {
  await h.admin('/faults', { method: 'DELETE' });
});

describe('auto-stop and auto-delete', () => {
  it('stops an idle sandbox after autoStopInterval and deletes it autoDeleteInterval later', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 1, autoDeleteInterval: 2 });
    const t0 = Date.now();
    await waitFor('auto-stop', async () => ((await stateOf(sb.id)) === 'stopped' ? true : undefined));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(MINUTE_MS * 0.9);
    // Seen from here the stop may come late, so the delete's bound is taken from the create.
    await waitFor('auto-delete', async () => ((await stateOf(sb.id)) === 'gone' ? true : undefined));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(MINUTE_MS * 2.9);
    const stats = await h.admin<{ autoStops: number; autoDeletes: number }>('/stats');
    expect(stats.autoStops).toBeGreaterThanOrEqual(1);
    expect(stats.autoDeletes).toBeGreaterThanOrEqual(1);
  });

  it('counts a running command as activity', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 1 });
    await sb.process.createSession('busy');
    const startedAt = Date.now();
    await sb.process.executeSessionCommand('busy', { command: 'sleep 1', runAsync: true });
    await sleep(MINUTE_MS * 3);
    expect(await stateOf(sb.id)).toBe('started');
    // Only lower bounds: once the command ends the stop may come at any moment, so polling the
    // command after it would race the stop on a loaded machine.
    await waitFor('auto-stop after the command', async () => ((await stateOf(sb.id)) === 'stopped' ? true : undefined));
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1000 + MINUTE_MS * 0.9);
  });

  it('deletes an ephemeral sandbox as soon as it stops', async () => {
    const sb = await h.daytona.create({ ephemeral: true, autoStopInterval: 0 });
    await sb.stop();
    expect(await stateOf(sb.id)).toBe('gone');
  });

  it('reports live, running and deleted sandboxes with their running time', async () => {
    const sb = await h.daytona.create({ labels: { audit: 'yes' }, autoStopInterval: 0 });
    await sleep(MINUTE_MS);
    const view = await h.admin<AdminSandboxes>('/sandboxes');
    const mine = view.sandboxes.find((s) => s.id === sb.id)!;
    expect(mine).toMatchObject({ state: 'started', labels: { audit: 'yes' } });
    expect(mine.runningMinutes).toBeGreaterThanOrEqual(0.9);
    expect(view.live).toBe(view.sandboxes.length);
    expect(view.running).toBe(view.sandboxes.filter((s) => s.state === 'started').length);
    const deletedBefore = view.deleted;
    await sb.delete();
    const after = await h.admin<AdminSandboxes>('/sandboxes');
    expect(after.deleted).toBe(deletedBefore + 1);
    expect(after.sandboxes.map((s) => s.id)).not.toContain(sb.id);
  });
});

describe('faults', () => {
  it('fails two creates with 503, then creates', async () => {
    await h.admin('/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ createFailures: { count: 2, mode: '503' } }) });
    const liveBefore = (await h.admin<AdminSandboxes>('/sandboxes')).live;
    await expect(h.daytona.create({ autoStopInterval: 0 })).rejects.toBeInstanceOf(DaytonaServiceUnavailableError);
    await expect(h.daytona.create({ autoStopInterval: 0 })).rejects.toMatchObject({ statusCode: 503 });
    expect((await h.admin<AdminSandboxes>('/sandboxes')).live).toBe(liveBefore);
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    expect(sb.state).toBe('started');
  });

  it('can lose a create answer after the sandbox exists (a leak the caller must clean up)', async () => {
    await h.admin('/faults', { method: 'POST', body: JSON.stringify({ createFailures: { count: 1, mode: 'lost' } }) });
    await expect(h.daytona.create({ labels: { lost: 'answer' }, autoStopInterval: 0 })).rejects.toBeInstanceOf(DaytonaError);
    const leaked = (await h.admin<AdminSandboxes>('/sandboxes')).sandboxes.filter((s) => s.labels.lost === 'answer');
    expect(leaked).toHaveLength(1);
  });

  it('delays creates', async () => {
    await h.admin('/faults', { method: 'POST', body: JSON.stringify({ delayMs: { create: 300 } }) });
    const t0 = Date.now();
    await h.daytona.create({ autoStopInterval: 0 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('fails matching toolbox calls and hangs matching commands', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await h.admin('/faults', {
      method: 'POST',
      body: JSON.stringify({ toolboxFailures: { count: 1, mode: '502', match: '^/process/execute' }, hangExec: { count: 1, match: 'hang-me' } }),
    });
    expect(await sb.getWorkDir()).toBeTruthy(); // not matched
    await expect(sb.process.executeCommand('echo hi')).rejects.toMatchObject({ statusCode: 502 });
    expect((await sb.process.executeCommand('echo hi')).result).toBe('hi\n');
    await expect(sb.process.executeCommand('echo hang-me', undefined, undefined, 1)).rejects.toBeInstanceOf(DaytonaProcessExecutionTimeoutError);
    expect((await sb.process.executeCommand('echo hang-me')).result).toBe('hang-me\n');
    expect(await h.admin('/faults')).toMatchObject({ toolboxFailures: { count: 0 }, hangExec: { count: 0 } });
  });

  it('kill ends a running session command as if the sandbox died', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('agent');
    const cmd = await sb.process.executeSessionCommand('agent', { command: 'echo working; sleep 60', runAsync: true });
    await sleep(200);
    await h.admin(`/sandboxes/${sb.id}/kill`, { method: 'POST' });
    const ended = await waitFor('the command to end', async () => {
      const c = await sb.process.getSessionCommand('agent', cmd.cmdId).catch(() => undefined);
      return c?.exitCode !== undefined ? c : undefined;
    });
    expect(ended.exitCode).toBe(137);
  });

  it('kill with state "error" leaves the sandbox in error', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await h.admin(`/sandboxes/${sb.id}/kill`, { method: 'POST', body: JSON.stringify({ state: 'error', errorReason: 'disk on fire' }) });
    const again = await h.daytona.get(sb.id);
    expect(again.state).toBe('error');
    expect(again.errorReason).toBe('disk on fire');
  });

  it('answers a command in a session whose shell died with 410 SESSION_ENDED', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('short');
    await sb.process.executeSessionCommand('short', { command: 'exit 4' });
    await expect(sb.process.executeSessionCommand('short', { command: 'echo again' })).rejects.toBeInstanceOf(DaytonaSessionEndedError);
  });

  it('refuses unknown faults', async () => {
    const res = await fetch(`${h.server.url}/admin/faults`, { method: 'POST', body: JSON.stringify({ createFailures: { count: 1, mode: 'explode' } }) });
    expect(res.status).toBe(400);
  });
});
