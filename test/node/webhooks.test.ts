// Outbound events end to end under `npm start`: an account's endpoints get every run event they asked
// for, signed with the endpoint's secret, in the order the run recorded them; a receiver that fails
// twice gets the event on the third try, and the rest only after it. The deliveries' log and a manual
// redelivery, and no secret anywhere in the service's stored state.
import { createHmac } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { startService, type Service } from "../support/service.ts";

interface Received {
  at: number;
  headers: Record<string, string>;
  raw: string;
  body: { id: string; type: string; run: { id: string; status: string }; round?: { number: number }; attempt?: { number: number; status: string } };
  answered: number;
}

/**
 * A local receiver: records every request; the first `failFirst` requests for each run get a 500. The
 * first of them is held until `gate` opens, so that the run's later events are all waiting behind it.
 */
async function startReceiver(failFirst: number, gate: Promise<void> = Promise.resolve()) {
  const received: Received[] = [];
  const seenPerRun = new Map<string, number>();
  let failAll = false;
  let status: number | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const body = JSON.parse(raw) as Received["body"];
      const n = (seenPerRun.get(body.run.id) ?? 0) + 1;
      seenPerRun.set(body.run.id, n);
      if (n === 1) await gate;
      const answered = status ?? (failAll || n <= failFirst ? 500 : 200);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k] = String(v);
      received.push({ at: Date.now(), headers, raw, body, answered });
      res.writeHead(answered, { "content-type": "text/plain" });
      res.end(answered === 200 ? "ok" : "not now");
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    received,
    accepted: () => received.filter((r) => r.answered === 200),
    setFailAll: (v: boolean) => void (failAll = v),
    setStatus: (v: number) => void (status = v),
    close: () => new Promise<void>((ok) => (server.closeAllConnections(), server.close(() => ok()))),
  };
}

/** Verifies a delivery with the standardwebhooks package, as a consumer would: throws when it does not hold. */
const standardVerify = (secret: string, r: Pick<Received, "raw" | "headers">) => new Webhook(secret).verify(r.raw, r.headers);

/** Verifies the multishot signature with node's own HMAC, independently of the service's code. */
function signatureHolds(secret: string, r: Received): boolean {
  const ts = r.headers["x-multishot-timestamp"]!;
  const expected = `sha256=${createHmac("sha256", secret).update(`${ts}.${r.raw}`).digest("hex")}`;
  return r.headers["x-multishot-signature"] === expected && Math.abs(r.at / 1000 - Number(ts)) < 300;
}

let service: Service;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let finishedOnly: Awaited<ReturnType<typeof startReceiver>>;
let openGate: () => void;
beforeAll(async () => {
  receiver = await startReceiver(2, new Promise<void>((ok) => (openGate = ok)));
  finishedOnly = await startReceiver(0);
  service = await startService({ RETRY_BASE_MS: "300", RETRY_CAP_MS: "2000", POLL_INTERVAL_MS: "1000" });
});
afterAll(async () => {
  await service?.close();
  await receiver?.close();
  await finishedOnly?.close();
});

