// The run page in a real browser (Debian's Chromium through playwright-core), against the service as
// `npm start` runs it: a 4-attempt demo run followed live over the WebSocket without reloading, a
// winner picked and round 2 started through a control link, a view link that shows no controls and
// whose holder's POSTs are refused, a phone-width layout, and a 10,000-entry transcript.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { ROOT } from "../support/processes.ts";
import { startService, type Service } from "../support/service.ts";

// Functions passed to page.evaluate run in the browser; the project's types know no DOM.
declare const window: { marker?: number };
declare const document: { querySelectorAll(selector: string): Iterable<HTMLElement>; documentElement: { scrollWidth: number } };
type HTMLElement = { dataset: Record<string, string | undefined>; getBoundingClientRect(): { toJSON(): { x: number; y: number } } };

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "test-results");

let service: Service;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (.ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  [service, browser] = await Promise.all([
    startService({ POLL_INTERVAL_MS: "1000" }),
    chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    }),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await service?.close();
});

async function startRun(body: Record<string, unknown>): Promise<string> {
  const res = await service.api("/api/runs", { method: "POST", json: { agent: "demo", ...body } });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function share(runId: string, scope: "view" | "control"): Promise<{ id: string; url: string }> {
  const res = await service.api(`/api/runs/${runId}/share`, { method: "POST", json: { scope } });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; url: string };
}

async function view(runId: string): Promise<RunView> {
  return (await (await service.api(`/api/runs/${runId}`)).json()) as RunView;
}

async function open(url: string, width = 1400): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  (page as Page & { errors: string[] }).errors = errors;
  await page.goto(url);
  return page;
}

const statuses = (page: Page, round: number) =>
  page.locator(`#round-${round} .pane`).evaluateAll((panes) => panes.map((p) => (p as HTMLElement).dataset.status));

