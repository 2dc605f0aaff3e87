// The control plane, `/api/...`: sandbox create/get/list/delete/start/stop, labels, intervals, preview
// links, and snapshots (snapshot-routes.ts). Routes validate and hand off to the stores; they hold no
// life-cycle logic of their own.
import { count, failRequest, sleep } from './context.ts';
import type { Req } from './context.ts';
import {
  DaytonaHttpError,
  Router,
  dispatch,
  isStringRecord,
  optionalInt,
  optionalStringRecord,
  readJson,
  sendEmpty,
  sendJson,
} from './http-util.ts';
import { checkPerSandboxLimits } from './lifecycle.ts';
import { signPreviewToken } from './preview.ts';
import { parseNetworkAllowList } from './profile.ts';
import { START_WAIT_MS } from './sandboxes.ts';
import type { CreateParams, LocalSandbox } from './sandboxes.ts';
import { snapshotRoutes } from './snapshot-routes.ts';

const router = new Router<Req>();
snapshotRoutes(router);

function dto(r: Req, sb: LocalSandbox): Record<string, unknown> {
  return sb.toDto(r.app.baseUrl);
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new DaytonaHttpError(400, `${field} must be a string`);
  return v;
}

function optionalNumber(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new DaytonaHttpError(400, `${field} must be a number >= 0`);
  return v;
}

function optionalBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new DaytonaHttpError(400, `${field} must be a boolean`);
  return v;
}

function parseCreate(body: Record<string, unknown>): CreateParams {
  const params: CreateParams = {
    env: optionalStringRecord(body.env, 'env'),
    labels: optionalStringRecord(body.labels, 'labels'),
  };
  const set = <K extends keyof CreateParams>(k: K, v: CreateParams[K] | undefined): void => {
    if (v !== undefined) params[k] = v;
  };
  set('name', optionalString(body.name, 'name'));
  set('user', optionalString(body.user, 'user'));
  set('snapshot', optionalString(body.snapshot, 'snapshot'));
  set('target', optionalString(body.target, 'target'));
  set('networkAllowList', optionalString(body.networkAllowList, 'networkAllowList'));
  set('public', optionalBool(body.public, 'public'));
  set('networkBlockAll', optionalBool(body.networkBlockAll, 'networkBlockAll'));
  set('cpu', optionalNumber(body.cpu, 'cpu'));
  set('gpu', optionalNumber(body.gpu, 'gpu'));
  set('memory', optionalNumber(body.memory, 'memory'));
  set('disk', optionalNumber(body.disk, 'disk'));
  set('autoStopInterval', optionalInt(body.autoStopInterval, 'autoStopInterval', 0));
  set('autoArchiveInterval', optionalInt(body.autoArchiveInterval, 'autoArchiveInterval', 0));
  set('autoDeleteInterval', optionalInt(body.autoDeleteInterval, 'autoDeleteInterval', -1));
  if (body.buildInfo !== undefined) params.buildInfo = body.buildInfo;
  return params;
}

/** What Daytona's API refuses in a create before it looks at anything else (lifecycle 'daytona'). */
function validateCreate(params: CreateParams): void {
  // sandbox.controller.ts createSandbox: resources only come with an image (buildInfo)
  if (!params.buildInfo && (params.cpu || params.gpu || params.memory || params.disk)) {
    throw new DaytonaHttpError(400, 'Cannot specify Sandbox resources when using a snapshot');
  }
  if (params.buildInfo) checkPerSandboxLimits({ cpu: params.cpu ?? 1, memory: params.memory ?? 1, disk: params.disk ?? 3 });
  if (params.networkAllowList !== undefined) {
    try {
      parseNetworkAllowList(params.networkAllowList);
    } catch (err) {
      throw new DaytonaHttpError(400, err instanceof Error ? err.message : 'Invalid network allow list');
    }
  }
}

