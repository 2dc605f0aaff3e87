// The claude-code agent kind, for real: the seed's install recipe in a local sandbox (the curl installer
// cannot reach the internet here, so the npm fallback installs the real CLI), then the real `claude`
// against a local fake of Anthropic's Messages API, through multishot's credential gateway. Its file reaches the attempt's diff, and its turns
// and cost reach the API; the API key never does.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { startFakeAnthropic } from "../../tools/fake-anthropic/server.ts";
import { startService, type Service } from "../support/service.ts";

const ANTHROPIC_KEY = "sk-test-fake-0123456789";
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let service: Service;

beforeAll(async () => {
  fake = await startFakeAnthropic({ port: 0 });
  // Open egress (Tier 3): the CLI reaches the fake model API through the credential gateway.
  service = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: ANTHROPIC_KEY });
}, 120_000);
afterAll(async () => {
  await service?.close();
  await fake?.close();
});

describe("the claude-code agent", () => {
  it("installs with the npm fallback, runs against the Messages API, and its work shows in the diff", { timeout: 600_000 }, async () => {
    const res = await service.api("/api/runs", {
      method: "POST",
      json: { prompt: "Write hello.txt", agent: "claude-code", attempts: 1, limits: { maxTurns: 3 } },
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    let run: RunView;
    const until = Date.now() + 540_000;
    for (;;) {
      run = (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
      if (run.status !== "running") break;
      if (Date.now() > until) throw new Error(`run did not finish: ${JSON.stringify(run, null, 2)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.error).toBeNull();
    expect(a.status).toBe("done");
    expect(a.summary).toMatchObject({ isError: false, finalMessage: "Done: wrote hello.txt." });
    expect(a.summary!.turns).toBeGreaterThanOrEqual(2);
    expect(a.summary!.costUsd).toBeGreaterThan(0);
    expect(a.diffStats).toMatchObject({ files: 1, additions: 1 });

    const patch = await (await service.api(`/api/runs/${id}/rounds/1/attempts/1/diff`)).text();
    expect(patch).toContain("+++ b/hello.txt");
    expect(patch).toContain("+hello from the fake model");

    // The seed's recipe: the official installer failed here, then npm installed the CLI.
    const installLog = readFileSync(join(service.sandboxRoot, "sandboxes", a.sandboxId!, "home", ".multishot", "jobs", "install.out"), "utf8");
    expect(installLog).toContain("install.sh did not work; installing @anthropic-ai/claude-code@2.1.332 with npm");
    expect(installLog).toContain("2.1.332 (Claude Code)");
    // The pinned version, installed (no snapshot had it), and the attempt says so.
    expect(a.agentSetup).toMatchObject({ how: "installed", version: "2.1.332", snapshot: null });
    expect(a.agentSetup!.seconds).toBeGreaterThan(0);
    expect(a.agentSetup!.text).toMatch(/^2\.1\.332 installed in \d+(\.\d)? s$/);

    // The real CLI called the fake with the key the Worker was given; the key shows nowhere in the API.
    const calls = fake.requests.filter((r) => r.path === "/v1/messages");
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[0]!.headers["x-api-key"]).toBe(ANTHROPIC_KEY);
    const events = await (await service.api(`/api/runs/${id}/events`)).text();
    expect(events).toContain('"name":"Write"');
    expect(JSON.stringify(run) + events).not.toContain(ANTHROPIC_KEY);
    // It went through the credential gateway: the key never entered the sandbox, and the usage the fake
    // reported is counted against the attempt.
    expect(a.usage!.calls).toBe(calls.length);
    expect(a.usage!.costUsd).toBeGreaterThan(0);
    // The CLI called the gateway (the fake saw the real key), and the gateway URL it was given is in no
    // file: the runner read its env file and deleted it before starting the agent.
    const agentJob = readFileSync(join(service.sandboxRoot, "sandboxes", a.sandboxId!, "home", ".multishot", "jobs", "agent.sh"), "utf8");
    expect(agentJob).not.toContain("ANTHROPIC_BASE_URL");
    expect(spawnSync("grep", ["-rl", "/llm/run_", service.sandboxRoot], { encoding: "utf8" }).stdout).toBe("");
    const found = spawnSync("grep", ["-rl", ANTHROPIC_KEY, service.sandboxRoot], { encoding: "utf8" });
    expect(found.status).toBe(1); // grep: no match anywhere
    expect(found.stdout).toBe("");
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
