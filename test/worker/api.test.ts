// The runs API refuses what it cannot accept with a clear JSON error, and keeps accounts apart.
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, api, startRun } from "./helpers.ts";

async function error(res: Response) {
  return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
}

async function otherAccountKey(): Promise<string> {
  const res = await api("/api/accounts", { method: "POST", json: { name: "other" }, key: ADMIN_TOKEN });
  expect(res.status).toBe(201);
  return ((await res.json()) as { key: { key: string } }).key.key;
}

describe("the runs API", () => {
  it("cuts off a body sent without Content-Length once it passes the limit, with 413", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM runs").first<{ n: number }>();
    // 3 MB of a run request, chunked: no length is declared, so only reading it can tell.
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"prompt":"'));
      },
      pull(c) {
        if (sent >= 3_000_000) {
          c.enqueue(new TextEncoder().encode('"}'));
          return c.close();
        }
        sent += chunk.byteLength;
        c.enqueue(chunk);
      },
    });
    const res = await exports.default.fetch("http://multishot.test/api/runs", {
      method: "POST",
      headers: { authorization: `Bearer ${env.MULTISHOT_DEV_API_KEY}`, "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    const { status, body: answer } = await error(res);
    expect(status).toBe(413);
    expect(answer.error.code).toBe("body_too_large");
    // It stopped reading near the limit, not at the end.
    expect(sent).toBeLessThan(3_000_000);
    const after = await env.DB.prepare("SELECT count(*) AS n FROM runs").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });

  it("wants an API key", async () => {
    expect(await error(await api("/api/runs", { key: null }))).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
    expect(await error(await api("/api/runs", { key: "wrong" }))).toMatchObject({ status: 401, body: { error: { code: "unauthorized", message: "invalid API key" } } });
    // The operator's token is no account's key, and says so.
    expect(await error(await api("/api/runs", { key: ADMIN_TOKEN }))).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden", message: "ADMIN_TOKEN belongs to no account: runs, keys and webhooks need an account's API key" } },
    });
  });

  it("says which field of a bad run request is wrong, and starts nothing", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM runs").first<{ n: number }>();
    const cases: [unknown, string, string][] = [
      [{}, "validation_failed", "prompt"],
      [{ prompt: "   " }, "validation_failed", "prompt must not be empty"],
      [{ prompt: "x", attempts: 9 }, "validation_failed", "attempts"],
      [{ prompt: "x", attempts: 0 }, "validation_failed", "attempts"],
      [{ prompt: "x", agent: "gpt" }, "validation_failed", "agent"],
      [{ prompt: "x", attempts: 2, variations: [{ model: "a" }] }, "validation_failed", "one entry per attempt"],
      [{ prompt: "x", base: { git: "file:///etc" } }, "validation_failed", "base"],
      [{ prompt: "x", surprise: true }, "validation_failed", "surprise"],
      [{ prompt: "x", limits: { attemptMinutes: -1 } }, "validation_failed", "limits.attemptMinutes"],
      // Daytona's rule, said as such: resources come with an image, and a snapshot brings its own.
      [{ prompt: "x", sandbox: { snapshot: "s1", resources: { cpu: 2 } } }, "validation_failed", "sandbox.resources: resources come with an image, not a snapshot"],
      [{ prompt: "x", sandbox: { resources: {} } }, "validation_failed", "give at least one of cpu, memory, disk"],
      [{ prompt: "x", sandbox: { resources: { cpu: 0.5 } } }, "validation_failed", "sandbox.resources.cpu"],
      [{ prompt: "x", sandbox: { snapshot: "bad name" } }, "validation_failed", "sandbox.snapshot"],
    ];
    for (const [body, code, mentions] of cases) {
      const { status, body: err } = await error(await api("/api/runs", { method: "POST", json: body }));
      expect(status, JSON.stringify(body)).toBe(400);
      expect(err.error.code).toBe(code);
      expect(err.error.message + JSON.stringify(err)).toContain(mentions);
    }
    const notJson = await api("/api/runs", { method: "POST", body: "{nope", headers: { "content-type": "application/json" } });
    expect(await error(notJson)).toMatchObject({ status: 400, body: { error: { code: "invalid_json" } } });
    const notJsonType = await api("/api/runs", { method: "POST", body: "prompt=x", headers: { "content-type": "text/plain" } });
    expect((await error(notJsonType)).status).toBe(415);
    const huge = await api("/api/runs", { method: "POST", json: { prompt: "x".repeat(1_100_000) } });
    expect(await error(huge)).toMatchObject({ status: 413, body: { error: { code: "body_too_large" } } });
    // The default agent, claude-code, on a service with no Anthropic credential: refused at once, not
    // failed minutes later in a sandbox.
    expect(env.ANTHROPIC_API_KEY ?? env.CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined();
    const noCredential = await error(await api("/api/runs", { method: "POST", json: { prompt: "x" } }));
    expect(noCredential).toMatchObject({ status: 422, body: { error: { code: "agent_unavailable" } } });
    expect(noCredential.body.error.message).toContain('needs ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN set on this service');
    const after = await env.DB.prepare("SELECT count(*) AS n FROM runs").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });

  it("answers 404 for a run that does not exist or belongs to another account", async () => {
    expect((await error(await api("/api/runs/run_aaaaaaaaaaaaaaaaaaaa"))).status).toBe(404);
    expect((await error(await api("/api/runs/../../etc"))).status).toBe(404);
    const other = await otherAccountKey();
    const id = await startRun({ prompt: "someone else's run", attempts: 1, agent: "demo" }, other);
    expect((await error(await api(`/api/runs/${id}`))).status).toBe(404);
    expect((await error(await api(`/api/runs/${id}/cancel`, { method: "POST" }))).status).toBe(404);
    const mine = await api(`/api/runs/${id}`, { key: other });
    expect(mine.status).toBe(200);
    const listed = (await (await api("/api/runs?limit=100")).json()) as { runs: { id: string }[] };
    expect(listed.runs.map((r) => r.id)).not.toContain(id);
    await api(`/api/runs/${id}/cancel`, { method: "POST", key: other });
  });

  it("lists runs newest first in cursor pages, filtered by status", async () => {
    const key = await otherAccountKey();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await startRun({ prompt: `listed ${i} [hang]`, attempts: 1, agent: "demo" }, key));
    const first = (await (await api("/api/runs?limit=2", { key })).json()) as { runs: { id: string }[]; nextCursor: string };
    expect(first.runs.map((r) => r.id)).toEqual([ids[2], ids[1]]);
    expect(first.nextCursor).toBeTruthy();
    const second = (await (await api(`/api/runs?limit=2&cursor=${first.nextCursor}`, { key })).json()) as {
      runs: { id: string }[];
      nextCursor: string | null;
    };
    expect(second.runs.map((r) => r.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
    await api(`/api/runs/${ids[1]}/cancel`, { method: "POST", key });
    const cancelled = (await (await api("/api/runs?status=cancelled", { key })).json()) as { runs: { id: string }[] };
    expect(cancelled.runs.map((r) => r.id)).toEqual([ids[1]]);
    expect((await error(await api("/api/runs?status=bogus", { key }))).status).toBe(400);
    expect((await error(await api("/api/runs?cursor=zzz", { key }))).status).toBe(400);
    for (const id of ids) await api(`/api/runs/${id}/cancel`, { method: "POST", key });
  });
});
