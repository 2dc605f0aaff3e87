// The credential gateway, end to end under `npm start` in API-key mode, with the demo agent making real
// streaming calls to a local fake of the Messages API: the key reaches the fake and never a sandbox;
// usage is recorded per attempt; a run over its budget has its calls refused and its attempts end with
// reason `budget`; a gateway token dies with its attempt.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { startFakeAnthropic } from "../../tools/fake-anthropic/server.ts";
import { startService, type Service } from "../support/service.ts";

const REAL_KEY = "test-gateway-key-0123456789abcdef";
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let service: Service;

beforeAll(async () => {
  fake = await startFakeAnthropic({ port: 0 });
  // Open egress (Tier 3): the gateway is used only when sandboxes reach the Worker.
  service = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: fake.url, POLL_INTERVAL_MS: "1000" });
});
afterAll(async () => {
  await service?.close();
  await fake?.close();
});

async function finished(body: Record<string, unknown>): Promise<RunView> {
  const res = await service.api("/api/runs", { method: "POST", json: { agent: "demo", ...body } });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  const until = Date.now() + 90_000;
  for (;;) {
    const run = (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
    if (run.status !== "running") return run;
    if (Date.now() > until) throw new Error(`run did not finish: ${JSON.stringify(run, null, 2)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every file under a folder that contains the string. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size < 20_000_000 && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

const messageCalls = () => fake.requests.filter((r) => r.path.startsWith("/v1/messages") && !r.path.includes("count_tokens"));

describe("the credential gateway", () => {
  it("forwards the agents' calls with the real key, streams answers back, and records usage per attempt", async () => {
    const before = messageCalls().length;
    const run = await finished({ prompt: "ask the model [llm:2]", attempts: 2 });
    expect(run.status).toBe("succeeded");
    const calls = messageCalls().slice(before);
    expect(calls).toHaveLength(4);
    for (const call of calls) expect(call.headers["x-api-key"]).toBe(REAL_KEY);
    for (const a of run.rounds[0]!.attempts) {
      expect(a.usage).toMatchObject({ calls: 2 });
      expect(a.usage!.inputTokens).toBeGreaterThan(0);
      expect(a.usage!.outputTokens).toBeGreaterThan(0);
      expect(a.usage!.costUsd).toBeGreaterThan(0);
      // The streamed answer reached the agent unchanged: it quotes the fake model's text.
      const events = await (await service.api(`/api/runs/${run.id}/events`)).text();
      expect(events).toContain("model call 2:");
    }
    // The key is in no sandbox file (scripts, env, logs), no API answer, no stored state.
    expect(filesContaining(service.sandboxRoot, REAL_KEY)).toEqual([]);
    const agentScript = readFileSync(join(service.sandboxRoot, "sandboxes", run.rounds[0]!.attempts[0]!.sandboxId!, "home", ".multishot", "jobs", "agent.sh"), "utf8");
    expect(agentScript).toMatch(/export ANTHROPIC_BASE_URL='http:\/\/127\.0\.0\.1:\d+\/llm\/run_/);
    expect(agentScript).toContain("export ANTHROPIC_API_KEY='multishot-gateway'");
    expect(JSON.stringify(run) + (await (await service.api(`/api/runs/${run.id}/events`)).text())).not.toContain(REAL_KEY);
    expect(filesContaining(service.stateDir, REAL_KEY)).toEqual([]);

    // The attempt is over: its gateway token is dead.
    const gateway = /export ANTHROPIC_BASE_URL='([^']+)'/.exec(agentScript)![1]!;
    const late = await fetch(`${gateway}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(late.status).toBe(403);
    expect(((await late.json()) as { error: { message: string } }).error.message).toContain("the attempt is over");
    // Only the two Messages API calls, to the configured origin: no other host, no other endpoint.
    for (const [method, path] of [
      ["POST", "//evil.example/v1/messages"],
      ["POST", "/v1/messages/batches"],
      ["GET", "/v1/files"],
    ] as const) {
      const before = fake.requests.length;
      const res = await fetch(`${gateway}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) });
      expect(res.status).toBe(404);
      expect(fake.requests.length).toBe(before);
    }
    const forged = await fetch(gateway.replace(/[^/]+$/, "AAAA") + "/v1/messages", { method: "POST", body: "{}" });
    expect(forged.status).toBe(401);
  });

  it("refuses calls once the run's budget is spent, and ends its attempts with reason budget", async () => {
    const before = messageCalls().length;
    const run = await finished({ prompt: "spend it all [llm:5]", attempts: 1, limits: { budgetUsd: 0.000001 } });
    const a = run.rounds[0]!.attempts[0]!;
    expect(run.status).toBe("failed");
    expect(a.status).toBe("failed");
    expect(a.error).toMatch(/^budget: the run's model calls cost \$\d+\.\d{4} of its \$0\.000001 budget$/);
    // The first call went through; the agent never got to make all five.
    const made = messageCalls().length - before;
    expect(made).toBeGreaterThanOrEqual(1);
    expect(made).toBeLessThan(5);
    expect(a.usage!.calls).toBe(made);
    // No next round on a spent budget: its agents could make no call.
    const next = await service.api(`/api/runs/${run.id}/rounds`, { method: "POST", json: { prompt: "again" } });
    expect(next.status).toBe(409);
    expect(((await next.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "budget_spent", message: expect.stringMatching(/^budget: .*: no new round$/) });
  });
});
