// The 'daytona' profile's life cycle, through the real SDK and raw HTTP: creates that answer `creating`,
// deletes that only mark, 409 during a state change, 400 for an errored sandbox until recovered, the
// runner's 400 for toolbox calls on a stopped sandbox, and the organization's quotas.
import type { Sandbox } from '@daytonaio/sdk';
import { describe, expect, it } from 'vitest';
import { rejection, sleep, useLocalSandbox, waitFor } from './helpers.ts';
import type { Harness } from './helpers.ts';

const CREATE_PENDING_MS = 400;
const STATE_CHANGE_MS = 300;
const DESTROY_DELAY_MS = 1200;
const h = useLocalSandbox({
  profile: 'daytona',
  createPendingMs: CREATE_PENDING_MS,
  stateChangeMs: STATE_CHANGE_MS,
  destroyDelayMs: DESTROY_DELAY_MS,
});

/** A control-plane call as raw HTTP: status and JSON body. */
async function api(harness: Harness, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${harness.server.apiUrl}${path}`, {
    method,
    headers: { authorization: 'Bearer k', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const STATE_CHANGE = 'Sandbox state change in progress';

describe('daytona life cycle', () => {
  it('answers a create with `creating` after the wait; the SDK polls until `started`', async () => {
    const raw = await api(h, 'POST', '/sandbox', { labels: { t: 'raw' } });
    expect(raw.status).toBe(200);
    expect(raw.body).toMatchObject({ state: 'creating', desiredState: 'started' });
    expect((await api(h, 'GET', `/sandbox/${String(raw.body.id)}`)).body.state).toBe('started');

    const t0 = Date.now();
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    expect(sb.state).toBe('started');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(CREATE_PENDING_MS * 0.9);
    await api(h, 'DELETE', `/sandbox/${String(raw.body.id)}`);
    await sb.delete();
  });

  it('only marks on delete: still gettable and listed, 409 for delete/start/stop, then 404', async () => {
    const sb = await h.daytona.create({ labels: { t: 'delete-mark' }, autoStopInterval: 0 });
    const before = await h.admin<{ live: number }>('/stats');
    const del = await api(h, 'DELETE', `/sandbox/${sb.id}`);
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ id: sb.id, desiredState: 'destroyed' });
    const marked = await api(h, 'GET', `/sandbox/${sb.id}`);
    expect(marked.status).toBe(200);
    expect(marked.body).toMatchObject({ id: sb.id, desiredState: 'destroyed', state: 'destroying' });
    const listed: Sandbox[] = [];
    for await (const s of h.daytona.list({ labels: { t: 'delete-mark' } })) listed.push(s);
    expect(listed.map((s) => s.id)).toEqual([sb.id]);

    for (const [method, path] of [
      ['DELETE', `/sandbox/${sb.id}`],
      ['POST', `/sandbox/${sb.id}/start`],
      ['POST', `/sandbox/${sb.id}/stop`],
    ] as const) {
      const r = await api(h, method, path);
      expect({ method, status: r.status, message: r.body.message }).toEqual({ method, status: 409, message: STATE_CHANGE });
    }
    expect((await rejection(sb.delete())).statusCode).toBe(409);

    // Not live for leak and cost checks, though Daytona still lists it.
    const stats = await h.admin<{ live: number; deleted: number }>('/stats');
    expect(stats.live).toBe(before.live - 1);
    const admin = await h.admin<{ sandboxes: Array<{ id: string }>; destroying: number }>('/sandboxes');
    expect(admin.sandboxes.map((s) => s.id)).not.toContain(sb.id);
    expect(admin.destroying).toBeGreaterThanOrEqual(1);

    await waitFor('destroyed', async () => ((await api(h, 'GET', `/sandbox/${sb.id}`)).status === 404 ? true : undefined));
  });

  it('refuses a start while stopping (409), then toolbox calls on the stopped sandbox with the runner 400', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    const stop = await api(h, 'POST', `/sandbox/${sb.id}/stop`);
    expect(stop.body).toMatchObject({ state: 'stopping', desiredState: 'stopped' });
    const start = await api(h, 'POST', `/sandbox/${sb.id}/start`);
    expect(start).toEqual({ status: 409, body: expect.objectContaining({ statusCode: 409, message: STATE_CHANGE }) });
    await waitFor('stopped', async () => ((await api(h, 'GET', `/sandbox/${sb.id}`)).body.state === 'stopped' ? true : undefined));

    const res = await fetch(`${h.server.url}/toolbox/${sb.id}/process/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: 'true' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      statusCode: 400,
      code: 'BAD_REQUEST',
      message: 'bad request: failed to resolve container IP after 3 attempts: no IP address found. Is the Sandbox started?',
    });
    const viaSdk = await rejection(sb.process.executeCommand('true'));
    expect(viaSdk.statusCode).toBe(400);
    expect(viaSdk.message).toContain('Is the Sandbox started?');

    await sb.start();
    expect(sb.state).toBe('started');
    expect((await sb.process.executeCommand('echo back')).result).toBe('back\n');
    await sb.delete();
  });

  it('answers 400 for starting an errored sandbox until it is recovered', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await h.admin(`/sandboxes/${sb.id}/kill`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'error', errorReason: 'disk full', recoverable: true }),
    });
    const err = await rejection(sb.start());
    expect(err.statusCode).toBe(400);
    expect(err.message).toContain('Sandbox is in an errored state');
    expect((await rejection(sb.stop())).statusCode).toBe(400);

    await sb.recover();
    expect(sb.state).toBe('started');
    expect((await sb.process.executeCommand('echo recovered')).result).toBe('recovered\n');
    // Recovered once: not recoverable again, and not in error.
    const again = await api(h, 'POST', `/sandbox/${sb.id}/recover`);
    expect(again).toEqual({ status: 400, body: expect.objectContaining({ message: 'Sandbox is not in a recoverable state' }) });

    const failed = await h.daytona.create({ autoStopInterval: 0 });
    await h.admin(`/sandboxes/${failed.id}/kill`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'build_failed' }),
    });
    expect((await api(h, 'POST', `/sandbox/${failed.id}/start`)).status).toBe(400);
    expect((await api(h, 'POST', `/sandbox/${failed.id}/recover`)).body.message).toBe('Sandbox is not in a recoverable state');
    // An errored sandbox marked for destroy is 404 at once.
    expect((await api(h, 'DELETE', `/sandbox/${failed.id}`)).status).toBe(200);
    expect((await api(h, 'GET', `/sandbox/${failed.id}`)).status).toBe(404);
    await sb.delete();
  });
});

