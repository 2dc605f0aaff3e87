// Every error the API answers is JSON `{error: {code, message, details?}}` with a 4xx/5xx status.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly details?: unknown;

  constructor(status: ContentfulStatusCode, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** How a body sent without Content-Length says it went past its route's limit while being read. */
export const BODY_TOO_LARGE = "multishot: body over its limit";

/** Hono's onError: ApiErrors answer as themselves; anything else is a 500 that names no internals. */
export function handleError(err: Error, c: Context) {
  if (String(err?.message ?? err).includes(BODY_TOO_LARGE)) err = new ApiError(413, "body_too_large", "the request body is over this route's limit");
  if (err instanceof ApiError) {
    const retryAfter = (err.details as { retryAfter?: number } | undefined)?.retryAfter;
    return c.json(errorBody(err.code, err.message, err.details), err.status, retryAfter ? { "retry-after": String(retryAfter) } : {});
  }
  console.error("unhandled error", err.stack ?? err.message);
  return c.json(errorBody("internal", "internal error"), 500);
}
