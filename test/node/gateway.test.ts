// The credential gateway, end to end under `npm start` in API-key mode, with the demo agent making real
// streaming calls to a local fake of the Messages API: the key reaches the fake and never a sandbox;
// usage is recorded per attempt; a run over its budget has its calls refused and its attempts end with
// reason `budget`; a gateway token dies with its attempt.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import type { Env } from "../../src/env.ts";
import { llmGatewayUrl } from "../../src/signed-urls.ts";
import { ACCOUNT_HEADERS, defaultScript, startFakeAnthropic, type MessagesRequestBody } from "../../tools/fake-anthropic/server.ts";
import { runToEnd, startService, type Service } from "../support/service.ts";

const REAL_KEY = "test-gateway-key-0123456789abcdef";
const SIGNING_SECRET = "gateway-test-signing-secret-0123456789";
const ADMIN_TOKEN = "gateway-test-admin-token-0123456789";
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let service: Service;

/** A request whose user text starts with `big:` is answered as a big, slow one: 100k input tokens, 40 output, in 2 s. */
const userText = (body: MessagesRequestBody) => {
  const first = body.messages?.[0]?.content;
  return typeof first === "string" ? first : "";
};

beforeAll(async () => {
  fake = await startFakeAnthropic({
    port: 0,
    script: (body, ctx) =>
      userText(body).startsWith("big:")
        ? { blocks: [{ type: "text", text: "a slow and expensive answer ".repeat(6) }], usage: { input_tokens: 100_000, output_tokens: 40 }, streamDelayMs: 200 }
        : defaultScript(body, ctx),
  });
  // Open egress (Tier 3): the gateway is used only when sandboxes reach the Worker.
  service = await startService({
    LOCAL_SANDBOX_PROFILE: "lenient",
    ANTHROPIC_API_KEY: REAL_KEY,
    ANTHROPIC_BASE_URL: fake.url,
    POLL_INTERVAL_MS: "1000",
    MULTISHOT_SIGNING_SECRET: SIGNING_SECRET,
    ADMIN_TOKEN,
  });
});
afterAll(async () => {
  await service?.close();
  await fake?.close();
});

const finished = (body: Record<string, unknown>) => runToEnd(service, body);

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

/** Starts a run whose one attempt's agent waits forever, and gives its gateway URL once the agent runs. */
async function hangingAttempt(limits: Record<string, unknown> = {}): Promise<{ runId: string; gateway: string }> {
  const res = await service.api("/api/runs", { method: "POST", json: { agent: "demo", prompt: "wait [hang]", attempts: 1, limits } });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  await expect
    .poll(async () => ((await (await service.api(`/api/runs/${id}`)).json()) as RunView).rounds[0]!.attempts[0]!.status, { timeout: 60_000 })
    .toBe("running_agent");
  const gateway = await llmGatewayUrl({ MULTISHOT_SIGNING_SECRET: SIGNING_SECRET, PUBLIC_URL: service.url } as Env, id, 1, 1);
  return { runId: id, gateway };
}

