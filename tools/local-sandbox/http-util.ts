// Small HTTP helpers shared by every route module: Daytona-shaped errors, JSON in and out, and a
// segment router. Kept dependency-free so the server runs under Node's type stripping as is.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';

/** Daytona's error body: `{statusCode, message, error, code?, source?}`. The SDK maps `statusCode` to an
 * error class, and `source`+`code` (e.g. DAYTONA_DAEMON + PROCESS_EXECUTION_TIMEOUT) to a finer one. */
export class DaytonaHttpError extends Error {
  readonly statusCode: number;
  readonly code: string | undefined;
  readonly source: string | undefined;
  /** an answer in some other service's exact shape (e.g. the v0.190 daemon's), sent as it is */
  private rawBody: Record<string, unknown> | undefined;
  /** how the v0.190 daemon answers the same failure, when its status or message differ */
  readonly v0190: V0190Answer | undefined;
  constructor(statusCode: number, message: string, code?: string, source?: string, v0190?: V0190Answer) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.source = source;
    this.v0190 = v0190;
  }
  static withBody(statusCode: number, body: Record<string, unknown>): DaytonaHttpError {
    const e = new DaytonaHttpError(statusCode, String(body.message ?? ''));
    e.rawBody = body;
    return e;
  }
  get rawBodySet(): boolean {
    return this.rawBody !== undefined;
  }
  body(): Record<string, unknown> {
    if (this.rawBody) return { ...this.rawBody };
    const body: Record<string, unknown> = {
      statusCode: this.statusCode,
      message: this.message,
      error: STATUS_CODES[this.statusCode] ?? 'Error',
    };
    if (this.code) body.code = this.code;
    if (this.source) body.source = this.source;
    return body;
  }
}

/**
 * The v0.190 daemon's answer to a failure: a typed error of libs/common-go/pkg/errors (status, its
 * prefixed message, a generic code), or, `untyped`, one that reached the error middleware wrapped
 * (fmt.Errorf) and fell through to the daemon's default handler: 500, no code, zero time, empty path.
 */
export interface V0190Answer {
  status?: number;
  message: string;
  untyped?: boolean;
}

/** An error raised by the toolbox (the in-sandbox daemon in real Daytona). */
export function daemonError(statusCode: number, message: string, code?: string, v0190?: V0190Answer): DaytonaHttpError {
  return new DaytonaHttpError(statusCode, message, code, 'DAYTONA_DAEMON', v0190);
}

/** libs/common-go/pkg/errors/middleware.go: the code each typed error gets. */
const V0190_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  410: 'GONE',
  422: 'UNPROCESSABLE_ENTITY',
  500: 'INTERNAL_SERVER_ERROR',
};

/** Any toolbox failure as the v0.190 daemon's error middleware writes it: `{statusCode, message, code,
 * timestamp, path, method}`, never a `source` (so the SDK picks its error class by status alone). */
export function asV0190(err: unknown, path: string, method: string): DaytonaHttpError {
  const e = toDaytonaError(err);
  if (e.rawBodySet) return e;
  const status = e.v0190?.status ?? (e.v0190?.untyped ? 500 : e.statusCode);
  const message = e.v0190?.message ?? e.message;
  if (e.v0190?.untyped) {
    return DaytonaHttpError.withBody(status, { statusCode: status, message, timestamp: '0001-01-01T00:00:00Z', path: '' });
  }
  const body: Record<string, unknown> = { statusCode: status, message };
  if (V0190_CODES[status]) body.code = V0190_CODES[status];
  Object.assign(body, { timestamp: new Date().toISOString(), path, method });
  return DaytonaHttpError.withBody(status, body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

/** File-system failures a caller caused (a missing parent, a file where a folder should be) are its
 * 4xx, not the server's 500. */
const ERRNO_STATUS: Record<string, number> = {
  ENOENT: 404,
  EACCES: 403,
  EPERM: 403,
  EISDIR: 400,
  ENOTDIR: 400,
  EEXIST: 400,
  ENOTEMPTY: 400,
  EINVAL: 400,
  ENAMETOOLONG: 400,
};

export function toDaytonaError(err: unknown): DaytonaHttpError {
  if (err instanceof DaytonaHttpError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const status = code ? ERRNO_STATUS[code] : undefined;
  const message = err instanceof Error ? err.message : String(err);
  return status ? daemonError(status, message) : new DaytonaHttpError(500, message);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = toDaytonaError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.statusCode, e.body());
}

const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** Reads a JSON body. An empty body (the SDK's bodyless form-encoded POSTs) reads as `{}`. */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_JSON_BYTES) throw new DaytonaHttpError(413, 'request body too large');
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  const type = String(req.headers['content-type'] ?? '');
  if (type.includes('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DaytonaHttpError(400, 'request body is not valid JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new DaytonaHttpError(400, 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export function isStringRecord(value: unknown): value is Record<string, string> {
  return !!value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

export function optionalStringRecord(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isStringRecord(value)) throw new DaytonaHttpError(400, `${field} must be an object of string values`);
  return { ...value };
}

export function optionalInt(value: unknown, field: string, min: number): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
    throw new DaytonaHttpError(400, `${field} must be an integer >= ${min}`);
  }
  return n;
}

export type Params = Record<string, string>;
export type Handler<C> = (ctx: C, params: Params) => Promise<void> | void;

interface Route<C> {
  method: string;
  /** the pattern as written, e.g. `GET /sandbox/:id`: the key used in the stats counters */
  name: string;
  segments: string[];
  handler: Handler<C>;
}

/** A tiny segment router: `/sandbox/:id/ports/:port/preview-url`. A trailing `*` captures the rest. */
export class Router<C> {
  private readonly routes: Route<C>[] = [];

  on(method: string, pattern: string, handler: Handler<C>): this {
    this.routes.push({ method, name: `${method} ${pattern}`, segments: splitPath(pattern), handler });
    return this;
  }

  match(method: string, path: string): { route: Route<C>; params: Params } | { allowed: string[] } | undefined {
    const parts = splitPath(path);
    const allowed: string[] = [];
    for (const route of this.routes) {
      const params = matchSegments(route.segments, parts);
      if (!params) continue;
      if (route.method === method) return { route, params };
      allowed.push(route.method);
    }
    return allowed.length ? { allowed } : undefined;
  }
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function matchSegments(pattern: string[], parts: string[]): Params | undefined {
  const params: Params = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '*') {
      params['*'] = parts.slice(i).join('/');
      return params;
    }
    const part = parts[i];
    if (part === undefined) return undefined;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(part);
      } catch {
        return undefined;
      }
    } else if (p !== part) return undefined;
  }
  return parts.length === pattern.length ? params : undefined;
}

/** Runs a matched route, or answers 404/405 in Daytona's shape. Returns the route name for stats. */
export async function dispatch<C>(
  router: Router<C>,
  method: string,
  path: string,
  res: ServerResponse,
  ctx: C,
  mapError: (err: unknown) => unknown = (err) => err,
): Promise<string> {
  const m = router.match(method, path);
  if (!m) {
    sendError(res, mapError(new DaytonaHttpError(404, `Cannot ${method} ${path}`)));
    return `${method} (unknown)`;
  }
  if ('allowed' in m) {
    sendError(res, mapError(new DaytonaHttpError(405, `Method ${method} not allowed`)));
    return `${method} (unknown)`;
  }
  try {
    await m.route.handler(ctx, m.params);
  } catch (err) {
    sendError(res, mapError(err));
  }
  return m.route.name;
}
