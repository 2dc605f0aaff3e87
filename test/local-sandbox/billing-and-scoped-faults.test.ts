// What the fault and load suite reads from the local sandbox server: the time each sandbox was billed
// (time in `started`), kept after it is deleted, and faults scoped to the sandboxes carrying some labels.
import { DaytonaError, DaytonaServiceUnavailableError } from '@daytonaio/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, useLocalSandbox } from './helpers.ts';

const MINUTE_MS = 1000;
const h = useLocalSandbox({ minuteMs: MINUTE_MS });

interface Listed {
  id: string;
  state: string;
  labels: Record<string, string>;
  runningMs: number;
  runningMinutes: number;
  createdAt: string;
  deletedAt?: string;
}
interface AdminSandboxes {
  live: number;
  deleted: number;
  billedMs: number;
  sandboxes: Listed[];
  deletedSandboxes?: Listed[];
}
interface Stats {
  billedMs: number;
  billedMinutes: number;
  creates: number;
}

const post = (path: string, body: unknown) =>
  h.admin(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

afterEach(async () => {
  await h.admin('/faults', { method: 'DELETE' });
});

describe('billed time', () => {
  it('counts time in started only, and keeps a deleted sandbox with its billed time', async () => {
    const before = await h.admin<Stats>('/stats');
    const sb = await h.daytona.create({ labels: { bill: 'me' }, autoStopInterval: 0 });
    await sleep(300);
    await sb.stop();
    const stopped = (await h.admin<AdminSandboxes>('/sandboxes')).sandboxes.find((s) => s.id === sb.id)!;
    expect(stopped.state).toBe('stopped');
    expect(stopped.runningMs).toBeGreaterThanOrEqual(300);
    // Stopped: the clock does not run.
    await sleep(400);
    const still = (await h.admin<AdminSandboxes>('/sandboxes')).sandboxes.find((s) => s.id === sb.id)!;
    expect(still.runningMs).toBe(stopped.runningMs);
    // Started again: it runs again, and stops at the delete.
    const restartAt = Date.now();
    await sb.start();
    await sleep(200);
    await sb.delete();
    const restartWallMs = Date.now() - restartAt;
    const view = await h.admin<AdminSandboxes>('/sandboxes?deleted=true');
    expect(view.sandboxes.map((s) => s.id)).not.toContain(sb.id);
    const gone = view.deletedSandboxes!.find((s) => s.id === sb.id)!;
    expect(gone).toMatchObject({ state: 'destroyed', labels: { bill: 'me' } });
    expect(gone.runningMs).toBeGreaterThanOrEqual(stopped.runningMs + 200);
    // Not the 400 ms it was stopped for: no more than the wall time from the start call to the delete.
    expect(gone.runningMs).toBeLessThanOrEqual(stopped.runningMs + restartWallMs + 5);
    expect(gone.runningMinutes).toBeCloseTo(gone.runningMs / MINUTE_MS, 6);
    expect(Date.parse(gone.deletedAt!)).toBeGreaterThanOrEqual(Date.parse(gone.createdAt));
    await sleep(200);
    const again = (await h.admin<AdminSandboxes>('/sandboxes?deleted=true')).deletedSandboxes!.find((s) => s.id === sb.id)!;
    expect(again.runningMs).toBe(gone.runningMs);

    // The total counts every sandbox ever made: the deleted one in full, live ones so far.
    const live = await h.daytona.create({ autoStopInterval: 0 });
    await sleep(100);
    const stats = await h.admin<Stats>('/stats');
    const listing = await h.admin<AdminSandboxes>('/sandboxes?deleted=true');
    const sum = [...listing.sandboxes, ...listing.deletedSandboxes!].reduce((t, s) => t + s.runningMs, 0);
    expect(stats.billedMs - before.billedMs).toBeGreaterThanOrEqual(gone.runningMs + 100);
    expect(Math.abs(listing.billedMs - sum)).toBeLessThan(50);
    expect(stats.billedMinutes).toBeCloseTo(stats.billedMs / MINUTE_MS, 6);
    await live.delete();
  });

  it('lists deleted sandboxes only when asked', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.delete();
    const plain = await h.admin<AdminSandboxes>('/sandboxes');
    expect(plain.deletedSandboxes).toBeUndefined();
    expect(plain.deleted).toBeGreaterThanOrEqual(1);
  });
});

