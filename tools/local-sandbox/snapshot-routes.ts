// The snapshot routes of the control plane, `/api/snapshots...`, on control.ts's router: the paths and
// shapes of the generated client (node_modules/@daytona/api-client/src/api/snapshots-api.js) and the
// checks of Daytona's controller (apps/api/src/sandbox/controllers/snapshot.controller.ts). They validate
// and hand off to the snapshot store (snapshots.ts).
import type { Req } from './context.ts';
import { DaytonaHttpError, optionalInt, readJson, sendEmpty, sendJson } from './http-util.ts';
import type { Router } from './http-util.ts';
import type { CreateSnapshotParams, LocalSnapshot } from './snapshots.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Type checks with class-validator's messages, as the API's ValidationPipe answers them
 * (apps/api/src/sandbox/dto/create-snapshot.dto.ts), joined as its exception filter joins them. */
function parseCreateSnapshot(body: Record<string, unknown>): CreateSnapshotParams {
  const errors: string[] = [];
  const str = (k: string): string | undefined => {
    const v = body[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') errors.push(`${k} must be a string`);
    return typeof v === 'string' ? v : undefined;
  };
  const num = (k: string): number | undefined => {
    const v = body[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) errors.push(`${k} must be a number conforming to the specified constraints`);
    else if (v < 0) errors.push(`${k} must not be less than 0`);
    return typeof v === 'number' ? v : undefined;
  };
  const name = body.name;
  if (typeof name !== 'string') errors.push('name must be a string');
  const params: CreateSnapshotParams = { name: typeof name === 'string' ? name : '' };
  const set = <K extends keyof CreateSnapshotParams>(k: K, v: CreateSnapshotParams[K] | undefined): void => {
    if (v !== undefined) params[k] = v;
  };
  set('imageName', str('imageName'));
  set('regionId', str('regionId'));
  set('cpu', num('cpu'));
  set('gpu', num('gpu'));
  set('memory', num('memory'));
  set('disk', num('disk'));
  const entrypoint = body.entrypoint;
  if (entrypoint !== undefined && entrypoint !== null) {
    if (!Array.isArray(entrypoint) || entrypoint.some((e) => typeof e !== 'string')) errors.push('each value in entrypoint must be a string');
    else params.entrypoint = entrypoint as string[];
  }
  const b = body.buildInfo;
  if (b !== undefined && b !== null) {
    if (typeof b !== 'object' || Array.isArray(b)) errors.push('buildInfo must be an object');
    else {
      const { dockerfileContent, contextHashes } = b as Record<string, unknown>;
      if (typeof dockerfileContent !== 'string') errors.push('buildInfo.dockerfileContent must be a string');
      else if (contextHashes !== undefined && (!Array.isArray(contextHashes) || contextHashes.some((h) => typeof h !== 'string'))) {
        errors.push('buildInfo.contextHashes must be an array of strings');
      } else params.buildInfo = { dockerfileContent, ...(contextHashes ? { contextHashes: contextHashes as string[] } : {}) };
    }
  }
  if (errors.length) throw new DaytonaHttpError(400, errors.join(', '));
  // The controller's own rules (snapshot.controller.ts createSnapshot 117-128).
  if (params.buildInfo) {
    if (params.imageName) throw new DaytonaHttpError(400, 'Cannot specify an image name when using a build info entry');
    if (params.entrypoint) throw new DaytonaHttpError(400, 'Cannot specify an entrypoint when using a build info entry');
  } else if (!params.imageName) throw new DaytonaHttpError(400, 'Must specify an image name when not using a build info entry');
  return params;
}

type SortField = 'name' | 'state' | 'lastUsedAt' | 'createdAt';
const SORT_FIELDS: readonly SortField[] = ['name', 'state', 'lastUsedAt', 'createdAt'];

/** The list's order (snapshot.service.ts getAllSnapshots 452-513): by `sort` (default lastUsedAt) in
 * `order` (default desc), empty values last, then newest first. */
function compareBy(field: SortField, order: 'asc' | 'desc'): (a: LocalSnapshot, b: LocalSnapshot) => number {
  const key = (s: LocalSnapshot): string | number | null =>
    field === 'name' ? s.name : field === 'state' ? s.state : field === 'createdAt' ? s.createdAt.getTime() : (s.lastUsedAt?.getTime() ?? null);
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) {
      if (ka === null) return 1;
      if (kb === null) return -1;
      const c = ka < kb ? -1 : 1;
      return order === 'asc' ? c : -c;
    }
    return b.createdAt.getTime() - a.createdAt.getTime() || b.seq - a.seq;
  };
}