/** One streamed Messages API call of the big kind: 300,000 bytes of prompt (about 100k tokens). */
const bigCall = (gateway: string, signal?: AbortSignal) =>
  fetch(`${gateway}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "multishot-gateway", "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 1000, stream: true, messages: [{ role: "user", content: `big:${"x".repeat(300_000)}` }] }),
    ...(signal ? { signal } : {}),
  });

const attemptOf = async (runId: string) => ((await (await service.api(`/api/runs/${runId}`)).json()) as RunView).rounds[0]!.attempts[0]!;

const messageCalls = () => fake.requests.filter((r) => r.path.startsWith("/v1/messages") && !r.path.includes("count_tokens"));

describe("the credential gateway", () => {
  it("forwards the agents' calls with the real key, streams answers back, and records usage per attempt", async () => {
    const before = messageCalls().length;
    const run = await finished({ prompt: "ask the model [llm:2]", attempts: 2 });
    expect(run.status).toBe("awaiting_pick");
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
    // Nor is the attempt's gateway URL on disk: the runner read it from its env file and deleted that.
    const gateway = await llmGatewayUrl({ MULTISHOT_SIGNING_SECRET: SIGNING_SECRET, PUBLIC_URL: service.url } as Env, run.id, 1, 1);
    const jobsDir = join(service.sandboxRoot, "sandboxes", run.rounds[0]!.attempts[0]!.sandboxId!, "home", ".multishot", "jobs");
    expect(readFileSync(join(jobsDir, "agent.sh"), "utf8")).not.toContain("ANTHROPIC");
    expect(readdirSync(jobsDir)).not.toContain("agent.env.json");
    expect(filesContaining(service.sandboxRoot, gateway.split("/").pop()!)).toEqual([]);
    expect(JSON.stringify(run) + (await (await service.api(`/api/runs/${run.id}/events`)).text())).not.toContain(REAL_KEY);
    expect(filesContaining(service.stateDir, REAL_KEY)).toEqual([]);

    // The attempt is over: its gateway token is dead.
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

  it("counts a call whose client hangs up mid-stream: its input at once, the rest read to the end", async () => {
    const { runId, gateway } = await hangingAttempt({ budgetUsd: 5 });
    const before = fake.requests.length;
    for (let i = 0; i < 3; i++) {
      const hangUp = new AbortController();
      const res = await bigCall(gateway, hangUp.signal);
      expect(res.status).toBe(200);
      // The first events arrive; then the client goes away, as a killed agent would.
      const reader = res.body!.getReader();
      await reader.read();
      hangUp.abort();
    }
    // Every call is counted whole: 100k input tokens and 40 output each, read off the upstream's
    // answer by the gateway after the client had gone.
    await expect.poll(async () => (await attemptOf(runId)).usage, { timeout: 20_000 }).toMatchObject({ calls: 3, inputTokens: 300_000, outputTokens: 120 });
    const usage = (await attemptOf(runId)).usage!;
    expect(usage.costUsd).toBeCloseTo(3 * (100_000 * 3 + 40 * 15) / 1_000_000, 6);
    // The upstream finished each answer: the gateway kept reading it.
    const calls = fake.requests.slice(before).filter((r) => r.path === "/v1/messages");
    expect(calls.map((r) => r.completed)).toEqual([true, true, true]);
    await service.api(`/api/runs/${runId}/cancel`, { method: "POST" });
  });

  it("lets parallel calls near the budget through one at a time, then refuses past it", async () => {
    // $0.50: each big call may cost about $0.32 (its size, all of max_tokens) and costs $0.30.
    const { runId, gateway } = await hangingAttempt({ budgetUsd: 0.5 });
    const before = messageCalls().length;
    const answers = await Promise.all([bigCall(gateway), bigCall(gateway), bigCall(gateway)]);
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 429, 429]);
    for (const r of answers.filter((r) => r.status === 429)) {
      expect(r.headers.get("retry-after")).toBe("2");
      expect(((await r.json()) as { error: { type: string; message: string } }).error).toMatchObject({ type: "rate_limit_error", message: expect.stringContaining("near the budget") });
    }
    await Promise.all(answers.filter((r) => r.status === 200).map((r) => r.text()));
    expect(messageCalls().length - before).toBe(1);
    await expect.poll(async () => (await attemptOf(runId)).usage?.calls, { timeout: 10_000 }).toBe(1);

    // Alone, the next call may go over what is left ($0.20); after it the run has spent its budget.
    const second = await bigCall(gateway);
    expect(second.status).toBe(200);
    await second.text();
    await expect.poll(async () => (await attemptOf(runId)).status, { timeout: 10_000 }).toBe("failed");
    const a = await attemptOf(runId);
    expect(a.error).toMatch(/^budget: the run's model calls cost \$0\.60\d\d of its \$0\.5 budget$/);
    const third = await fetch(`${gateway}/v1/messages`, { method: "POST", body: "{}" });
    expect(third.status).toBe(403);
    expect(messageCalls().length - before).toBe(2);
  });

  it("has a default run budget and a monthly cap per account, shown in /api/accounts/me and enforced", async () => {
    const me = async () =>
      (await (await service.api("/api/accounts/me")).json()) as { id: string; limits: { runBudgetUsd: number; monthlyBudgetUsd: number }; usage: { monthSpentUsd: number } };
    const account = await me();
    expect(account.limits).toMatchObject({ runBudgetUsd: 10, monthlyBudgetUsd: 100 });
    // The runs above spent at least $0.90 + $0.60 this month.
    expect(account.usage.monthSpentUsd).toBeGreaterThan(1.5);
    const patch = (limits: Record<string, unknown>) =>
      fetch(`${service.url}/api/accounts/${account.id}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ limits }),
      });

    // A run that sets no budget gets the account's.
    expect((await patch({ runBudgetUsd: 0.000001 })).status).toBe(200);
    expect((await me()).limits.runBudgetUsd).toBe(0.000001);
    const before = messageCalls().length;
    const run = await finished({ prompt: "spend the default [llm:3]", attempts: 1 });
    expect(run.rounds[0]!.attempts[0]!.error).toMatch(/^budget: the run's model calls cost \$\d+\.\d{4} of its \$0\.000001 budget$/);
    expect(messageCalls().length - before).toBe(1);

    // Past the month's cap no run of the account gets a call through.
    expect((await patch({ runBudgetUsd: null, monthlyBudgetUsd: 1 })).status).toBe(200);
    expect((await me()).limits).toMatchObject({ runBudgetUsd: 10, monthlyBudgetUsd: 1 });
    const capped = await finished({ prompt: "spend the month [llm:1]", attempts: 1 });
    expect(capped.rounds[0]!.attempts[0]!.error).toMatch(/^budget: this account's runs made this month have spent \$\d+\.\d{4} of its \$1 monthly budget$/);
    expect(messageCalls().length - before).toBe(1);
    expect((await patch({ monthlyBudgetUsd: null })).status).toBe(200);
  });

  it("forwards only the Messages API's own request headers, and keeps the operator's organization out of answers", async () => {
    const { runId, gateway } = await hangingAttempt();
    const res = await fetch(`${gateway}/v1/messages`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "fine-grained-tool-streaming-2025-05-14",
        "user-agent": "claude-cli/2.0.0 (external, sdk-cli)",
        "x-stainless-lang": "js",
        cookie: "session=from-the-sandbox",
        "x-forwarded-for": "10.0.0.7",
        "x-probe-from-sandbox": "1",
      },
      body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 16, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(200);
    await res.text();
    const seen = fake.requests[fake.requests.length - 1]!.headers;
    expect(seen).toMatchObject({ "anthropic-version": "2023-06-01", "anthropic-beta": "fine-grained-tool-streaming-2025-05-14", "x-stainless-lang": "js", "x-api-key": REAL_KEY });
    for (const name of ["cookie", "x-forwarded-for", "x-probe-from-sandbox"]) expect(seen[name], name).toBeUndefined();
    // The answer keeps its request id, not the organization's id or rate limits.
    expect(res.headers.get("request-id")).toMatch(/^req_/);
    for (const name of Object.keys(ACCOUNT_HEADERS)) expect(res.headers.get(name), name).toBeNull();
    await service.api(`/api/runs/${runId}/cancel`, { method: "POST" });
  });
});
