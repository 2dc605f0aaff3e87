// Which sandbox failures are worth another try. The SDK maps HTTP statuses to error classes and wraps
// transport failures (resets, refused connections, timeouts) in DaytonaConnectionError; anything without
// a status that is not a local argument error is treated as transport trouble too.
import { DaytonaConnectionError, DaytonaError, DaytonaInvalidArgumentError } from "@daytonaio/sdk";

const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/** True for failures that may pass on their own: network trouble, timeouts, rate limits, 5xx. */
export function isRetryableSandboxError(err: unknown): boolean {
  if (err instanceof DaytonaInvalidArgumentError) return false;
  if (err instanceof DaytonaConnectionError) return true;
  if (err instanceof DaytonaError) {
    if (err.statusCode === undefined) return /timeout|timed out|network|socket|ECONN|EPIPE|fetch failed/i.test(err.message);
    return RETRYABLE_STATUS.has(err.statusCode);
  }
  if (err instanceof TypeError) return /fetch|network|socket|connection/i.test(err.message);
  return err instanceof Error && /ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|network|timed? ?out/i.test(err.message);
}

/**
 * True when the session named in a call does not exist (any more): a sandbox started again has lost its
 * sessions. The OpenAPI spec says 404; the v0.190 daemon answers 500 (apps/daemon/pkg/toolbox/process/
 * session/execute.go 69, through libs/common-go/pkg/errors/middleware.go). Either way the message names it.
 */
export function isSessionMissing(err: unknown): boolean {
  return err instanceof DaytonaError && (err.statusCode === 404 || err.statusCode === 500) && /session/i.test(err.message) && /not found|does not exist|no such/i.test(err.message);
}

/** True when the toolbox refused because the sandbox is not started (auto-stopped, or stopping). */
export function isSandboxStopped(err: unknown): boolean {
  return err instanceof DaytonaError && err.statusCode === 400 && /is the sandbox started|sandbox is not running/i.test(err.message);
}

/** True when Daytona refused a create or start for the organization's quota ("Total CPU limit exceeded…"). */
export function isQuotaRefusal(err: unknown): boolean {
  return err instanceof DaytonaError && (err.statusCode === 400 || err.statusCode === 403) && /limit exceeded|quota/i.test(err.message);
}

/** True when the sandbox is gone (deleted, never existed). A missing session is not a missing sandbox. */
export function isSandboxGone(err: unknown): boolean {
  return err instanceof DaytonaError && (err.statusCode === 404 || err.statusCode === 410) && !isSessionMissing(err);
}

/** Which kind a failure is (src/durable/decisions.ts decides what follows). */
export function classifySandboxError(err: unknown): "gone" | "stopped" | "retryable" | "final" {
  if (isSandboxGone(err)) return "gone";
  if (isSandboxStopped(err) || isSessionMissing(err)) return "stopped";
  return isRetryableSandboxError(err) ? "retryable" : "final";
}

/** A short, human reason for an error, safe to show: the SDK's message without request internals. */
export function describeSandboxError(err: unknown): string {
  if (err instanceof DaytonaError) {
    const status = err.statusCode ? ` (HTTP ${err.statusCode})` : "";
    return `${err.message}${status}`.slice(0, 500);
  }
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}
