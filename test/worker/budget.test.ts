// A gateway call whose end was never read (the Worker was cut off mid-stream) is not free: once its
// reservation is older than any call runs, the next look at the budget charges the attempt what the
// call still held, and says so in the run's events.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RESERVATION_STALE_MS } from "../../src/durable/budget.ts";
import { api, getRun, startRun } from "./helpers.ts";

describe("the gateway's reservations", () => {
  it("charges a call never read to its end its whole reservation once it is stale", async () => {
    const id = await startRun({ prompt: "waits [hang]", agent: "demo", attempts: 1, limits: { budgetUsd: 5 } });
    await expect.poll(async () => (await getRun(id)).rounds[0]!.attempts[0]!.status, { timeout: 45_000 }).toBe("running_agent");
    const stub = env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(id));
    // One call in flight since before the stale limit, its input ($0.06) counted, $0.25 reserved in all.
    const counted = JSON.stringify({ model: "claude-sonnet-4-5", input_tokens: 20_000 });
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec(
        "INSERT INTO llm_reservations (id, round, attempt, usd, counted, at) VALUES ('r-stale', 1, 1, 0.25, ?, ?)",
        counted,
        Date.now() - RESERVATION_STALE_MS - 1000,
      );
    });
    const gate = await stub.llmGate(1, 1, null);
    expect(gate).toEqual({ ok: { reservation: null } });
    const a = (await getRun(id)).rounds[0]!.attempts[0]!;
    // What it still held: $0.25 less the $0.06 of input counted.
    expect(a.usage!.costUsd).toBeCloseTo(0.19, 6);
    const events = (await (await api(`/api/runs/${id}/events`)).json()) as { events: { type: string; data: { chargedUsd?: number } }[] };
    expect(events.events.filter((e) => e.type === "llm.unsettled").map((e) => e.data.chargedUsd)).toEqual([0.19]);
    const left = await runInDurableObject(stub, (_o, state) => state.storage.sql.exec("SELECT count(*) AS n FROM llm_reservations").one().n);
    expect(left).toBe(0);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