router.on('POST', '/sandbox', async (r) => {
  const params = parseCreate(await readJson(r.req));
  const daytona = r.app.behaviour.lifecycle === 'daytona';
  if (daytona) validateCreate(params);
  const delay = r.app.faults.delay('create', params.labels);
  if (delay) await sleep(delay);
  const fault = r.app.faults.takeCreateFailure(params.labels);
  if (fault && fault !== 'lost') return failRequest(r, fault);
  // From a snapshot: the API's 400s for an unknown one or one not `active`, then the quota counts the
  // snapshot's resources (sandbox.service.ts createFromSnapshot).
  const from = params.snapshot?.trim() ? r.app.snapshots.forSandbox(params.snapshot) : undefined;
  r.app.store.checkQuota(from?.image.resources ?? { cpu: params.cpu ?? 1, memory: params.memory ?? 1, disk: params.disk ?? 3 });
  const sb = r.app.store.create(params, from);
  if (from) r.app.snapshots.markUsed(from.snapshot);
  if (fault === 'lost') return failRequest(r, fault);
  if (daytona && sb.state !== 'started') {
    // The API waits up to 30 s for `started` and then answers the record as it was BEFORE the wait
    // (sandbox.controller.ts createSandbox discards what waitForSandboxStarted returns): the SDK sees
    // `creating` and polls.
    const before = dto(r, sb);
    await r.app.store.waitForStarted(sb, START_WAIT_MS);
    return sendJson(r.res, 200, before);
  }
  // Lenient: answered at once (`started`, as the real API does once its own wait is over, unless
  // createPendingMs is set).
  sendJson(r.res, 200, dto(r, sb));
});

router.on('GET', '/sandbox', (r) => {
  const q = r.url.searchParams;
  const limit = Math.min(optionalInt(q.get('limit'), 'limit', 1) ?? 100, 1000);
  const cursor = q.get('cursor');
  if (cursor && !/^\d+$/.test(cursor)) throw new DaytonaHttpError(400, 'invalid cursor');
  let labels: Record<string, string> = {};
  const rawLabels = q.get('labels');
  if (rawLabels) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawLabels);
    } catch {
      throw new DaytonaHttpError(400, 'labels must be a JSON object');
    }
    if (!isStringRecord(parsed)) throw new DaytonaHttpError(400, 'labels must be a JSON object of strings');
    labels = parsed;
  }
  // Daytona has more states than a local sandbox ever takes (archived, ...): filtering on them is no error.
  const states = q.getAll('states').flatMap((s) => s.split(',')).filter(Boolean);
  // Daytona never lists an errored sandbox marked for destroy (sandbox-typeorm-search.adapter.ts).
  const id = q.get('id');
  const name = q.get('name');
  // Newest first; the cursor is the sequence number of the last item sent, so sandboxes created or
  // deleted between pages neither repeat nor shift the pages.
  const matching = r.app.store
    .all()
    .filter((sb) => !sb.hidden && (!cursor || sb.seq < Number(cursor)) && (!id || sb.id === id) && (!name || sb.name === name))
    .filter((sb) => Object.entries(labels).every(([k, v]) => sb.labels[k] === v))
    .filter((sb) => states.length === 0 || states.includes(sb.state))
    .sort((a, b) => b.seq - a.seq);
  const page = matching.slice(0, limit);
  const nextCursor = matching.length > limit ? String(page[page.length - 1]!.seq) : null;
  sendJson(r.res, 200, { items: page.map((sb) => dto(r, sb)), nextCursor });
});

router.on('GET', '/sandbox/:idOrName', (r, p) => {
  sendJson(r.res, 200, dto(r, r.app.store.find(p.idOrName!)));
});

router.on('DELETE', '/sandbox/:idOrName', async (r, p) => {
  const sb = r.app.store.find(p.idOrName!);
  await r.app.store.requestDelete(sb);
  sendJson(r.res, 200, dto(r, sb));
});

router.on('POST', '/sandbox/:idOrName/start', async (r, p) => {
  await readJson(r.req);
  const sb = r.app.store.find(p.idOrName!);
  r.app.store.requestStart(sb);
  // As the API: wait up to 30 s for `started`, answer the record as it is then.
  if (r.app.behaviour.lifecycle === 'daytona') await r.app.store.waitForStarted(sb, START_WAIT_MS);
  sendJson(r.res, 200, dto(r, sb));
});

router.on('POST', '/sandbox/:idOrName/stop', async (r, p) => {
  await readJson(r.req);
  const sb = r.app.store.find(p.idOrName!);
  await r.app.store.requestStop(sb);
  sendJson(r.res, 200, dto(r, sb));
});

router.on('POST', '/sandbox/:idOrName/recover', async (r, p) => {
  await readJson(r.req);
  const sb = r.app.store.find(p.idOrName!);
  const skipStart = r.url.searchParams.get('skipStart') === 'true';
  r.app.store.recover(sb, skipStart);
  if (!skipStart && r.app.behaviour.lifecycle === 'daytona') await r.app.store.waitForStarted(sb, START_WAIT_MS);
  sendJson(r.res, 200, dto(r, sb));
});

