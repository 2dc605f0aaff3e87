// The operator reads how often a run's Durable Object was woken (each wake-up is billed): by its alarm,
// and by requests that come without a user asking (live streams, runner reports). ADMIN_TOKEN only.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ingestUrl } from "../../src/signed-urls.ts";
import { ADMIN_TOKEN, api, DEV_KEY, settled, startRun, waitForRun } from "./helpers.ts";

interface WakeUps {
  id: string;
  alarms: number;
  requests: number;
}

async function wakeUps(runId: string): Promise<WakeUps> {
  const res = await api(`/api/admin/runs/${runId}/stats`, { key: ADMIN_TOKEN });
  expect(res.status).toBe(200);
  return (await res.json()) as WakeUps;
}

describe("a run's wake-ups, for the operator", () => {
  it("count every alarm of a run, and every stream and runner report that reaches its object", async () => {
    const id = await startRun({ prompt: "counted", attempts: 1, agent: "demo" });
    const started = await wakeUps(id);
    expect(started.id).toBe(id);

    // Every step of the attempt (create, install, seed, agent, collect, each poll) ran in an alarm.
    await waitForRun(id, settled);
    const ended = await wakeUps(id);
    expect(ended.alarms).toBeGreaterThan(started.alarms);
    expect(ended.alarms).toBeGreaterThanOrEqual(5);

    // Reading the counters is not a request the run pays for.
    expect((await wakeUps(id)).requests).toBe(ended.requests);

    // An event stream opened on the run is one request.
    const sse = await api(`/api/runs/${id}/events`, { headers: { accept: "text/event-stream" } });
    expect(sse.status).toBe(200);
    await sse.body!.cancel();
    expect((await wakeUps(id)).requests).toBe(ended.requests + 1);

    // So is a runner report (here every report is lost on the way, so the test sends one itself).
    const report = new URL(await ingestUrl(env, id, 1, 1));
    await api(report.pathname, { method: "POST", key: null, json: { job: "agent", try: 1, kind: "output", lines: [] } });
    expect((await wakeUps(id)).requests).toBe(ended.requests + 2);
  });

  it("are the operator's only: refused without a key and with an account's admin key", async () => {
    const id = await startRun({ prompt: "not yours to meter", attempts: 1, agent: "demo" });
    expect((await api(`/api/admin/runs/${id}/stats`, { key: null })).status).toBe(401);
    expect((await api(`/api/admin/runs/${id}/stats`, { key: DEV_KEY })).status).toBe(403);
    expect((await api(`/api/admin/runs/run_${"a".repeat(20)}/stats`, { key: ADMIN_TOKEN })).status).toBe(404);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