export function snapshotRoutes(router: Router<Req>): void {
  router.on('POST', '/snapshots', async (r) => {
    const snap = r.app.snapshots.create(parseCreateSnapshot(await readJson(r.req)));
    sendJson(r.res, 200, snap.toDto());
  });

  router.on('GET', '/snapshots', (r) => {
    const q = r.url.searchParams;
    const page = optionalInt(q.get('page'), 'page', 1) ?? 1;
    const limit = optionalInt(q.get('limit'), 'limit', 1) ?? 100;
    if (limit > 200) throw new DaytonaHttpError(400, 'limit must not be greater than 200');
    const sort = (q.get('sort') ?? 'lastUsedAt') as SortField;
    if (!SORT_FIELDS.includes(sort)) throw new DaytonaHttpError(400, `sort must be one of the following values: ${SORT_FIELDS.join(', ')}`);
    const order = q.get('order') ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new DaytonaHttpError(400, 'order must be one of the following values: asc, desc');
    // `name` is a partial, case-insensitive match (ILike `%name%`).
    const name = q.get('name')?.toLowerCase();
    const matching = r.app.snapshots
      .all()
      .filter((s) => !name || s.name.toLowerCase().includes(name))
      .sort(compareBy(sort, order));
    const items = matching.slice((page - 1) * limit, page * limit).map((s) => s.toDto());
    sendJson(r.res, 200, { items, total: matching.length, page, totalPages: Math.ceil(matching.length / limit) });
  });

  router.on('GET', '/snapshots/:idOrName', (r, p) => {
    sendJson(r.res, 200, r.app.snapshots.find(p.idOrName!).toDto());
  });

  // The access guard finds it by id or name (its 404 otherwise); the route takes a UUID only
  // (ParseUUIDPipe): the SDK resolves a name to the id first (sdk cjs/Snapshot.js callWithResolvedId).
  router.on('DELETE', '/snapshots/:id', async (r, p) => {
    const snap = r.app.snapshots.find(p.id!);
    if (!UUID.test(p.id!)) throw new DaytonaHttpError(400, 'Validation failed (uuid is expected)');
    await r.app.snapshots.remove(snap);
    sendEmpty(r.res, 200);
  });

  // Where the SDK's `create(..., {onLogs})` follows the build (snapshot.controller.ts
  // getSnapshotBuildLogsUrl 288-325): Daytona points it at the region's proxy, which serves the
  // runner's log; here this server serves it itself, at the API's own build-logs path.
  router.on('GET', '/snapshots/:id/build-logs-url', (r, p) => {
    const snap = withBuildInfo(r, p.id!);
    sendJson(r.res, 200, { url: `${r.app.baseUrl}/api/snapshots/${snap.id}/build-logs` });
  });

  // The log as the runner serves it (apps/runner/pkg/api/controllers/snapshot.go GetBuildLogs):
  // octet-stream, the whole file, or with `follow=true` the file and then each new chunk. The runner
  // ends a followed log once the image exists; this server ends it once the build has settled, failed
  // builds too (the SDK would stop reading one after its state check anyway).
  router.on('GET', '/snapshots/:id/build-logs', (r, p) => {
    const snap = withBuildInfo(r, p.id!);
    const follow = r.url.searchParams.get('follow') === 'true';
    r.res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-cache' });
    const unsubscribe = r.app.snapshots.followLog(
      snap,
      follow,
      (chunk) => r.res.write(chunk),
      () => r.res.end(),
    );
    r.res.once('close', unsubscribe);
  });
}

function withBuildInfo(r: Req, idOrName: string): LocalSnapshot {
  const snap = r.app.snapshots.find(idOrName);
  if (!snap.buildInfo) throw new DaytonaHttpError(404, `Snapshot ${snap.id} has no build info`);
  return snap;
}
