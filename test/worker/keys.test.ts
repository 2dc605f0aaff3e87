// Accounts and API keys: made by the operator and by account admins, shown once, stored hashed, scoped,
// revocable; and Idempotency-Key on creating POSTs.
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/crypto.ts";
import worker from "../../src/index.ts";
import { ADMIN_TOKEN, api } from "./helpers.ts";

async function newAccount(): Promise<{ accountId: string; adminKey: string }> {
  const res = await api("/api/accounts", { method: "POST", json: { name: "team" }, key: ADMIN_TOKEN });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { account: { id: string }; key: { key: string; scopes: string[] } };
  expect(body.key.scopes).toEqual(["runs:read", "runs:write", "admin"]);
  return { accountId: body.account.id, adminKey: body.key.key };
}

async function code(res: Response): Promise<[number, string]> {
  return [res.status, ((await res.json()) as { error: { code: string } }).error.code];
}

describe("accounts and API keys", () => {
  it("only the operator's ADMIN_TOKEN creates accounts, and it can do nothing else", async () => {
    expect(await code(await api("/api/accounts", { method: "POST", json: { name: "x" } }))).toEqual([403, "forbidden"]);
    expect(await code(await api("/api/accounts", { method: "POST", json: { name: "x" }, key: "nope" }))).toEqual([401, "unauthorized"]);
    expect(await code(await api("/api/runs", { key: ADMIN_TOKEN }))).toEqual([403, "forbidden"]);
    expect(await code(await api("/api/keys", { key: ADMIN_TOKEN }))).toEqual([403, "forbidden"]);
  });

  it("shows a key once, stores only its hash, and lists it without the secret", async () => {
    const { accountId, adminKey } = await newAccount();
    const res = await api("/api/keys", { method: "POST", json: { name: "ci", scopes: ["runs:read"] }, key: adminKey });
    expect(res.status).toBe(201);
    const made = (await res.json()) as { id: string; key: string; prefix: string; scopes: string[] };
    expect(made.key).toMatch(/^msk_[a-z2-7]{8}_[a-z2-7]{32}$/);
    expect(made.scopes).toEqual(["runs:read"]);

    const row = await env.DB.prepare("SELECT account_id, prefix, hash FROM api_keys WHERE id = ?").bind(made.id).first<Record<string, string>>();
    expect(row).toEqual({ account_id: accountId, prefix: made.prefix, hash: await sha256Hex(made.key) });
    const dump = JSON.stringify(await env.DB.prepare("SELECT * FROM api_keys").all());
    expect(dump).not.toContain(made.key);

    const listed = (await (await api("/api/keys", { key: adminKey })).json()) as { keys: Record<string, unknown>[] };
    expect(listed.keys.map((k) => k.id)).toContain(made.id);
    expect(JSON.stringify(listed)).not.toContain(made.key);
    expect(listed.keys.find((k) => k.id === made.id)).toMatchObject({ name: "ci", prefix: made.prefix, scopes: ["runs:read"], revokedAt: null });
  });

  it("enforces scopes: read-only keys read, cannot write, cannot manage keys", async () => {
    const { adminKey } = await newAccount();
    const made = (await (await api("/api/keys", { method: "POST", json: { scopes: ["runs:read"] }, key: adminKey })).json()) as { key: string };
    expect((await api("/api/runs", { key: made.key })).status).toBe(200);
    expect(await code(await api("/api/runs", { method: "POST", json: { prompt: "x", agent: "demo" }, key: made.key }))).toEqual([403, "forbidden"]);
    expect(await code(await api("/api/keys", { key: made.key }))).toEqual([403, "forbidden"]);
    const writer = (await (await api("/api/keys", { method: "POST", json: { scopes: ["runs:write"] }, key: adminKey })).json()) as { key: string };
    expect(await code(await api("/api/runs", { key: writer.key }))).toEqual([403, "forbidden"]);
  });

  it("refuses a revoked key, records when a key was last used, and keeps accounts apart", async () => {
    const a = await newAccount();
    const b = await newAccount();
    const made = (await (await api("/api/keys", { method: "POST", json: {}, key: a.adminKey })).json()) as { id: string; key: string };
    expect((await api("/api/runs", { key: made.key })).status).toBe(200);
    await expect
      .poll(async () => (await env.DB.prepare("SELECT last_used_at FROM api_keys WHERE id = ?").bind(made.id).first<{ last_used_at: number | null }>())?.last_used_at)
      .toBeGreaterThan(0);
    // Another account cannot see or revoke it.
    expect((await api(`/api/keys/${made.id}`, { method: "DELETE", key: b.adminKey })).status).toBe(404);
    expect((await api(`/api/keys/${made.id}`, { method: "DELETE", key: a.adminKey })).status).toBe(200);
    expect(await code(await api("/api/runs", { key: made.key }))).toEqual([401, "unauthorized"]);
    // A key that looks right but is not one.
    expect(await code(await api("/api/runs", { key: made.key.slice(0, -1) + (made.key.endsWith("a") ? "b" : "a") }))).toEqual([401, "unauthorized"]);
  });
});

