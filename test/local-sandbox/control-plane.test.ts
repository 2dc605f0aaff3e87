// The control plane through the real SDK: create, get, list, labels, intervals, stop/start, delete,
// preview links, and Daytona-shaped errors.
import { DaytonaNotFoundError, DaytonaValidationError } from '@daytonaio/sdk';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAlive, useLocalSandbox, waitFor } from './helpers.ts';

const h = useLocalSandbox();

describe('control plane', () => {
  it('creates a started sandbox at once, with every field the SDK model requires', async () => {
    const sb = await h.daytona.create({ name: 'cp-first', labels: { suite: 'cp' }, envVars: { A: '1' }, autoStopInterval: 0 });
    expect(sb.state).toBe('started');
    expect(sb.name).toBe('cp-first');
    expect(sb.labels).toMatchObject({ suite: 'cp', 'code-toolbox-language': 'python' });
    expect(sb.env).toEqual({ A: '1' });
    expect(sb.toolboxProxyUrl).toBe(`${h.server.url}/toolbox`);
    for (const field of ['id', 'organizationId', 'user', 'target', 'cpu', 'gpu', 'memory', 'disk', 'public', 'networkBlockAll']) {
      expect(sb, field).toHaveProperty(field);
    }
    expect(sb.autoStopInterval).toBe(0);
    expect(sb.autoDeleteInterval).toBe(-1);

    const byId = await h.daytona.get(sb.id);
    const byName = await h.daytona.get('cp-first');
    expect(byId.id).toBe(sb.id);
    expect(byName.id).toBe(sb.id);
    await sb.delete();
  });

  it('lists by label over several cursor pages, and filters by state', async () => {
    const made = await Promise.all([1, 2, 3, 4, 5].map(() => h.daytona.create({ labels: { suite: 'list' } })));
    await h.daytona.create({ labels: { suite: 'other' } });

    const seen: string[] = [];
    for await (const sb of h.daytona.list({ labels: { suite: 'list' }, limit: 2 })) seen.push(sb.id);
    expect(seen.sort()).toEqual(made.map((s) => s.id).sort());
    const pages = (await h.admin<{ apiCalls: Record<string, number> }>('/stats')).apiCalls['GET /sandbox'];
    expect(pages).toBeGreaterThanOrEqual(3);

    await made[0]!.stop();
    const stopped: string[] = [];
    for await (const sb of h.daytona.list({ labels: { suite: 'list' }, states: ['stopped' as never] })) stopped.push(sb.id);
    expect(stopped).toEqual([made[0]!.id]);
  });

  it('replaces labels and sets the auto-stop interval', async () => {
    const sb = await h.daytona.create({ labels: { suite: 'labels' } });
    expect(await sb.setLabels({ x: 'y' })).toEqual({ x: 'y' });
    await sb.setAutostopInterval(7);
    await sb.refreshData();
    expect(sb.labels).toEqual({ x: 'y' });
    expect(sb.autoStopInterval).toBe(7);
  });

  it('stop kills processes and keeps files; toolbox calls fail while stopped; start brings it back', async () => {
    const sb = await h.daytona.create({});
    await sb.fs.uploadFile(Buffer.from('kept'), 'kept.txt');
    const pid = Number((await sb.process.executeCommand('sleep 60 >/dev/null 2>&1 & echo $!')).result.trim());
    expect(isAlive(pid)).toBe(true);

    await sb.stop();
    expect(sb.state).toBe('stopped');
    await waitFor('the background sleep to die', () => !isAlive(pid) || undefined);
    await expect(sb.process.executeCommand('echo hi')).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/not running/) });

    await sb.start();
    expect(sb.state).toBe('started');
    expect((await sb.fs.downloadFile('kept.txt')).toString()).toBe('kept');
  });

  it('delete removes the folder and later lookups are 404 in Daytona shape', async () => {
    const sb = await h.daytona.create({});
    const dir = (await sb.getUserHomeDir())!;
    expect(existsSync(dir)).toBe(true);
    await sb.delete();
    expect(existsSync(dir)).toBe(false);
    const err = await h.daytona.get(sb.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaytonaNotFoundError);

    const raw = await fetch(`${h.server.apiUrl}/sandbox/${sb.id}`, { headers: { authorization: 'Bearer whatever' } });
    expect(raw.status).toBe(404);
    expect(await raw.json()).toMatchObject({ statusCode: 404, error: 'Not Found', message: expect.any(String) });
  });

  it('answers preview links and signed preview links', async () => {
    const sb = await h.daytona.create({});
    const link = await sb.getPreviewLink(3000);
    expect(link).toMatchObject({ sandboxId: sb.id, url: `${h.server.url}/preview/${sb.id}/3000`, token: expect.any(String) });
    const signed = await sb.getSignedPreviewUrl(3000, 120);
    expect(signed).toMatchObject({ sandboxId: sb.id, port: 3000, token: expect.any(String) });
    expect(signed.url).toBe(`${h.server.url}/preview/signed/${signed.token}`);
    await expect(sb.getSignedPreviewUrl(3000, 100_000)).rejects.toBeInstanceOf(DaytonaValidationError);
  });

  it('refuses bad input with 400 and accepts bodyless form-encoded POSTs', async () => {
    const bad = await fetch(`${h.server.apiUrl}/sandbox`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    const badLabels = await fetch(`${h.server.apiUrl}/sandbox?labels=notjson`);
    expect(badLabels.status).toBe(400);

    const sb = await h.daytona.create({});
    const stop = await fetch(`${h.server.apiUrl}/sandbox/${sb.id}/stop?force=false`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '0' },
    });
    expect(stop.status).toBe(200);
    expect(((await stop.json()) as { state: string }).state).toBe('stopped');
  });
});