describe('scoped faults', () => {
  it('fails creates only for the labels they name, then falls through to unscoped faults', async () => {
    await post('/faults', {
      scoped: { teamA: { labels: { team: 'a' }, createFailures: { count: 1, mode: '503' } } },
      createFailures: { count: 1, mode: '500' },
    });
    // Team b is not scoped: the unscoped fault fires for it.
    await expect(h.daytona.create({ labels: { team: 'b' }, autoStopInterval: 0 })).rejects.toMatchObject({ statusCode: 500 });
    await expect(h.daytona.create({ labels: { team: 'a', other: 'x' }, autoStopInterval: 0 })).rejects.toBeInstanceOf(DaytonaServiceUnavailableError);
    expect(await h.admin('/faults')).toMatchObject({ createFailures: { count: 0 }, scoped: { teamA: { labels: { team: 'a' }, createFailures: { count: 0 } } } });
    const ok = await h.daytona.create({ labels: { team: 'a' }, autoStopInterval: 0 });
    await ok.delete();
  });

  it('slows, fails and hangs toolbox calls of matching sandboxes only', async () => {
    const a = await h.daytona.create({ labels: { team: 'a' }, autoStopInterval: 0 });
    const b = await h.daytona.create({ labels: { team: 'b' }, autoStopInterval: 0 });
    await post('/faults', {
      scoped: {
        slowA: { labels: { team: 'a' }, delayMs: { toolbox: 1000 } },
        failA: { labels: { team: 'a' }, toolboxFailures: { count: 1, mode: '502', match: '^/process/execute' } },
        hangB: { labels: { team: 'b' }, hangExec: { count: 1, match: 'echo hang-me' } },
      },
    });
    const timed = async (fn: () => Promise<unknown>) => {
      const t0 = Date.now();
      await fn();
      return Date.now() - t0;
    };
    await expect(a.process.executeCommand('echo one')).rejects.toMatchObject({ statusCode: 502 });
    expect(await timed(() => a.process.executeCommand('echo two'))).toBeGreaterThanOrEqual(980);
    expect(await timed(() => b.process.executeCommand('echo fast'))).toBeLessThan(980);
    // The hang is b's: a's command with the same text runs.
    expect((await a.process.executeCommand('echo hang-me')).result.trim()).toBe('hang-me');
    await expect(b.process.executeCommand('echo hang-me', undefined, undefined, 1)).rejects.toBeInstanceOf(DaytonaError);
    // Removing a scoped set by name leaves the others.
    await post('/faults', { scoped: { slowA: null } });
    const left = (await h.admin<{ scoped: Record<string, unknown> }>('/faults')).scoped;
    expect(Object.keys(left).sort()).toEqual(['failA', 'hangB']);
    expect(await timed(() => a.process.executeCommand('echo three'))).toBeLessThan(980);
    await h.admin('/faults', { method: 'DELETE' });
    expect(await h.admin('/faults')).toEqual({});
    await Promise.all([a.delete(), b.delete()]);
  });

  it('applies control-plane faults by the labels of the sandbox a call names', async () => {
    const a = await h.daytona.create({ labels: { team: 'a' }, autoStopInterval: 0 });
    const b = await h.daytona.create({ labels: { team: 'b' }, autoStopInterval: 0 });
    await post('/faults', { scoped: { a: { labels: { team: 'a' }, apiFailures: { count: 1, mode: '500', match: '^DELETE ' } } } });
    await b.delete();
    await expect(a.delete()).rejects.toMatchObject({ statusCode: 500 });
    await a.delete();
    const view = await h.admin<AdminSandboxes>('/sandboxes?deleted=true');
    expect(view.sandboxes.map((s) => s.id)).not.toContain(a.id);
    expect(view.deletedSandboxes!.map((s) => s.id)).toEqual(expect.arrayContaining([a.id, b.id]));
  });

  it('refuses malformed scoped faults', async () => {
    for (const body of [
      { scoped: [] },
      { scoped: { x: { createFailures: { count: 1 } } } },
      { scoped: { x: { labels: {}, createFailures: { count: 1 } } } },
      { scoped: { x: { labels: { a: 1 } } } },
      { scoped: { x: { labels: { a: 'b' }, scoped: {} } } },
      { scoped: { x: { labels: { a: 'b' }, createFailures: { count: 1, mode: 'explode' } } } },
    ]) {
      const res = await fetch(`${h.server.url}/admin/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect(await h.admin('/faults')).toEqual({});
  });
});