describe("revoking a key", () => {
  it("ends the event streams and live sockets it holds open, at once", async () => {
    const { adminKey } = await newAccount();
    const made = (await (await api("/api/keys", { method: "POST", json: { name: "watcher", scopes: ["runs:read", "runs:write"] }, key: adminKey })).json()) as { id: string; key: string };
    const started = await api("/api/runs", { method: "POST", json: { prompt: "watched [hang]", agent: "demo", attempts: 1 }, key: made.key });
    expect(started.status).toBe(202);
    const runId = ((await started.json()) as { id: string }).id;

    const sse = await api(`/api/runs/${runId}/events`, { key: made.key, headers: { accept: "text/event-stream" } });
    expect(sse.status).toBe(200);
    const stream = sse.body!.pipeThrough(new TextDecoderStream()).getReader();
    expect((await stream.read()).value).toContain(": multishot run events");
    const live = await api(`/api/runs/${runId}/live`, { key: made.key, headers: { upgrade: "websocket" } });
    expect(live.status).toBe(101);
    const ws = live.webSocket!;
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
    ws.accept();
    // Another key's socket on the same run stays open.
    const other = await api(`/api/runs/${runId}/live`, { key: adminKey, headers: { upgrade: "websocket" } });
    const otherWs = other.webSocket!;
    let otherClosed = false;
    otherWs.addEventListener("close", () => (otherClosed = true));
    otherWs.accept();

    const revoked = await api(`/api/keys/${made.id}`, { method: "DELETE", key: adminKey });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { closedSockets: number }).closedSockets).toBe(1);
    expect(await closed).toEqual({ code: 4001, reason: "key revoked" });
    let text = "";
    for (let chunk = await stream.read(); !chunk.done; chunk = await stream.read()) text += chunk.value;
    expect(text).toContain("event: key.revoked");
    expect(otherClosed).toBe(false);
    otherWs.close(1000, "done");
    expect(await code(await api(`/api/runs/${runId}/events`, { key: made.key, headers: { accept: "text/event-stream" } }))).toEqual([401, "unauthorized"]);
    await api(`/api/runs/${runId}/cancel`, { method: "POST", key: adminKey });
  });
});

