// What the fault and load suite needs around the Worker: accounts of its own, the local sandbox server's
// admin view (every sandbox ever made, its labels and the time it was billed), fault switches scoped to
// one account's sandboxes, the relay pump that carries runner reports to the Worker, and the read-back
// of runs, events and D1 rows that the suite's checks use.
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { AttemptView, RunView } from "../../src/durable/view.ts";
import type { RelayAnswer, RelayedRequest } from "./ingest-relay.ts";

export const ADMIN_TOKEN = "test-admin-token";
export const FINAL_ATTEMPT = new Set(["done", "failed", "cancelled"]);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the Worker's API

export function api(path: string, key: string, init: { method?: string; json?: unknown } = {}): Promise<Response> {
  const headers = new Headers({ authorization: `Bearer ${key}` });
  if (init.json !== undefined) headers.set("content-type", "application/json");
  return exports.default.fetch(`http://multishot.test${path}`, {
    method: init.method ?? "GET",
    headers,
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
}

export interface Account {
  id: string;
  key: string;
}

/** An account of its own for a case: its id is the `multishot-account` label of its sandboxes. */
export async function createAccount(name: string): Promise<Account> {
  const res = await api("/api/accounts", ADMIN_TOKEN, { method: "POST", json: { name, limits: { concurrentAttempts: 1000, runsPerHour: 1000 } } });
  const body = (await res.json()) as { account: { id: string }; key: { key: string } };
  expect(res.status, JSON.stringify(body)).toBe(201);
  return { id: body.account.id, key: body.key.key };
}

export async function startRun(account: Account, body: Record<string, unknown>): Promise<string> {
  const res = await api("/api/runs", account.key, { method: "POST", json: { agent: "demo", ...body } });
  const json = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(json)).toBe(202);
  return json.id;
}

/** The run as its owner sees it, or null while the API does not know it (404). */
export async function readRun(account: Account, id: string): Promise<RunView | null> {
  const res = await api(`/api/runs/${id}`, account.key);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  expect(res.status).toBe(200);
  return (await res.json()) as RunView;
}

/** Waits until `done(run)` or the time is up; answers the last run seen. */
export async function watch(account: Account, id: string, done: (run: RunView) => boolean, ms: number): Promise<RunView> {
  const until = Date.now() + ms;
  let run = await readRun(account, id);
  while (!(run && done(run)) && Date.now() < until) {
    await sleep(300);
    run = await readRun(account, id);
  }
  return run!;
}

export async function getRun(account: Account, id: string): Promise<RunView> {
  const run = await readRun(account, id);
  if (!run) throw new Error(`run ${id} is unknown to the API`);
  return run;
}

export const attemptsOf = (run: RunView): AttemptView[] => run.rounds.flatMap((r) => r.attempts);
export const settled = (run: RunView | null): boolean =>
  !!run && run.status !== "running" && attemptsOf(run).every((a) => FINAL_ATTEMPT.has(a.status));

export interface RunEvent {
  seq: number;
  at: number;
  type: string;
  round: number | null;
  attempt: number | null;
  data: Record<string, unknown>;
}

/** The run's whole event log, oldest first. */
export async function runEvents(account: Account, id: string): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for (let after = 0; ; ) {
    const page = (await (await api(`/api/runs/${id}/events?after=${after}`, account.key)).json()) as { events: RunEvent[]; next: number };
    out.push(...page.events);
    if (page.events.length === 0) return out;
    after = page.next;
  }
}

// ---------------------------------------------------------------- the local sandbox server

export interface AdminSandbox {
  id: string;
  state: string;
  labels: Record<string, string>;
  createdAt: string;
  deletedAt?: string;
  runningMs: number;
}

export interface AdminView {
  live: number;
  running: number;
  deleted: number;
  billedMs: number;
  sandboxes: AdminSandbox[];
  deletedSandboxes: AdminSandbox[];
}

/** Every sandbox the local server ever made: live ones and deleted ones, each with its billed time. */
export async function sandboxAdmin(): Promise<AdminView> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/sandboxes?deleted=true`);
  expect(res.status).toBe(200);
  return (await res.json()) as AdminView;
}

export const everySandbox = (v: AdminView): AdminSandbox[] => [...v.sandboxes, ...v.deletedSandboxes];

/**
 * A scoped fault set (for `setFaults({scoped})`) that resets every log stream of one account's sandboxes
 * as it opens: no exit line or transcript can be followed, only polls (and reports) carry its jobs.
 */
export const noFollow = (accountId: string) => ({
  [`nofollow-${accountId}`]: { labels: { "multishot-account": accountId }, toolboxFailures: { count: 100_000, mode: "reset", match: "/logs$" } },
});

export async function setFaults(faults: unknown): Promise<void> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(faults),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  await res.body?.cancel();
}

export async function faultsLeft(): Promise<{ scoped?: Record<string, Record<string, { count?: number }>> }> {
  return (await (await fetch(`${env.LOCAL_SANDBOX_URL}/admin/faults`)).json()) as never;
}

export async function clearFaults(): Promise<void> {
  await fetch(`${env.LOCAL_SANDBOX_URL}/admin/faults`, { method: "DELETE" });
}

/** The local server's "kill": the sandbox's processes die as if it crashed (and its state may change). */
export async function killSandbox(id: string, body: { state?: "error" | "stopped"; errorReason?: string; recoverable?: boolean } = {}): Promise<void> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/sandboxes/${id}/kill`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

// ---------------------------------------------------------------- runner reports: the relay pump

export type RelayDecision = "forward" | "drop" | "wait";

export interface Pump {
  /** Stops pulling (the relay then resets what sandboxes send: pushes are lost) and reports the counts. */
  stop(): Promise<{ forwarded: number; dropped: number }>;
}

