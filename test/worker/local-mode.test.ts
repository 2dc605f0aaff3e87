// Local mode is a setting (MULTISHOT_LOCAL=1, which npm start and the test setup give), never inferred
// from a missing Daytona key: a deployment that forgot DAYTONA_API_KEY and MULTISHOT_SIGNING_SECRET must
// not accept the dev key nor sign URLs with the development secret anyone can read in this repository.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import type { Env } from "../../src/env.ts";

async function call(e: Env, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`http://multishot.test${path}`, init), e, ctx);
  await waitOnExecutionContext(ctx);
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

describe("local mode", () => {
  const devKey = { authorization: `Bearer ${env.MULTISHOT_DEV_API_KEY}` };

  it("takes the dev key only when MULTISHOT_LOCAL says so", async () => {
    expect((await call(env as Env, "/api/runs", { headers: devKey })).status).toBe(200);
    const deployed = { ...(env as Env), MULTISHOT_LOCAL: undefined };
    const res = await call(deployed, "/api/runs", { headers: devKey });
    expect(res.status).toBe(401);
    expect(res.body.error!.code).toBe("unauthorized");
  });

  it("refuses the signed routes of a deployment without MULTISHOT_SIGNING_SECRET, saying so", async () => {
    const deployed = { ...(env as Env), MULTISHOT_LOCAL: undefined, MULTISHOT_SIGNING_SECRET: undefined };
    const res = await call(deployed, "/ingest/run_x/1/1/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ job: "agent", try: 1, kind: "exit", exitCode: 0 }),
    });
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({ code: "misconfigured", message: expect.stringContaining("MULTISHOT_SIGNING_SECRET is not set") });
    const gateway = await call(deployed, "/llm/run_x/1/1/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/v1/messages", { method: "POST", body: "{}" });
    expect(gateway.status).toBe(503);
  });
});