describe("Idempotency-Key", () => {
  it("answers the same key twice with the first answer and starts one run", async () => {
    const { accountId, adminKey } = await newAccount();
    const body = { prompt: "once only [hang]", agent: "demo", attempts: 1 };
    const headers = { "idempotency-key": "create-1" };
    const first = await api("/api/runs", { method: "POST", json: body, key: adminKey, headers });
    expect(first.status).toBe(202);
    const firstBody = await first.text();
    const second = await api("/api/runs", { method: "POST", json: body, key: adminKey, headers });
    expect(second.status).toBe(202);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(await second.text()).toBe(firstBody);
    const n = await env.DB.prepare("SELECT count(*) AS n FROM runs WHERE account_id = ?").bind(accountId).first<{ n: number }>();
    expect(n?.n).toBe(1);

    // The same key with another request is refused; another account's same key is its own.
    const other = await api("/api/runs", { method: "POST", json: { ...body, prompt: "different" }, key: adminKey, headers });
    expect(await code(other)).toEqual([422, "idempotency_key_reused"]);
    const b = await newAccount();
    const theirs = await api("/api/runs", { method: "POST", json: body, key: b.adminKey, headers });
    expect(theirs.status).toBe(202);
    expect(theirs.headers.get("idempotent-replayed")).toBeNull();

    // A refused request is remembered too: its answer replays, and it still created nothing.
    const bad = await api("/api/runs", { method: "POST", json: { prompt: "" }, key: adminKey, headers: { "idempotency-key": "bad-1" } });
    expect(bad.status).toBe(400);
    const badAgain = await api("/api/runs", { method: "POST", json: { prompt: "" }, key: adminKey, headers: { "idempotency-key": "bad-1" } });
    expect(badAgain.status).toBe(400);
    expect(badAgain.headers.get("idempotent-replayed")).toBe("true");

    for (const [key, text] of [
      [adminKey, firstBody],
      [b.adminKey, await theirs.text()],
    ] as const) {
      const { id } = JSON.parse(text) as { id: string };
      await api(`/api/runs/${id}/cancel`, { method: "POST", key });
    }
  });

  it("never stores a new API key: a replay answers without it, and says what to do", async () => {
    const { accountId, adminKey } = await newAccount();
    const headers = { "idempotency-key": "new-key-1" };
    const first = await api("/api/keys", { method: "POST", json: { name: "ci" }, key: adminKey, headers });
    expect(first.status).toBe(201);
    const made = (await first.json()) as { id: string; key: string };
    expect(made.key).toMatch(/^msk_/);
    // D1 holds no trace of it: not in the idempotency row, not anywhere else.
    const rows = await env.DB.prepare("SELECT * FROM idempotency_keys WHERE account_id = ?").bind(accountId).all();
    expect(rows.results).toHaveLength(1);
    expect(JSON.stringify(rows.results)).not.toContain(made.key);
    expect(JSON.stringify(rows.results)).not.toContain(made.key.split("_").pop());

    const again = await api("/api/keys", { method: "POST", json: { name: "ci" }, key: adminKey, headers });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const replayed = (await again.json()) as { id: string; key: string | null; keyShownOnce: string };
    expect(replayed).toMatchObject({ id: made.id, key: null });
    expect(replayed.keyShownOnce).toContain(`DELETE /api/keys/${made.id}`);
    // It made one key, which works.
    const keys = (await (await api("/api/keys", { key: adminKey })).json()) as { keys: { name: string }[] };
    expect(keys.keys.filter((k) => k.name === "ci")).toHaveLength(1);
    expect((await api("/api/runs", { key: made.key })).status).toBe(200);
  });

  it("purges answers older than a day with the cron sweep", async () => {
    const { accountId } = await newAccount();
    const day = 24 * 60 * 60_000;
    const insert = env.DB.prepare("INSERT INTO idempotency_keys (account_id, key, route, request_hash, status, response, created_at) VALUES (?, ?, 'POST /api/runs', 'h', 202, '{}', ?)");
    await env.DB.batch([insert.bind(accountId, "old", Date.now() - day - 60_000), insert.bind(accountId, "fresh", Date.now() - 60_000)]);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const left = await env.DB.prepare("SELECT key FROM idempotency_keys WHERE account_id = ?").bind(accountId).all<{ key: string }>();
    expect(left.results.map((r) => r.key)).toEqual(["fresh"]);
  });
});
