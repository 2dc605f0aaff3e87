// Admin endpoints, `/admin/...` (no `/api` prefix): what tests read to check for leaks and cost, and
// the fault switches. Not part of Daytona's API.
import type { Req } from './context.ts';
import { parseFaultConfig } from './faults.ts';
import { DaytonaHttpError, Router, dispatch, readJson, sendEmpty, sendJson } from './http-util.ts';

const router = new Router<Req>();

router.on('GET', '/sandboxes', (r) => {
  const { store, minuteMs } = r.app;
  const now = Date.now();
  const all = store.all();
  // `?deleted=true` adds the deleted sandboxes (the newest 20000), with the time each was billed.
  const withDeleted = ['true', '1'].includes(r.url.searchParams.get('deleted') ?? '');
  sendJson(r.res, 200, {
    live: all.length,
    running: all.filter((s) => s.state === 'started').length,
    deleted: store.deletedCount,
    billedMs: store.billedMs(now),
    ...(withDeleted
      ? { deletedSandboxes: store.deleted().map((d) => ({ ...d, state: 'destroyed', runningMinutes: d.runningMs / minuteMs })) }
      : {}),
    sandboxes: all.map((s) => ({
      id: s.id,
      name: s.name,
      state: s.state,
      labels: s.labels,
      createdAt: s.createdAt.toISOString(),
      lastActiveAt: new Date(s.lastActivity).toISOString(),
      // in the server's minute, so a test running with a fast minute reads sensible numbers
      runningMinutes: s.runningTotalMs(now) / minuteMs,
      runningMs: s.runningTotalMs(now),
      sessions: s.sessions.size,
    })),
  });
});

router.on('GET', '/stats', (r) => {
  const { store, counters, minuteMs } = r.app;
  const all = store.all();
  const billedMs = store.billedMs();
  sendJson(r.res, 200, {
    apiCalls: counters.api,
    toolboxCalls: counters.toolbox,
    ...store.stats,
    previewRequests: counters.previewRequests,
    socketIoConnections: counters.socketIoConnections,
    live: all.length,
    running: all.filter((s) => s.state === 'started').length,
    deleted: store.deletedCount,
    // time every sandbox ever made (deleted ones too) spent in `started`: what Daytona would bill
    billedMs,
    billedMinutes: billedMs / minuteMs,
  });
});

router.on('GET', '/faults', (r) => sendJson(r.res, 200, r.app.faults.snapshot()));

router.on('POST', '/faults', async (r) => {
  r.app.faults.merge(parseFaultConfig(await readJson(r.req)));
  sendJson(r.res, 200, r.app.faults.snapshot());
});

router.on('DELETE', '/faults', (r) => {
  r.app.faults.clear();
  sendEmpty(r.res, 204);
});

router.on('POST', '/sandboxes/:id/kill', async (r, p) => {
  const body = await readJson(r.req);
  const state = body.state;
  if (state !== undefined && state !== 'error' && state !== 'stopped') {
    throw new DaytonaHttpError(400, 'state must be "error" or "stopped"');
  }
  if (body.errorReason !== undefined && typeof body.errorReason !== 'string') throw new DaytonaHttpError(400, 'errorReason must be a string');
  const sb = r.app.store.find(p.id!);
  await r.app.store.kill(sb, state, body.errorReason);
  sendJson(r.res, 200, sb.toDto(r.app.baseUrl));
});

export async function handleAdmin(r: Req, path: string): Promise<void> {
  await dispatch(router, r.req.method ?? 'GET', path, r.res, r);
}
