// The CLI's client for the multishot API: one method per route it uses. Every request carries the API
// key; every creating POST carries an Idempotency-Key made once per logical request and reused by its
// retries, so a request retried after a lost answer never creates a second run, round or link.
import { randomUUID } from "node:crypto";
import type { RunListItem } from "../db/queries.ts";
import type { PreviewResult } from "../durable/previews.ts";
import type { RunEvent } from "../durable/state.ts";
import type { RunView } from "../durable/view.ts";
import type { CreatedShareLink } from "../share.ts";
import { CliError, EXIT, exitCodeForStatus } from "./errors.ts";

export type { PreviewResult, RunEvent, RunListItem, RunView };
export type RoundView = RunView["rounds"][number];
export type AttemptView = RoundView["attempts"][number];
export type ShareLink = CreatedShareLink;

export interface RunRequestBody {
  prompt: string;
  attempts?: number;
  agent?: string;
  model?: string;
  verify?: string;
  winner?: "manual" | "first-verified";
  base?: { git: string; ref?: string } | { run: string; round: number };
  limits?: { attemptMinutes?: number; maxTurns?: number };
}

export interface StartedRun {
  id: string;
  status: RunView["status"];
  links: RunView["links"];
}

export interface RunList {
  runs: RunListItem[];
  nextCursor: string | null;
}

/** Statuses worth a second try: rate limits and a gateway or Worker that was briefly away. */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const RETRY_DELAYS_MS = [300, 1000, 3000];

export interface ApiOptions {
  url: string;
  apiKey: string;
  userAgent: string;
  /** Waits between retries (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
}

interface CallOptions {
  json?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Send an Idempotency-Key (creating POSTs). */
  idempotent?: boolean;
}

export class Api {
  readonly url: string;
  private readonly apiKey: string;
  private readonly userAgent: string;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Server clock minus ours (ms), from the last answer's Date header; elapsed times use server stamps. */
  clockSkewMs = 0;

  constructor(opts: ApiOptions) {
    this.url = opts.url.replace(/\/+$/, "");
    this.apiKey = opts.apiKey;
    this.userAgent = opts.userAgent;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  createRun(body: RunRequestBody): Promise<StartedRun> {
    return this.call("POST", "/api/runs", { json: body, idempotent: true });
  }

  getRun(id: string): Promise<RunView> {
    return this.call("GET", `/api/runs/${enc(id)}`);
  }

  listRuns(query: { limit?: number; status?: string; cursor?: string }): Promise<RunList> {
    return this.call("GET", "/api/runs", { query });
  }

  pickWinner(id: string, round: number, attempt: number): Promise<RunView> {
    return this.call("POST", `/api/runs/${enc(id)}/rounds/${round}/winner`, { json: { attempt }, idempotent: true });
  }

  startRound(id: string, body: { prompt: string; attempts?: number; from?: number }): Promise<RunView> {
    return this.call("POST", `/api/runs/${enc(id)}/rounds`, { json: body, idempotent: true });
  }

  cancelRun(id: string): Promise<RunView> {
    return this.call("POST", `/api/runs/${enc(id)}/cancel`);
  }

  cancelAttempt(id: string, attempt: number): Promise<RunView> {
    return this.call("POST", `/api/runs/${enc(id)}/attempts/${attempt}/cancel`);
  }

  share(id: string, body: { scope: "view" | "control"; expiresIn?: number }): Promise<ShareLink> {
    return this.call("POST", `/api/runs/${enc(id)}/share`, { json: body, idempotent: true });
  }

  previewRound(id: string, round: number): Promise<{ previews: PreviewResult[] }> {
    return this.call("POST", `/api/runs/${enc(id)}/rounds/${round}/preview`, { json: {} });
  }

  /** A GET whose body the caller streams (events, tarballs). Non-2xx answers throw, as from `call`. */
  async stream(path: string, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const res = await this.send("GET", path, { headers: init.headers ?? {}, ...(init.signal ? { signal: init.signal } : {}) });
    if (!res.ok) throw await apiError(res);
    return res;
  }

  /** One JSON request, retried (with the same Idempotency-Key) after network errors and 429/502/503/504. */
  async call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    if (opts.idempotent) headers["idempotency-key"] = `cli-${randomUUID()}`;
    const query = Object.entries(opts.query ?? {}).filter((e): e is [string, string | number] => e[1] !== undefined);
    const url = query.length ? `${path}?${new URLSearchParams(query.map(([k, v]) => [k, String(v)]))}` : path;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= RETRY_DELAYS_MS.length;
      let res: Response;
      try {
        res = await this.send(method, url, { headers, ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}) });
      } catch (err) {
        // Nothing listening, or no such host: saying so at once helps more than trying again.
        const hopeless = err instanceof CliError && /^(ECONNREFUSED|ENOTFOUND)$/.test(String(err.details));
        if (last || !(err instanceof CliError) || err.code !== "network" || hopeless) throw err;
        await this.sleep(RETRY_DELAYS_MS[attempt]!);
        continue;
      }
      if (res.ok) return (await res.json()) as T;
      const error = await apiError(res);
      // 409 idempotency_in_progress: our own first try is still being answered; its answer will replay.
      const retryable = RETRY_STATUSES.has(res.status) || error.code === "idempotency_in_progress";
      if (last || !retryable) throw error;
      await this.sleep(RETRY_DELAYS_MS[attempt]!);
    }
  }

  private async send(
    method: string,
    path: string,
    init: { headers: Record<string, string>; body?: string; signal?: AbortSignal },
  ): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.apiKey}`, "user-agent": this.userAgent, ...init.headers },
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const reason = networkReason(err);
      throw new CliError(EXIT.failed, "network", `cannot reach ${this.url}: ${reason}`, reason);
    }
    const date = Date.parse(res.headers.get("date") ?? "");
    // The Date header has whole seconds: only a skew clearly beyond that is worth correcting.
    if (Number.isFinite(date)) {
      const skew = date - Date.now();
      this.clockSkewMs = Math.abs(skew) > 2000 ? skew : 0;
    }
    return res;
  }
}

const enc = encodeURIComponent;

/** The API's `{error: {code, message}}` as a CliError with the exit code its status means. */
export async function apiError(res: Response): Promise<CliError> {
  const text = await res.text().catch(() => "");
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ""}`;
  let details: unknown;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (body.error && typeof body.error.message === "string") {
      code = typeof body.error.code === "string" ? body.error.code : code;
      message = body.error.message;
      details = body.error.details;
    }
  } catch {
    // Not JSON (a proxy's page): the status and a little of the text say enough.
  }
  return new CliError(exitCodeForStatus(res.status), code, message, details, res.status);
}

/** Node's fetch says only "fetch failed"; the reason is in its cause. */
export function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}