describe('quotas', () => {
  const q = useLocalSandbox({ profile: 'daytona', createPendingMs: 0, stateChangeMs: 0, destroyDelayMs: 0, quotaCpu: 2, quotaMemory: 4, quotaDisk: 9 });
  const UPGRADE = "\nTo increase concurrency limits, upgrade your organization's Tier by visiting https://app.daytona.io/dashboard/limits.";

  it('refuses creates and starts beyond the totals; a stopped sandbox keeps its disk, not its cpu', async () => {
    const a = await q.daytona.create({ autoStopInterval: 0 });
    const b = await q.daytona.create({ autoStopInterval: 0 });
    const cpu = await api(q, 'POST', '/sandbox', {});
    expect(cpu).toEqual({ status: 400, body: expect.objectContaining({ message: `Total CPU limit exceeded. Maximum allowed: 2.${UPGRADE}` }) });
    const viaSdk = await rejection(q.daytona.create());
    expect(viaSdk.statusCode).toBe(400);
    expect(viaSdk.message).toContain('Total CPU limit exceeded. Maximum allowed: 2.');

    await a.stop(); // frees a's cpu and memory, not its disk
    const c = await q.daytona.create({ autoStopInterval: 0 });
    const startA = await rejection(a.start());
    expect(startA.statusCode).toBe(400);
    expect(startA.message).toContain('Total CPU limit exceeded. Maximum allowed: 2.');

    // cpu lifted: three sandboxes hold 9 GiB of disk, a fourth would pass it
    await q.admin('/behaviour', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ quotaCpu: null }) });
    const disk = await api(q, 'POST', '/sandbox', {});
    expect(disk.body.message).toBe(
      `Total disk limit exceeded. Maximum allowed: 9GiB.\nConsider archiving your unused Sandboxes to free up available storage.${UPGRADE}`,
    );
    expect(disk.status).toBe(400);

    // memory: b, c and a started again hold 3 GiB of the 4
    await a.start();
    await q.admin('/behaviour', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ quotaDisk: null, quotaMemory: 3 }) });
    const memory = await api(q, 'POST', '/sandbox', {});
    expect(memory).toEqual({ status: 400, body: expect.objectContaining({ message: `Total memory limit exceeded. Maximum allowed: 3GiB.${UPGRADE}` }) });

    // A deleted sandbox holds nothing any more.
    await b.delete();
    const d = await q.daytona.create({ autoStopInterval: 0 });
    expect(d.state).toBe('started');
    await Promise.all([a, c, d].map((s) => s.delete()));
    await sleep(50);
  });
});
