// Test helpers for the worker tests: call the Worker as a client would, and read the local sandbox
// server's admin view (what is really running).
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { RunView } from "../../src/durable/view.ts";

export const DEV_KEY = "test-dev-key";
export const ADMIN_TOKEN = "test-admin-token";

export function api(path: string, init: RequestInit & { key?: string | null; json?: unknown } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? DEV_KEY : init.key;
  if (key) headers.set("authorization", `Bearer ${key}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  return exports.default.fetch(`http://multishot.test${path}`, { ...init, headers, body });
}

export async function startRun(body: Record<string, unknown>, key?: string): Promise<string> {
  const res = await api("/api/runs", { method: "POST", json: body, ...(key ? { key } : {}) });
  const json = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(json)).toBe(202);
  return json.id;
}

export async function getRun(id: string): Promise<RunView> {
  const res = await api(`/api/runs/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as RunView;
}

/** Polls the run until `done(run)` holds, or fails with the last state seen. */
export async function waitForRun(id: string, done: (run: RunView) => boolean, timeoutMs = 45_000): Promise<RunView> {
  const until = Date.now() + timeoutMs;
  let run = await getRun(id);
  while (!done(run)) {
    if (Date.now() > until) throw new Error(`timed out waiting for run ${id}: ${JSON.stringify(run, null, 2)}`);
    await new Promise((r) => setTimeout(r, 150));
    run = await getRun(id);
  }
  return run;
}

export const settled = (run: RunView) => run.status !== "running" && run.rounds.every((r) => r.attempts.every((a) => ["done", "failed", "cancelled"].includes(a.status)));

export interface LocalSandbox {
  id: string;
  state: string;
  labels: Record<string, string>;
}

/** Sandboxes the local server still has (not deleted), optionally only those of one run. */
export async function liveSandboxes(runId?: string): Promise<LocalSandbox[]> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/sandboxes`);
  const body = (await res.json()) as { sandboxes: LocalSandbox[] };
  return body.sandboxes.filter((s) => !runId || s.labels["multishot-run"] === runId);
}

export async function injectFaults(faults: unknown): Promise<void> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/admin/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(faults),
  });
  expect(res.status).toBeLessThan(300);
}

export async function clearFaults(): Promise<void> {
  await fetch(`${env.LOCAL_SANDBOX_URL}/admin/faults`, { method: "DELETE" });
}

export interface RunEventView {
  seq: number;
  type: string;
  attempt: number | null;
  data: Record<string, unknown> & { job?: string; sandboxId?: string };
}

/** The run's event log, oldest first. */
export async function runEvents(id: string): Promise<RunEventView[]> {
  return ((await (await api(`/api/runs/${id}/events`)).json()) as { events: RunEventView[] }).events;
}
