// Admin endpoints, `/admin/...` (no `/api` prefix): what tests read to check for leaks and cost, and
// the fault switches, the behaviours (profile.ts). Not part of Daytona's API.
import type { Req } from './context.ts';
import { parseFaultConfig } from './faults.ts';
import { DaytonaHttpError, Router, dispatch, readJson, sendEmpty, sendJson } from './http-util.ts';
import { mergeBehaviour } from './profile.ts';
import type { BehaviourOptions } from './profile.ts';

const router = new Router<Req>();

router.on('GET', '/sandboxes', (r) => {
  const { store, minuteMs } = r.app;
  const now = Date.now();
  // Sandboxes marked for destroy (lifecycle 'daytona') are deleted as far as leaks and cost go: they
  // are counted in `destroying`, and listed with the deleted ones.
  const all = store.live();
  // `?deleted=true` adds the deleted sandboxes (the newest 20000), with the time each was billed.
  const withDeleted = ['true', '1'].includes(r.url.searchParams.get('deleted') ?? '');
  sendJson(r.res, 200, {
    live: all.length,
    running: all.filter((s) => s.state === 'started').length,
    deleted: store.deletedCount,
    destroying: store.all().length - all.length,
    billedMs: store.billedMs(now),
    ...(withDeleted
      ? { deletedSandboxes: store.deleted().map((d) => ({ ...d, state: 'destroyed', runningMinutes: d.runningMs / minuteMs })) }
      : {}),
    sandboxes: all.map((s) => ({
      id: s.id,
      name: s.name,
      state: s.state,
      desiredState: s.desiredState,
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
  const all = store.live();
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
    snapshots: r.app.snapshots.all().length,
    // time every sandbox ever made (deleted ones too) spent in `started`: what Daytona would bill
    billedMs,
    billedMinutes: billedMs / minuteMs,
  });
});

router.on('GET', '/faults', (r) => sendJson(r.res, 200, r.app.faults.snapshot()));

// The behaviours in force (profile.ts), so a test can tell which server it talks to.
router.on('GET', '/behaviour', (r) => sendJson(r.res, 200, r.app.behaviour));

// Switches a running server: a partial BehaviourOptions over the behaviours in force (a `profile` in it
// starts again from that profile). The one behaviour object is shared by every module, so each change
// applies from the next request on; a process's egress policy and a session's mode are fixed when it
// starts (new executes, new sessions and sandboxes started again see the change).
router.on('POST', '/behaviour', async (r) => {
  const body = await readJson(r.req);
  let next;
  try {
    next = mergeBehaviour(r.app.behaviour, body as BehaviourOptions);
  } catch (err) {
    throw new DaytonaHttpError(400, err instanceof Error ? err.message : String(err));
  }
  Object.assign(r.app.behaviour, next);
  sendJson(r.res, 200, r.app.behaviour);
});

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
  if (state !== undefined && state !== 'error' && state !== 'build_failed' && state !== 'stopped') {
    throw new DaytonaHttpError(400, 'state must be "error", "build_failed" or "stopped"');
  }
  if (body.errorReason !== undefined && typeof body.errorReason !== 'string') throw new DaytonaHttpError(400, 'errorReason must be a string');
  if (body.recoverable !== undefined && typeof body.recoverable !== 'boolean') throw new DaytonaHttpError(400, 'recoverable must be a boolean');
  const sb = r.app.store.find(p.id!);
  await r.app.store.kill(sb, state, body.errorReason, body.recoverable === true);
  sendJson(r.res, 200, sb.toDto(r.app.baseUrl));
});

export async function handleAdmin(r: Req, path: string): Promise<void> {
  await dispatch(router, r.req.method ?? 'GET', path, r.res, r);
}