// `sandbox.refreshActivity()`: resets the idle timer (201, no body).
router.on('POST', '/sandbox/:idOrName/last-activity', async (r, p) => {
  await readJson(r.req);
  r.app.store.find(p.idOrName!).touch();
  sendEmpty(r.res, 201);
});

router.on('PUT', '/sandbox/:idOrName/labels', async (r, p) => {
  const body = await readJson(r.req);
  if (!isStringRecord(body.labels)) throw new DaytonaHttpError(400, 'labels must be an object of string values');
  const sb = r.app.store.find(p.idOrName!);
  sb.labels = { ...body.labels };
  sb.updatedAt = new Date();
  sb.persist();
  sendJson(r.res, 200, { labels: sb.labels });
});

function intervalRoute(path: string, field: 'autoStopInterval' | 'autoArchiveInterval' | 'autoDeleteInterval', min: number): void {
  router.on('POST', path, async (r, p) => {
    await readJson(r.req);
    const sb = r.app.store.find(p.idOrName!);
    const n = optionalInt(p.interval, 'interval', min);
    if (n === undefined) throw new DaytonaHttpError(400, 'interval is required');
    sb[field] = n;
    sb.updatedAt = new Date();
    sb.persist();
    sendEmpty(r.res, 200);
  });
}
intervalRoute('/sandbox/:idOrName/autostop/:interval', 'autoStopInterval', 0);
intervalRoute('/sandbox/:idOrName/autoarchive/:interval', 'autoArchiveInterval', 0);
intervalRoute('/sandbox/:idOrName/autodelete/:interval', 'autoDeleteInterval', -1);

function parsePort(raw: string | undefined): number {
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DaytonaHttpError(400, 'port must be an integer 1-65535');
  return port;
}

router.on('GET', '/sandbox/:idOrName/ports/:port/preview-url', (r, p) => {
  const sb = r.app.store.find(p.idOrName!);
  const port = parsePort(p.port);
  sendJson(r.res, 200, { sandboxId: sb.id, url: `${r.app.baseUrl}/preview/${sb.id}/${port}`, token: sb.previewToken });
});

router.on('GET', '/sandbox/:idOrName/ports/:port/signed-preview-url', (r, p) => {
  const sb = r.app.store.find(p.idOrName!);
  const port = parsePort(p.port);
  const expiresIn = optionalInt(r.url.searchParams.get('expiresInSeconds'), 'expiresInSeconds', 1) ?? 60;
  if (expiresIn > 86400) throw new DaytonaHttpError(400, 'expiresInSeconds must be between 1 and 86400');
  const token = signPreviewToken(r.app.previewSecret, sb.id, port, Date.now() + expiresIn * 1000);
  sendJson(r.res, 200, { sandboxId: sb.id, port, token, url: `${r.app.baseUrl}/preview/signed/${token}` });
});

router.on('POST', '/sandbox/:idOrName/ports/:port/signed-preview-url/:token/expire', async (r, p) => {
  await readJson(r.req);
  r.app.store.find(p.idOrName!);
  r.app.revokedSignedTokens.add(p.token!);
  sendEmpty(r.res, 200);
});

router.on('GET', '/sandbox/:idOrName/toolbox-proxy-url', (r, p) => {
  r.app.store.find(p.idOrName!);
  sendJson(r.res, 200, { url: `${r.app.baseUrl}/toolbox` });
});

/** Handles `/api/<path>` (path given without the `/api` prefix). */
export async function handleControl(r: Req, path: string): Promise<void> {
  const method = r.req.method ?? 'GET';
  const isCreate = method === 'POST' && /^\/sandbox\/?$/.test(path);
  if (!isCreate) {
    // Scoped faults see the labels of the sandbox the call names, if it names one that exists.
    const named = /^\/sandbox\/([^/]+)/.exec(path)?.[1];
    let labels: Record<string, string> | undefined;
    if (named) {
      try {
        labels = r.app.store.find(decodeURIComponent(named)).labels;
      } catch {
        labels = undefined;
      }
    }
    const delay = r.app.faults.delay('api', labels);
    if (delay) await sleep(delay);
    const fault = r.app.faults.takeApiFailure(`${method} ${path}`, labels);
    if (fault) {
      count(r.app.counters.api, `${method} (fault)`);
      return failRequest(r, fault);
    }
  }
  const name = await dispatch(router, method, path, r.res, r);
  count(r.app.counters.api, name);
}

