// Per-account limits inside workerd with real D1 and Durable Objects: attempts working at once and runs
// per hour answer 429 with Retry-After (and start nothing); a slot that frees lets the next run start;
// a 429 never sticks to an Idempotency-Key; a run's own round limit.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { ADMIN_TOKEN, api, settled } from "./helpers.ts";

async function account(limits: Record<string, number>): Promise<string> {
  const res = await api("/api/accounts", { method: "POST", json: { name: "limited", limits }, key: ADMIN_TOKEN });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { account: { limits: Record<string, number> }; key: { key: string } };
  expect(body.account.limits).toMatchObject(limits);
  return body.key.key;
}

const start = (key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  api("/api/runs", { method: "POST", json: { agent: "demo", ...body }, key, headers });

/** Waits for the run (another account's: read with its key) to settle. */
async function settle(key: string, id: string): Promise<void> {
  const until = Date.now() + 45_000;
  while (!settled((await (await api(`/api/runs/${id}`, { key })).json()) as RunView)) {
    if (Date.now() > until) throw new Error(`run ${id} did not settle`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function runCount(key: string): Promise<number> {
  return ((await (await api("/api/runs?limit=100", { key })).json()) as { runs: unknown[] }).runs.length;
}

describe("account limits", () => {
  it("refuses attempts beyond the account's concurrency with 429 and Retry-After, and starts once a slot frees", async () => {
    const key = await account({ concurrentAttempts: 8 });
    const first = (await (await start(key, { prompt: "busy [slow:800]", attempts: 4 })).json()) as { id: string };
    const second = (await (await start(key, { prompt: "busy too [slow:800]", attempts: 4 })).json()) as { id: string };
    const me = (await (await api("/api/accounts/me", { key })).json()) as { usage: { activeAttempts: number } };
    expect(me.usage.activeAttempts).toBe(8);

    // The 9th attempt: refused, with when to ask again, and nothing started.
    const ninth = await start(key, { prompt: "one more", attempts: 1 }, { "idempotency-key": "ninth" });
    expect(ninth.status).toBe(429);
    expect(ninth.headers.get("retry-after")).toBe("30");
    expect(((await ninth.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "too_many_attempts",
      message: "this account may have 8 attempts working at once; 8 are, and this needs 1 more",
    });
    expect(await runCount(key)).toBe(2);

    // A slot frees: the same request (same Idempotency-Key: a 429 is not kept) now starts.
    await settle(key, first.id);
    let retried = await start(key, { prompt: "one more", attempts: 1 }, { "idempotency-key": "ninth" });
    for (const until = Date.now() + 10_000; retried.status === 429 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 200));
      retried = await start(key, { prompt: "one more", attempts: 1 }, { "idempotency-key": "ninth" });
    }
    expect(retried.status).toBe(202);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
    const ninthRun = (await retried.json()) as { id: string };
    await settle(key, second.id);
    await settle(key, ninthRun.id);
    expect(await runCount(key)).toBe(3);
  });

  it("refuses runs beyond the account's runs per hour", async () => {
    const key = await account({ runsPerHour: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push(((await (await start(key, { prompt: `run ${i}`, attempts: 1 })).json()) as { id: string }).id);
    const third = await start(key, { prompt: "run 3", attempts: 1 });
    expect(third.status).toBe(429);
    const retry = Number(third.headers.get("retry-after"));
    expect(retry).toBeGreaterThan(3500);
    expect(retry).toBeLessThanOrEqual(3600);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    expect(await runCount(key)).toBe(2);
    for (const id of ids) await settle(key, id);
  });

  it("lets only the operator change limits, and enforces a run's round limit", async () => {
    const key = await account({});
    const me = (await (await api("/api/accounts/me", { key })).json()) as { id: string; limits: Record<string, number> };
    expect(me.limits).toEqual({ concurrentAttempts: 8, runsPerHour: 60, runBudgetUsd: 10, monthlyBudgetUsd: 100 });
    expect((await api(`/api/accounts/${me.id}`, { method: "PATCH", json: { limits: { runsPerHour: 1000 } }, key })).status).toBe(403);
    const patched = await api(`/api/accounts/${me.id}`, { method: "PATCH", json: { limits: { concurrentAttempts: 2 } }, key: ADMIN_TOKEN });
    expect(((await patched.json()) as { limits: Record<string, number> }).limits).toEqual({ concurrentAttempts: 2, runsPerHour: 60, runBudgetUsd: 10, monthlyBudgetUsd: 100 });
    expect((await start(key, { prompt: "too wide", attempts: 3 })).status).toBe(429);

    const res = await start(key, { prompt: "one round only", attempts: 1, limits: { maxRounds: 1 } });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await settle(key, id);
    const next = await api(`/api/runs/${id}/rounds`, { method: "POST", json: { prompt: "again" }, key });
    expect(next.status).toBe(409);
    expect(((await next.json()) as { error: { code: string } }).error.code).toBe("round_limit");
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM rounds WHERE run_id = ?").bind(id).first<{ n: number }>();
    expect(rows!.n).toBe(1);

    // A run that sets no round limit still has one: 20 rounds (the object's store is given 19 more
    // finished rounds like its first, as if they had run).
    const open = await start(key, { prompt: "many rounds", attempts: 1 });
    const many = ((await open.json()) as { id: string }).id;
    await settle(key, many);
    await runInDurableObject(env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(many)), (_o, state) => {
      for (let n = 2; n <= 20; n++) state.storage.sql.exec("INSERT INTO rounds (number, state, dirty) SELECT ?, json_set(state, '$.number', ?), 0 FROM rounds WHERE number = 1", n, n);
    });
    const past = await api(`/api/runs/${many}/rounds`, { method: "POST", json: { prompt: "one more" }, key });
    expect(past.status).toBe(409);
    expect(((await past.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "round_limit",
      message: "this run may have 20 rounds (the default; set limits.maxRounds, up to 100, for more)",
    });
  });
  it("keeps counting a started run's attempts while D1 refuses their rows", async () => {
    const key = await account({ concurrentAttempts: 4, runsPerHour: 1000 });
    const me = (await (await api("/api/accounts/me", { key })).json()) as { id: string };
    // D1 refuses this account's attempt rows: the run's object starts it, and retries its mirror later.
    const trigger = `limits_refuse_attempts_${me.id}`;
    await env.DB.exec(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON attempts WHEN NEW.run_id IN (SELECT id FROM runs WHERE account_id = '${me.id}') BEGIN SELECT RAISE(ABORT, 'injected D1 fault'); END`,
    );
    let first: { id: string };
    try {
      const res = await start(key, { prompt: "unmirrored [slow:800]", attempts: 3 });
      expect(res.status).toBe(202);
      first = (await res.json()) as { id: string };
      const rows = await env.DB.prepare("SELECT count(*) AS n FROM attempts WHERE run_id = ?").bind(first.id).first<{ n: number }>();
      expect(rows!.n).toBe(0);
      // Its reservation still counts its 3 attempts: 2 more would pass the limit of 4.
      const second = await start(key, { prompt: "one too many", attempts: 2 });
      expect(second.status).toBe(429);
      expect(((await second.json()) as { error: { code: string } }).error.code).toBe("too_many_attempts");
    } finally {
      await env.DB.exec(`DROP TRIGGER IF EXISTS ${trigger}`);
    }
    // Once the mirror gets through, the attempts count once: by their rows, not also by the reservation.
    const until = Date.now() + 20_000;
    let rows = 0;
    while (rows < 3 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      rows = (await env.DB.prepare("SELECT count(*) AS n FROM attempts WHERE run_id = ?").bind(first.id).first<{ n: number }>())!.n;
    }
    expect(rows).toBe(3);
    const usage = (await (await api("/api/accounts/me", { key })).json()) as { usage: { activeAttempts: number } };
    expect(usage.usage.activeAttempts).toBeLessThanOrEqual(3);
    await settle(key, first.id);
  });

  it("never lets starts that race each other pass a limit together", async () => {
    const key = await account({ concurrentAttempts: 8, runsPerHour: 1000 });
    // Five runs of 3 attempts at once, against room for 8: exactly two may start.
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => start(key, { prompt: `race ${i} [slow:300]`, attempts: 3 })));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 202, 429, 429, 429]);
    const started = await Promise.all(answers.filter((r) => r.status === 202).map(async (r) => ((await r.json()) as { id: string }).id));
    expect(await runCount(key)).toBe(2);
    const me = (await (await api("/api/accounts/me", { key })).json()) as { id: string; usage: { activeAttempts: number } };
    expect(me.usage.activeAttempts).toBe(6);
    // Nothing is held back once the starts are over: the reservations are gone.
    const left = await env.DB.prepare("SELECT count(*) AS n FROM limit_reservations WHERE account_id = ?").bind(me.id).first<{ n: number }>();
    expect(left!.n).toBe(0);
    for (const id of started) await settle(key, id);
  });
});