describe("the run page", () => {
  it("follows a 4-attempt run live, picks a winner and starts round 2 through a control link", async () => {
    const runId = await startRun({ prompt: "Build a greeting page [slow:700]", attempts: 4 });
    const control = await share(runId, "control");
    const page = await open(control.url);

    // Server-rendered: four panes at once, none done yet; then the socket connects.
    await expect.poll(() => page.locator("#round-1 .pane").count()).toBe(4);
    expect((await statuses(page, 1)).some((s) => s === "done")).toBe(false);
    await page.waitForSelector("#conn.live");
    // A marker that a reload would wipe: the panes must move to done in this same document.
    await page.evaluate(() => (window.marker = 42));
    await page.waitForFunction(
      () => [...document.querySelectorAll("#round-1 .pane")].every((p) => (p as HTMLElement).dataset.status === "done"),
      null,
      { timeout: 60_000 },
    );
    expect(await page.evaluate(() => window.marker)).toBe(42);
    // The agent's transcript arrived live, and each pane shows its diff stats and summary.
    for (let a = 1; a <= 4; a++) {
      const pane = page.locator(`#attempt-1-${a}`);
      // The panes turn done by a view the socket sends; under load the last entries can trail it.
      await expect
        .poll(() => pane.locator("ol.tx li").count(), { timeout: 15_000, message: `attempt ${a}'s transcript entries on the page (connection: ${await page.locator("#conn").getAttribute("class")})` })
        .toBeGreaterThan(3);
      expect(await pane.locator("ol.tx").textContent()).toContain(`Attempt ${a}: I'll build`);
      expect(await pane.locator(".diff").textContent()).toMatch(/3 files changed, \+\d+ −0/);
      expect(await pane.locator(".summary").textContent()).toMatch(/\d+ turns · \$0\.\d+/);
      // How it got its agent: no snapshot here, so the pinned demo agent was installed.
      expect(await pane.locator(".agent-setup").textContent()).toMatch(/^agent 1\.0\.0 installed in \d+\.\d s$/);
    }
    await page.screenshot({ path: join(SHOTS, "run-page-round1.png"), fullPage: true });

    // Pick attempt 2; the page marks it and, once packed, offers the workspace download.
    await page.locator("#attempt-1-2 button.pick").click();
    await page.waitForSelector("#attempt-1-2.winner .winner-badge");
    await page.waitForSelector("#round-1 .winner-line a[download]", { timeout: 60_000 });
    expect((await view(runId)).rounds[0]!.winner).toMatchObject({ attempt: 2, status: "stored" });
    expect(await page.locator("button.pick").count()).toBe(0);
    const tarball = await page.locator("#round-1 .winner-line a[download]").getAttribute("href");
    const download = await fetch(new URL(tarball!, service.url));
    expect(download.status).toBe(200);
    expect(Number(download.headers.get("content-length"))).toBe((await view(runId)).rounds[0]!.winner!.tarball!.size);
    await download.arrayBuffer();

    // Round 2 from the prompt box: it appears, with a tree entry, and runs to done live.
    await page.locator("#next-prompt").fill("Now add a footer [slow:500]");
    await page.locator("#next-round button[type=submit]").click();
    await page.waitForSelector("#round-2 .pane");
    expect(await page.locator("nav.tree").textContent()).toContain("Round 2");
    expect(await page.locator("#round-2 .prompt").textContent()).toBe("Now add a footer [slow:500]");
    await page.waitForFunction(
      () => {
        const panes = [...document.querySelectorAll("#round-2 .pane")];
        return panes.length === 4 && panes.every((p) => (p as HTMLElement).dataset.status === "done");
      },
      null,
      { timeout: 60_000 },
    );
    expect(await page.evaluate(() => window.marker)).toBe(42);
    const api = await view(runId);
    expect(api.rounds).toHaveLength(2);
    expect(api.rounds[1]).toMatchObject({ fromRound: 1, prompt: "Now add a footer [slow:500]" });
    expect(api.rounds[1]!.attempts.map((a) => a.status)).toEqual(["done", "done", "done", "done"]);
    // "Preview all": every attempt of round 2 gets a working preview link on the page.
    await page.locator("#round-2 button.preview-all").click();
    await expect.poll(() => page.locator("#round-2 a.preview-link").count(), { timeout: 60_000 }).toBe(4);
    const links = await page.locator("#round-2 a.preview-link").evaluateAll((as) => as.map((a) => (a as unknown as { href: string }).href));
    const served = await Promise.all(links.map(async (l) => (await fetch(l)).text()));
    served.forEach((html, i) => expect(html).toContain(`<p>attempt ${i + 1}</p>`));
    await page.screenshot({ path: join(SHOTS, "run-page-round2.png"), fullPage: true });
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.close();
  });

  it("shows a view link without controls and refuses its holder's POSTs with 403", async () => {
    const runId = await startRun({ prompt: "A read-only look", attempts: 2 });
    const viewLink = await share(runId, "view");
    const page = await open(viewLink.url);
    await page.waitForFunction(
      () => [...document.querySelectorAll("#round-1 .pane")].every((p) => (p as HTMLElement).dataset.status === "done"),
      null,
      { timeout: 60_000 },
    );
    expect(await page.locator("text=view-only link").count()).toBe(1);
    expect(await page.locator("button.pick, button.cancel, #next-round").count()).toBe(0);

    const post = (path: string, body: unknown) =>
      fetch(`${viewLink.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    for (const res of [await post("/rounds/1/winner", { attempt: 1 }), await post("/rounds", { prompt: "more" }), await post("/cancel", {})]) {
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    }
    const after = await view(runId);
    expect(after.rounds).toHaveLength(1);
    expect(after.rounds[0]!.winner).toBeNull();
    expect(after.status).toBe("awaiting_pick");
    // The page says what comes next.
    await expect.poll(() => page.locator(".run-status .badge").first().textContent(), { timeout: 10_000 }).toBe("waiting for your pick");

    // Revoked: the same link now shows "link expired", and no run.
    expect((await service.api(`/api/runs/${runId}/share/${viewLink.id}`, { method: "DELETE" })).status).toBe(200);
    const gone = await page.goto(viewLink.url);
    expect(gone!.status()).toBe(404);
    expect(await page.locator("h1").textContent()).toBe("Link expired");
    expect(await page.content()).not.toContain(runId);
    await page.close();
  });

  it("stays usable at 400 px wide and with a 10,000-entry transcript", async () => {
    // Attempt 1 thinks out loud for 10,000 lines; attempt 2 is short (there to check the stacking).
    const runId = await startRun({ prompt: "Think a lot", attempts: 2, variations: [{ promptSuffix: "[chatty:10000]" }, {}] });
    const control = await share(runId, "control");
    const page = await open(control.url, 400);
    await page.waitForFunction(
      () => [...document.querySelectorAll("#round-1 .pane")].every((p) => (p as HTMLElement).dataset.status === "done"),
      null,
      { timeout: 90_000 },
    );
    // The page keeps a bounded tail on screen and says how much more there is.
    {
      const pane = page.locator("#attempt-1-1");
      const shown = await pane.locator("ol.tx li").count();
      expect(shown).toBeGreaterThan(0);
      expect(shown).toBeLessThanOrEqual(500);
      const hidden = Number(await pane.locator(".tx-hidden").textContent());
      expect(hidden + shown).toBeGreaterThanOrEqual(10_000);
      expect(await pane.locator("ol.tx").textContent()).toContain("[result success]");
    }
    // Reloaded, it renders only the newest 200 entries per attempt, quickly, and links the rest.
    await page.reload();
    expect(await page.locator("#attempt-1-1 ol.tx li").count()).toBe(200);
    const full = await page.locator("#attempt-1-1 .tx-more a", { hasText: "full transcript" }).getAttribute("href");
    // The full transcript comes in pages of 5,000 entries, each naming the next (Link: rel="next").
    let text = "";
    let pages = 0;
    for (let next: string | null = full!; next; pages++) {
      const res: Response = await fetch(new URL(next, service.url));
      expect(res.status).toBe(200);
      text += await res.text();
      next = /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1] ?? null;
    }
    expect(pages).toBe(3);
    expect(text.split("\n").filter((l) => /Thinking, line \d+ of 10000\./.test(l))).toHaveLength(10_000);

    // Stacked panes, nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(400);
    // Measured until the live script has settled the reloaded page (under load it can still be
    // replacing panes from the socket's first view when the load event fires).
    const stacking = () =>
      page.locator("#round-1 .pane").evaluateAll((ps) => ps.map((p) => p.getBoundingClientRect().toJSON() as { x: number; y: number; height: number }));
    await expect
      .poll(async () => {
        const boxes = await stacking();
        return boxes.length === 2 && boxes[0]!.height > 0 && boxes[0]!.x === boxes[1]!.x && boxes[1]!.y > boxes[0]!.y ? "stacked" : JSON.stringify(boxes);
      }, { timeout: 15_000 })
      .toBe("stacked");
    await page.screenshot({ path: join(SHOTS, "run-page-400px.png"), fullPage: false });
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.close();
  });
});
