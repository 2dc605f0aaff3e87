// Share links and the live socket, inside workerd with real D1 and the run's Durable Object: tokens are
// stored hashed, listed without the token, revocable, expire; another account cannot share a run it
// does not own; and GET /api/runs/:id/live sends the snapshot, then each event, then fresh views.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/crypto.ts";
import type { RunView } from "../../src/durable/view.ts";
import { ADMIN_TOKEN, api, settled, startRun, waitForRun } from "./helpers.ts";

async function share(runId: string, json?: unknown, key?: string) {
  return api(`/api/runs/${runId}/share`, { method: "POST", ...(json === undefined ? {} : { json }), ...(key ? { key } : {}) });
}

const pagePath = (url: string) => new URL(url).pathname;

describe("share links", () => {
  it("makes view and control links, stores only their hashes, lists and revokes them", async () => {
    const runId = await startRun({ prompt: "share me", agent: "demo", attempts: 1 });
    const res = await share(runId);
    expect(res.status).toBe(201);
    const view = (await res.json()) as { id: string; url: string; scope: string; expiresAt: number | null };
    expect(view.scope).toBe("view");
    // A link made without an expiry still dies: 30 days on (SHARE_LINK_DAYS).
    expect(view.expiresAt).toBeGreaterThan(Date.now() + 30 * 86_400_000 - 60_000);
    expect(view.expiresAt).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000);
    const token = pagePath(view.url).split("/")[2]!;
    expect(token).toMatch(/^mss_[A-Za-z0-9_-]{43}$/);

    const control = (await (await share(runId, { scope: "control", expiresIn: 3600 })).json()) as { id: string; url: string; expiresAt: number };
    expect(control.expiresAt).toBeGreaterThan(Date.now() + 3500_000);

    const rows = await env.DB.prepare("SELECT id, hash, scope FROM share_links WHERE run_id = ?").bind(runId).all<Record<string, string>>();
    expect(rows.results.find((r) => r.id === view.id)).toMatchObject({ hash: await sha256Hex(token), scope: "view" });
    expect(JSON.stringify(await env.DB.prepare("SELECT * FROM share_links").all())).not.toContain(token);

    const listed = (await (await api(`/api/runs/${runId}/share`)).json()) as { links: Record<string, unknown>[] };
    expect(listed.links.map((l) => l.id).sort()).toEqual([view.id, control.id].sort());
    expect(JSON.stringify(listed)).not.toContain("mss_");

    // The page opens; once revoked, it is "link expired" (404), as is a token that never existed.
    const page = await api(pagePath(view.url), { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get("x-robots-tag")).toContain("noindex");
    const html = await page.text();
    expect(html).toContain('<meta name="robots" content="noindex, nofollow"/>');
    expect(html).toContain('property="og:title" content="multishot: share me"');
    expect(html).toMatch(/property="og:description" content="(running|succeeded) · 1 attempts · round 1/);

    const revoked = await api(`/api/runs/${runId}/share/${view.id}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { revokedAt: number }).revokedAt).toBeGreaterThan(0);
    const gone = await api(pagePath(view.url), { key: null });
    expect(gone.status).toBe(404);
    const goneHtml = await gone.text();
    expect(goneHtml).toContain("Link expired");
    expect(goneHtml).not.toContain(runId);
    expect((await api(`/r/mss_${"A".repeat(43)}`, { key: null })).status).toBe(404);
    expect((await api(`/api/runs/${runId}/share/shr_nope`, { method: "DELETE" })).status).toBe(404);
    await waitForRun(runId, settled);
  });

  it("stops working when it expires", async () => {
    const runId = await startRun({ prompt: "short-lived", agent: "demo", attempts: 1 });
    const link = (await (await share(runId, { scope: "control", expiresIn: 60 })).json()) as { id: string; url: string };
    expect((await api(pagePath(link.url), { key: null })).status).toBe(200);
    // An hour passes: move the link's expiry into the past rather than wait.
    await env.DB.prepare("UPDATE share_links SET expires_at = ? WHERE id = ?").bind(Date.now() - 1, link.id).run();
    expect((await api(pagePath(link.url), { key: null })).status).toBe(404);
    const post = await api(`${pagePath(link.url)}/cancel`, { method: "POST", json: {}, key: null });
    expect(post.status).toBe(404);
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe("link_expired");
    // A script's GETs (run.json, the event stream) get JSON, whatever they accept; the page gets HTML.
    for (const path of ["run.json", "events"]) {
      const res = await api(`${pagePath(link.url)}/${path}`, { key: null, headers: { accept: "*/*" } });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("link_expired");
    }
    expect((await api(pagePath(link.url), { key: null, headers: { accept: "text/html" } })).headers.get("content-type")).toContain("text/html");
    expect((await waitForRun(runId, settled)).status).toBe("awaiting_pick");
  });

  it("refuses bad requests and other accounts' runs", async () => {
    const runId = await startRun({ prompt: "mine", agent: "demo", attempts: 1 });
    const bad = await share(runId, { scope: "admin" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("validation_failed");
    expect((await share(runId, { expiresIn: 5 })).status).toBe(400);

    const acct = await api("/api/accounts", { method: "POST", json: { name: "other" }, key: ADMIN_TOKEN });
    const otherKey = ((await acct.json()) as { key: { key: string } }).key.key;
    expect((await share(runId, { scope: "view" }, otherKey)).status).toBe(404);
    expect((await api(`/api/runs/${runId}/share`, { key: otherKey })).status).toBe(404);
    const readOnly = await api("/api/keys", { method: "POST", json: { name: "ro", scopes: ["runs:read"] } });
    const roKey = ((await readOnly.json()) as { key: string }).key;
    expect((await share(runId, { scope: "view" }, roKey)).status).toBe(403);
    await waitForRun(runId, settled);
  });
});

describe("a share link's live streams", () => {
  it("serves SSE and a WebSocket under the link, and ends both when the link is revoked", async () => {
    const runId = await startRun({ prompt: "watched [slow:300]", agent: "demo", attempts: 1 });
    const link = (await (await share(runId, { scope: "view" })).json()) as { id: string; url: string };
    const base = pagePath(link.url);

    const sse = await api(`${base}/events`, { key: null, headers: { accept: "text/event-stream" } });
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toBe("text/event-stream");
    expect(sse.headers.get("x-robots-tag")).toContain("noindex");
    const reader = sse.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain(": multishot run events");
    await reader.cancel();
    expect((await api(`${base}/live`, { key: null })).status).toBe(426);

    // An SSE stream open when its link is revoked says so and ends.
    const open = await api(`${base}/events`, { key: null, headers: { accept: "text/event-stream" } });
    const stream = open.body!.pipeThrough(new TextDecoderStream()).getReader();
    expect((await stream.read()).value).toContain(": multishot run events");
    const second = (await (await share(runId, { scope: "view" })).json()) as { id: string; url: string };
    expect((await api(`/api/runs/${runId}/share/${link.id}`, { method: "DELETE" })).status).toBe(200);
    let text = "";
    for (let chunk = await stream.read(); !chunk.done; chunk = await stream.read()) text += chunk.value;
    expect(text).toContain("event: link.revoked");

    const res = await api(`${pagePath(second.url)}/live`, { key: null, headers: { upgrade: "websocket" } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    ws.accept();
    expect((await api(`/api/runs/${runId}/share/${second.id}`, { method: "DELETE" })).status).toBe(200);
    expect(await closed).toBe(4001);

    // A WebSocket that reaches the run's object after its link was closed there (the route had checked
    // D1 just before the revoke landed) is refused too.
    const third = (await (await share(runId, { scope: "view" })).json()) as { id: string; url: string };
    await env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId)).closeLink(third.id);
    const late = await api(`${pagePath(third.url)}/live`, { key: null, headers: { upgrade: "websocket" } });
    expect(late.status).toBe(404);
    expect(((await late.json()) as { error: { code: string } }).error.code).toBe("link_expired");
    await waitForRun(runId, settled);
  });
});

describe("what one link can hold open", () => {
  it("is at most 100 streams and sockets on a run: the next answers 429, another link is not held back", async () => {
    const runId = await startRun({ prompt: "popular [hang]", agent: "demo", attempts: 1 });
    const link = (await (await share(runId, { scope: "view" })).json()) as { id: string; url: string };
    const base = pagePath(link.url);
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 99; i++) {
      const res = await api(`${base}/live`, { key: null, headers: { upgrade: "websocket" } });
      expect(res.status, `socket ${i + 1}`).toBe(101);
      res.webSocket!.accept();
      sockets.push(res.webSocket!);
    }
    const sse = await api(`${base}/events`, { key: null, headers: { accept: "text/event-stream" } });
    expect(sse.status).toBe(200);
    const reader = sse.body!.getReader();
    await reader.read();
    for (const kind of ["live", "events"] as const) {
      const over = await api(`${base}/${kind}`, { key: null, headers: kind === "live" ? { upgrade: "websocket" } : { accept: "text/event-stream" } });
      expect(over.status, kind).toBe(429);
      expect(over.headers.get("retry-after")).toBe("30");
      expect(((await over.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "too_many_streams", message: expect.stringContaining("this share link has 100") });
    }
    const other = (await (await share(runId, { scope: "view" })).json()) as { url: string };
    const theirs = await api(`${pagePath(other.url)}/live`, { key: null, headers: { upgrade: "websocket" } });
    expect(theirs.status).toBe(101);
    theirs.webSocket!.accept();
    theirs.webSocket!.close(1000, "done");
    // Closing one makes room again.
    await reader.cancel();
    await expect.poll(async () => (await api(`${base}/events`, { key: null, headers: { accept: "text/event-stream" } }).then(async (r) => (await r.body?.cancel(), r.status))), { timeout: 5_000 }).toBe(200);
    for (const ws of sockets) ws.close(1000, "done");
    await api(`/api/runs/${runId}/cancel`, { method: "POST" });
  });
});

describe("GET /api/runs/:id/live", () => {
  it("asks for a WebSocket upgrade", async () => {
    const runId = await startRun({ prompt: "plain GET", agent: "demo", attempts: 1 });
    const res = await api(`/api/runs/${runId}/live`);
    expect(res.status).toBe(426);
    await waitForRun(runId, settled);
  });

  it("sends the snapshot, then every event in order, then fresh views, and resumes after a seq", async () => {
    const runId = await startRun({ prompt: "live [slow:300]", agent: "demo", attempts: 2 });
    const res = await api(`/api/runs/${runId}/live`, { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const messages: { type: string; seq?: number; run?: RunView; event?: { seq: number; type: string } }[] = [];
    ws.addEventListener("message", (m) => {
      messages.push(JSON.parse(m.data as string));
    });
    ws.accept();
    await waitForRun(runId, settled);
    await new Promise((r) => setTimeout(r, 500));
    ws.close();

    expect(messages[0]!.type).toBe("snapshot");
    expect(messages[0]!.run!.id).toBe(runId);
    const seqs = messages.filter((m) => m.type === "event").map((m) => m.event!.seq);
    expect(seqs.length).toBeGreaterThan(5);
    // Consecutive, starting right after the snapshot: nothing lost, nothing repeated.
    expect(seqs).toEqual(seqs.map((_, i) => messages[0]!.seq! + 1 + i));
    const views = messages.filter((m) => m.type === "run");
    expect(views.at(-1)!.run!.status).toBe("awaiting_pick");

    // Reconnecting after seq N replays exactly the events after N, then the snapshot.
    const mid = seqs[3]!;
    const again = await api(`/api/runs/${runId}/live?after=${mid}`, { headers: { upgrade: "websocket" } });
    const ws2 = again.webSocket!;
    const replay: { type: string; seq?: number; event?: { seq: number } }[] = [];
    ws2.addEventListener("message", (m) => {
      replay.push(JSON.parse(m.data as string));
    });
    ws2.accept();
    await new Promise((r) => setTimeout(r, 300));
    ws2.close();
    const replayed = replay.filter((m) => m.type === "event").map((m) => m.event!.seq);
    expect(replayed).toEqual(seqs.filter((s) => s > mid));
    expect(replay.at(-1)!.type).toBe("snapshot");
  });
});
