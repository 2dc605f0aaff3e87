// OAuth-token mode (CLAUDE_CODE_OAUTH_TOKEN, no ANTHROPIC_API_KEY), under `npm start`: the token reaches
// the agent process and nothing else. No file in the sandbox holds it, encoded or not (before, the agent's
// job script exported it, and `verify: "base64 -w0 ~/.multishot/jobs/agent.sh"` put it in the run's
// answer past the redaction of literal values). With a second account the token would be every tenant's:
// refused unless the operator opts in with CLAUDE_CODE_OAUTH_SHARED=1.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeAnthropic } from "../../tools/fake-anthropic/server.ts";
import { runToEnd, startService, type Service } from "../support/service.ts";

// Not a real token's shape: only unique enough to be searched for.
const TOKEN = "oauth-token-for-tests-only-0123456789";
const ADMIN_TOKEN = "oauth-test-admin-token-0123456789";
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let service: Service;

beforeAll(async () => {
  fake = await startFakeAnthropic({ port: 0 });
  // Open egress (Tier 3): the agent calls the fake model API itself.
  service = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", CLAUDE_CODE_OAUTH_TOKEN: TOKEN, ANTHROPIC_BASE_URL: fake.url, ADMIN_TOKEN, POLL_INTERVAL_MS: "1000" });
});
afterAll(async () => {
  await service?.close();
  await fake?.close();
});

const finished = (body: Record<string, unknown>) => runToEnd(service, body);

describe("OAuth-token mode", () => {
  it("gives the token to the agent process alone: no job script, env file or later job sees it", async () => {
    const before = fake.requests.length;
    const run = await finished({
      prompt: "ask the model [llm:1]",
      attempts: 1,
      verify: 'env | grep -c CLAUDE_CODE_OAUTH_TOKEN; ls -a ~/.multishot/jobs | tr "\\n" " "; echo; base64 -w0 ~/.multishot/jobs/agent.sh',
    });
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status, a.error ?? "").toBe("done");
    // The agent had the token: it called the model with it, as claude-code does.
    const calls = fake.requests.slice(before).filter((r) => r.path === "/v1/messages");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);

    // What verify (the tenant's own code, after the agent) could read holds no trace of it.
    const [inEnv, listing, script] = a.verify!.outputTail.trim().split("\n");
    expect(inEnv).toBe("0");
    const agentSh = Buffer.from(script!, "base64").toString("utf8");
    expect(agentSh).toContain("multishot-demo-agent");
    expect(agentSh).not.toContain(TOKEN);
    expect(agentSh).not.toContain("CLAUDE_CODE_OAUTH_TOKEN");
    expect(listing).toContain("agent.sh");
    expect(listing).not.toContain("agent.env.json");
    // No file of the sandbox (nor the local server's record of its session commands) holds it.
    expect(spawnSync("grep", ["-rl", TOKEN, join(service.sandboxRoot, "sandboxes", a.sandboxId!)], { encoding: "utf8" }).stdout).toBe("");
    const events = await (await service.api(`/api/runs/${run.id}/events`)).text();
    expect(JSON.stringify(run) + events).not.toContain(TOKEN);
  });

  it("refuses claude-code once a second account exists, unless the operator shares the token knowingly", async () => {
    const created = await fetch(`${service.url}/api/accounts`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "another tenant" }),
    });
    expect(created.status).toBe(201);
    const res = await service.api("/api/runs", { method: "POST", json: { agent: "claude-code", prompt: "Write hello.txt", attempts: 1 } });
    expect(res.status).toBe(422);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("agent_unavailable");
    expect(error.message).toMatch(/OAuth token .* 2 accounts/);
    expect(error.message).toContain("CLAUDE_CODE_OAUTH_SHARED=1");
    expect(error.message).not.toContain(TOKEN);
    // The demo agent needs no credential: it runs, without the token.
    const before = fake.requests.length;
    const run = await finished({ prompt: "no model calls", attempts: 1 });
    expect(run.status).toBe("awaiting_pick");
    expect(fake.requests.length).toBe(before);
  });
});