async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Every file under a directory, as bytes (the service's D1, R2 and Durable Object state). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe("outbound events", () => {
  it("reach each endpoint signed and in order per run; a receiver that fails twice gets them on the third try", async () => {
    const all = await json<{ id: string; secret: string; events: string[] }>(
      await service.api("/api/webhooks", { method: "POST", json: { kind: "outbound", name: "ci", url: receiver.url } }),
      201,
    );
    expect(all.events).toEqual(["run.created", "attempt.finished", "round.finished", "winner.selected", "run.finished"]);
    const some = await json<{ id: string; secret: string }>(
      await service.api("/api/webhooks", { method: "POST", json: { kind: "outbound", url: finishedOnly.url, events: ["run.finished"] } }),
      201,
    );

    // Two runs at once: each run's events are in order; the two runs' events interleave freely.
    const ids: string[] = [];
    for (const prompt of ["a bakery site", "a florist site"]) {
      ids.push((await json<{ id: string }>(await service.api("/api/runs", { method: "POST", json: { prompt, agent: "demo", attempts: 2 } }), 202)).id);
    }
    for (const id of ids) {
      await waitFor(`run ${id}`, async () => ((await (await service.api(`/api/runs/${id}`)).json()) as RunView).status === "awaiting_pick");
    }
    // Every event of both rounds is recorded; each run's first delivery is still waiting for its answer.
    expect(receiver.received).toEqual([]);
    openGate();
    await json(await service.api(`/api/runs/${ids[0]}/rounds/1/winner`, { method: "POST", json: { attempt: 2 } }), 202);

    const expected: Record<string, string[]> = {
      [ids[0]!]: ["run.created", "attempt.finished", "attempt.finished", "round.finished", "run.finished", "winner.selected"],
      [ids[1]!]: ["run.created", "attempt.finished", "attempt.finished", "round.finished", "run.finished"],
    };
    const acceptedFor = (id: string) => receiver.accepted().filter((r) => r.body.run.id === id);
    await waitFor("every event accepted", async () => ids.every((id) => acceptedFor(id).length >= expected[id]!.length));
    await waitFor("run.finished at the filtered endpoint", async () => finishedOnly.accepted().length >= 2);
    // Nothing more arrives (no duplicates once accepted).
    await new Promise((r) => setTimeout(r, 1500));

    for (const r of receiver.received) {
      expect(signatureHolds(all.secret, r), r.raw).toBe(true);
      expect(signatureHolds(some.secret, r)).toBe(false);
      expect(r.headers["x-multishot-event"]).toBe(r.body.type);
      expect(r.headers["x-multishot-delivery"]).toMatch(/^whd_[a-z2-7]{20}$/);
      expect(r.headers["content-type"]).toBe("application/json");
    }
    for (const id of ids) {
      const accepted = acceptedFor(id);
      expect(accepted.map((r) => r.body.type)).toEqual(expected[id]);
      const seqs = accepted.map((r) => Number(r.body.id.split(":")[1]));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(accepted.map((r) => r.headers["x-multishot-delivery"])).size).toBe(accepted.length);
      // Finished once, waiting for a pick (the pick that made the first run succeeded is no second finish).
      expect(accepted.filter((r) => r.body.type === "run.finished").map((r) => r.body.run.status)).toEqual(["awaiting_pick"]);
      expect(accepted.filter((r) => r.body.type === "attempt.finished").map((r) => r.body.attempt!.status)).toEqual(["done", "done"]);

      // The run's first event failed twice and went through on the third try, with the same id and
      // body; nothing after it was sent before it was accepted.
      const tries = receiver.received.filter((r) => r.body.run.id === id && r.body.type === "run.created");
      expect(tries.map((r) => r.answered)).toEqual([500, 500, 200]);
      expect(new Set(tries.map((r) => r.headers["x-multishot-delivery"])).size).toBe(1);
      expect(new Set(tries.map((r) => r.raw)).size).toBe(1);
      expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(250);
      expect(tries[2]!.at - tries[1]!.at).toBeGreaterThanOrEqual(tries[1]!.at - tries[0]!.at - 50);
      const firstOther = receiver.received.findIndex((r) => r.body.run.id === id && r.body.type !== "run.created");
      expect(firstOther).toBeGreaterThan(receiver.received.indexOf(tries[2]!));
    }
    const filtered = finishedOnly.received;
    expect(filtered.map((r) => r.body.type)).toEqual(["run.finished", "run.finished"]);
    expect(new Set(filtered.map((r) => r.body.run.id))).toEqual(new Set(ids));
    for (const r of filtered) expect(signatureHolds(some.secret, r)).toBe(true);

    // The log: newest first, each delivery's tries and outcome.
    type Log = { deliveries: { id: string; runId: string; event: string; status: string; tries: number; lastStatus: number | null }[]; nextCursor: string | null };
    const log = await waitFor("the log to settle", async () => {
      const l = await json<Log>(await service.api(`/api/webhooks/${all.id}/deliveries?limit=100`), 200);
      return l.deliveries.length === 11 && l.deliveries.every((d) => d.status === "delivered") ? l : null;
    });
    for (const d of log.deliveries) {
      expect(d.tries, d.event).toBe(d.event === "run.created" ? 3 : 1);
      expect(d.lastStatus).toBe(200);
    }
    const page = await json<Log>(await service.api(`/api/webhooks/${all.id}/deliveries?limit=4`), 200);
    expect(page.deliveries).toHaveLength(4);
    const rest = await json<Log>(await service.api(`/api/webhooks/${all.id}/deliveries?limit=100&cursor=${page.nextCursor}`), 200);
    expect([...page.deliveries, ...rest.deliveries].map((d) => d.id)).toEqual(log.deliveries.map((d) => d.id));

    // Manual redelivery: the same delivery again, freshly signed, recorded in the log.
    const finished = log.deliveries.find((d) => d.runId === ids[1] && d.event === "run.finished")!;
    const before = receiver.received.length;
    const again = await json<{ delivered: boolean; status: number; delivery: { tries: number; status: string } }>(
      await service.api(`/api/webhooks/${all.id}/deliveries/${finished.id}/redeliver`, { method: "POST" }),
      200,
    );
    expect(again).toMatchObject({ delivered: true, status: 200, delivery: { tries: 2, status: "delivered" } });
    const resent = receiver.received[before]!;
    expect(resent.headers["x-multishot-delivery"]).toBe(finished.id);
    expect(resent.body.type).toBe("run.finished");
    expect(signatureHolds(all.secret, resent)).toBe(true);
    receiver.setFailAll(true);
    const refused = await json<{ delivered: boolean; status: number; error: string }>(
      await service.api(`/api/webhooks/${all.id}/deliveries/${finished.id}/redeliver`, { method: "POST" }),
      200,
    );
    expect(refused).toMatchObject({ delivered: false, status: 500, error: "HTTP 500" });
    receiver.setFailAll(false);
    const one = await json<{ payload: { type: string }; tries: number }>(await service.api(`/api/webhooks/${all.id}/deliveries/${finished.id}`), 200);
    expect(one).toMatchObject({ tries: 3, payload: { type: "run.finished" } });
    expect((await service.api(`/api/webhooks/${all.id}/deliveries/whd_nope/redeliver`, { method: "POST" })).status).toBe(404);

    // No secret in anything the service stored or printed.
    for (const file of filesUnder(service.stateDir)) {
      const bytes = readFileSync(file).toString("latin1");
      expect(bytes.includes(all.secret), file).toBe(false);
      expect(bytes.includes(some.secret), file).toBe(false);
    }
    expect(service.output()).not.toContain(all.secret);

    for (const id of ids) await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("are Standard Webhooks a stock library verifies; a rotation signs with both secrets for its grace; a 410 disables the endpoint", async () => {
    const standard = await startReceiver(0);
    const gone = await startReceiver(0);
    try {
      const ep = await json<{ id: string; secret: string; secretFormat: string }>(
        await service.api("/api/webhooks", { method: "POST", json: { kind: "outbound", url: standard.url, events: ["run.created", "run.finished"] } }),
        201,
      );
      expect(ep.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(ep.secretFormat).toBe("standard");
      const run = async (prompt: string) => {
        const { id } = await json<{ id: string }>(await service.api("/api/runs", { method: "POST", json: { prompt, agent: "demo", attempts: 1 } }), 202);
        await waitFor(`run ${id}`, async () => standard.accepted().filter((r) => r.body.run.id === id && r.body.type === "run.finished").length > 0);
        return standard.accepted().filter((r) => r.body.run.id === id);
      };
      const first = await run("a standard site");
      expect(first.map((r) => r.body.type)).toEqual(["run.created", "run.finished"]);
      for (const r of first) {
        // The stock library verifies it and hands back the payload.
        expect(standardVerify(ep.secret, r)).toEqual(r.body);
        expect(r.headers["webhook-id"]).toBe(r.headers["x-multishot-delivery"]);
        expect(r.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
        // The deprecated header still holds for consumers that have not moved yet.
        expect(signatureHolds(ep.secret, r)).toBe(true);
        // A tampered body and another secret fail verification.
        expect(() => standardVerify(ep.secret, { ...r, raw: r.raw.replace("run.", "xun.") })).toThrow(WebhookVerificationError);
        expect(() => standardVerify(`whsec_${Buffer.from("a different secret, thirty-two!!").toString("base64")}`, r)).toThrow(WebhookVerificationError);
      }
      // A real delivery, looked at six minutes later, is stale.
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 6 * 60_000 });
      try {
        expect(() => standardVerify(ep.secret, first[0]!)).toThrow(/timestamp too old/i);
      } finally {
        vi.useRealTimers();
      }

      // Rotation: for its grace, every delivery is signed with both secrets, so a consumer holding
      // either verifies it; the endpoint says until when.
      const rotated = await json<{ secret: string; previousSecretValidUntil: number }>(
        await service.api(`/api/webhooks/${ep.id}/secret`, { method: "POST", json: { graceHours: 1 } }),
        200,
      );
      expect(rotated.secret).not.toBe(ep.secret);
      expect(rotated.previousSecretValidUntil).toBeGreaterThan(Date.now() + 59 * 60_000);
      const view = await json<{ previousSecretValidUntil: number }>(await service.api(`/api/webhooks/${ep.id}`), 200);
      expect(view.previousSecretValidUntil).toBe(rotated.previousSecretValidUntil);
      const during = await run("a rotating site");
      for (const r of during) {
        expect(r.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
        expect(standardVerify(ep.secret, r)).toEqual(r.body);
        expect(standardVerify(rotated.secret, r)).toEqual(r.body);
      }
      // Rotated again without grace, the old secret stops at once.
      const now = await json<{ secret: string }>(await service.api(`/api/webhooks/${ep.id}/secret`, { method: "POST", json: { graceHours: 0 } }), 200);
      const after = await run("a rotated site");
      for (const r of after) {
        expect(standardVerify(now.secret, r)).toEqual(r.body);
        expect(() => standardVerify(rotated.secret, r)).toThrow(WebhookVerificationError);
      }

      // A receiver that answers 410 Gone is disabled after one delivery, and gets nothing more.
      gone.setStatus(410);
      const bye = await json<{ id: string }>(
        await service.api("/api/webhooks", { method: "POST", json: { kind: "outbound", url: gone.url, events: ["run.created", "run.finished"] } }),
        201,
      );
      await run("a site nobody wants");
      const disabled = await waitFor("the endpoint to be disabled", async () => {
        const e = await json<{ disabledAt: number | null; disabledReason: string | null }>(await service.api(`/api/webhooks/${bye.id}`), 200);
        return e.disabledAt ? e : null;
      });
      expect(disabled.disabledReason).toMatch(/^the receiver answered 410 Gone to delivery whd_/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(gone.received).toHaveLength(1);
      await run("another site nobody wants");
      expect(gone.received).toHaveLength(1);
      // Its owner can turn it back on.
      const enabled = await json<{ disabledAt: number | null }>(await service.api(`/api/webhooks/${bye.id}/enable`, { method: "POST" }), 200);
      expect(enabled.disabledAt).toBeNull();
    } finally {
      await standard.close();
      await gone.close();
    }
  });
});