/**
 * Pulls what sandboxes send to PUBLIC_URL from the relay and hands it to the real Worker, or has the
 * relay reset the connection (`drop`: that report is lost on the way). `wait` asks again shortly (a run
 * whose id is not known yet); after 10 s of waiting a request is forwarded.
 */
export function startPump(decide: (req: { url: string; body: string }) => RelayDecision, pullers = 4): Pump {
  let stopped = false;
  const counts = { forwarded: 0, dropped: 0 };
  const inFlight = new Set<Promise<void>>();
  const answer = (a: RelayAnswer) =>
    fetch(`${env.PUBLIC_URL}/__relay/respond`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(a) }).then((r) => r.body?.cancel());

  const handle = async (item: RelayedRequest): Promise<void> => {
    const until = Date.now() + 10_000;
    const seen = { url: item.url, body: item.body ? atob(item.body) : "" };
    let decision = decide(seen);
    while (decision === "wait" && Date.now() < until) {
      await sleep(50);
      decision = decide(seen);
    }
    if (decision === "drop") {
      counts.dropped++;
      return answer({ id: item.id, drop: true });
    }
    const body = item.body ? Uint8Array.from(atob(item.body), (c) => c.charCodeAt(0)) : undefined;
    const res = await exports.default.fetch(`http://multishot.test${item.url}`, {
      method: item.method,
      headers: item.headers,
      ...(body && body.length && item.method !== "GET" && item.method !== "HEAD" ? { body } : {}),
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    counts.forwarded++;
    await answer({ id: item.id, status: res.status, headers, body: btoa(text) });
  };

  const loops = Array.from({ length: pullers }, async () => {
    while (!stopped) {
      let items: RelayedRequest[] = [];
      try {
        items = (await (await fetch(`${env.PUBLIC_URL}/__relay/next?waitMs=500`)).json()) as RelayedRequest[];
      } catch {
        await sleep(100);
      }
      for (const item of items) {
        const p = handle(item)
          .catch((err) => console.error("relay pump: a request failed", err))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      await Promise.all([...inFlight]);
      return { ...counts };
    },
  };
}

/** The run id of a relayed request's path (`/ingest/<run>/...`), if it has one. */
export const runOfPath = (url: string): string | null => /^\/(?:ingest|upload|download)\/(run_[a-z2-7]+)\//.exec(url)?.[1] ?? null;

// ---------------------------------------------------------------- D1 as the API's other readers see it

export interface D1Attempt {
  number: number;
  status: string;
  sandbox_id: string | null;
  exit_code: number | null;
  error: string | null;
  retries: number;
  timestamps: string | null;
}

export async function d1Attempts(runId: string): Promise<D1Attempt[]> {
  const rows = await env.DB.prepare("SELECT number, status, sandbox_id, exit_code, error, retries, timestamps FROM attempts WHERE run_id = ? ORDER BY round, number")
    .bind(runId)
    .all<D1Attempt>();
  return rows.results;
}

export async function d1Run(runId: string): Promise<{ status: string; error: string | null; finished_at: number | null } | null> {
  return env.DB.prepare("SELECT status, error, finished_at FROM runs WHERE id = ?").bind(runId).first();
}

/** What D1 holds of a run differs from what its object says: a list of differences, empty when equal. */
export async function d1Differences(run: RunView): Promise<string[]> {
  const diffs: string[] = [];
  const row = await d1Run(run.id);
  if (!row) return [`no runs row for ${run.id}`];
  if (row.status !== run.status) diffs.push(`run status: D1 ${row.status}, object ${run.status}`);
  if (row.error !== run.error) diffs.push(`run error: D1 ${row.error}, object ${run.error}`);
  if (row.finished_at !== run.finishedAt) diffs.push(`run finishedAt: D1 ${row.finished_at}, object ${run.finishedAt}`);
  const rows = await d1Attempts(run.id);
  for (const a of attemptsOf(run)) {
    const r = rows.find((x) => x.number === a.number);
    if (!r) {
      diffs.push(`attempt ${a.number}: no D1 row`);
      continue;
    }
    const mine = { status: a.status, sandbox_id: a.sandboxId, exit_code: a.exitCode, error: a.error, retries: a.retries, timestamps: a.timestamps };
    const theirs = { ...r, timestamps: r.timestamps ? JSON.parse(r.timestamps) : null };
    for (const k of Object.keys(mine) as (keyof typeof mine)[]) {
      if (JSON.stringify(mine[k]) !== JSON.stringify(theirs[k])) diffs.push(`attempt ${a.number} ${k}: D1 ${JSON.stringify(theirs[k])}, object ${JSON.stringify(mine[k])}`);
    }
  }
  return diffs;
}

/**
 * A write failure inside D1 itself, for one account's rows: a trigger that aborts the statement, as a
 * failing database would. The Worker's code is untouched; its writes to D1 fail for real.
 */
export async function failD1Writes(name: string, sql: string): Promise<void> {
  await env.DB.exec(`CREATE TRIGGER IF NOT EXISTS ${name} ${sql.replace(/\s+/g, " ")}`);
}

export async function healD1(name: string): Promise<void> {
  await env.DB.exec(`DROP TRIGGER IF EXISTS ${name}`);
}

// ---------------------------------------------------------------- durations and money

/** When the attempt's agent began working, and when it stopped (its result collected, or the attempt ended). */
export function agentWindow(a: AttemptView): { from: number; to: number } | null {
  const from = a.timestamps.running_agent;
  if (from === undefined) return null;
  const to = a.timestamps.collecting_result ?? a.timestamps.failed ?? a.timestamps.cancelled ?? a.timestamps.done;
  return to === undefined ? null : { from, to };
}

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
