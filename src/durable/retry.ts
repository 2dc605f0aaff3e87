// When and how often a failed step is tried again. Retries are timers, never sleeps.
import type { Env } from "../env.ts";

export interface RetryPolicy {
  /** First backoff, doubled each retry up to `capMs`. */
  baseMs: number;
  capMs: number;
  /** Retries per attempt before it fails. */
  limit: number;
  /** How often a running job is polled when no report has come. */
  pollMs: number;
  /** Size of each part of a winner's tarball upload (R2 wants at least 5 MiB but for the last). */
  partBytes: number;
}

const num = (v: string | undefined, fallback: number) => {
  const n = Number(v);
  return v !== undefined && v !== "" && Number.isFinite(n) && n >= 0 ? n : fallback;
};

/** The seed's schedule by default: 5 s, 10 s, 20 s, three tries. */
export function retryPolicy(env: Env): RetryPolicy {
  return {
    baseMs: num(env.RETRY_BASE_MS, 5_000),
    capMs: num(env.RETRY_CAP_MS, 60_000),
    limit: num(env.RETRY_LIMIT, 3),
    pollMs: num(env.POLL_INTERVAL_MS, 15_000),
    partBytes: Math.max(5 * 1024 * 1024, num(env.UPLOAD_PART_BYTES, 16 * 1024 * 1024)),
  };
}

/** Backoff before retry number `retriesSoFar + 1`: base * 2^retriesSoFar, capped. */
export function backoffMs(policy: RetryPolicy, retriesSoFar: number): number {
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, retriesSoFar));
}

/** The first poll of a job: soon, since most setup jobs end within a second or two. */
export const FIRST_POLL_MS = 1_000;

/**
 * When to poll a running job next, `runningMs` after it started: the gaps double from FIRST_POLL_MS
 * (1, 2, 4, 8 s...) up to pollMs. A short job whose report was lost is seen within about its own
 * length; a long one costs a few more polls at its start and then one per pollMs.
 */
export function nextPollMs(policy: RetryPolicy, runningMs: number): number {
  return Math.min(policy.pollMs, Math.max(FIRST_POLL_MS, runningMs));
}
