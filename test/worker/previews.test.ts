// Previews against the local sandbox server: each project kind the demo agent writes is detected,
// served, health-checked and fetched through its signed preview URL; four attempts all on port 3000
// answer at once; a killed server is restarted on the next request; a server that never answers
// gives its log tail; an expired link is refused; and after the idle limit the server is stopped.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, api, settled, startRun, waitForRun } from "./helpers.ts";

type Preview = { attempt: number; url?: string; expiresAt?: number; kind?: string; port?: number; error?: { code: string; message: string } };

async function preview(path: string, json?: unknown): Promise<{ status: number; body: Preview }> {
  const res = await api(path, { method: "POST", ...(json === undefined ? {} : { json }) });
  return { status: res.status, body: (await res.json()) as Preview };
}

async function doneRun(prompt: string, attempts = 1): Promise<string> {
  const id = await startRun({ prompt, agent: "demo", attempts });
  const run = await waitForRun(id, settled);
  expect(run.rounds[0]!.attempts.map((a) => a.status)).toEqual(Array(attempts).fill("done"));
  return id;
}

/** Runs a command in the attempt's sandbox through the local server's toolbox, as Daytona's API would. */
async function sandboxExec(sandboxId: string, command: string): Promise<string> {
  const res = await fetch(`${env.LOCAL_SANDBOX_URL}/toolbox/${sandboxId}/process/execute`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer local" },
    body: JSON.stringify({ command, timeout: 20 }),
  });
  return ((await res.json()) as { result: string }).result;
}

describe("previews", () => {
  it("serves four Node servers on port 3000 at once, each through its own signed URL", async () => {
    const id = await doneRun("a greeting page", 4);
    const res = await api(`/api/runs/${id}/rounds/1/preview`, { method: "POST" });
    expect(res.status).toBe(200);
    const { previews } = (await res.json()) as { previews: Preview[] };
    expect(previews.map((p) => [p.attempt, p.kind, p.port])).toEqual([1, 2, 3, 4].map((n) => [n, "node", 3000]));
    const pages = await Promise.all(previews.map(async (p) => (await fetch(p.url!)).text()));
    pages.forEach((html, i) => expect(html).toContain(`<p>attempt ${i + 1}</p>`));
    // The run shows each link while it is good.
    const run = (await (await api(`/api/runs/${id}`)).json()) as { rounds: { attempts: { preview: { url: string } | null }[] }[] };
    expect(run.rounds[0]!.attempts.map((a) => a.preview?.url)).toEqual(previews.map((p) => p.url));
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("serves a static site and restarts a killed server on the next request", async () => {
    const id = await doneRun("a static page [static]");
    const first = await preview(`/api/runs/${id}/attempts/1/preview`);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ attempt: 1, kind: "static", port: 8080 });
    expect(await (await fetch(first.body.url!)).text()).toContain("<h1>a static page</h1>");

    // The server dies; the link stops answering; the next request starts it again.
    const run = (await (await api(`/api/runs/${id}`)).json()) as { rounds: { attempts: { sandboxId: string }[] }[] };
    await sandboxExec(run.rounds[0]!.attempts[0]!.sandboxId, "pkill -f static-server.mjs; sleep 0.5; pgrep -f static-server.mjs || echo gone");
    expect((await fetch(first.body.url!)).status).toBeGreaterThanOrEqual(500);
    const again = await preview(`/api/runs/${id}/rounds/1/attempts/1/preview`);
    expect(again.status).toBe(200);
    expect(await (await fetch(again.body.url!)).text()).toContain("<h1>a static page</h1>");
    // A request while it runs reuses the running server (and the same detection).
    const third = await preview(`/api/runs/${id}/attempts/1/preview`);
    expect(third.body.kind).toBe("static");
    expect(await sandboxExec(run.rounds[0]!.attempts[0]!.sandboxId, "pgrep -fc 'node .*static-server.mjs'")).toBe("1\n");
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("refuses an expired link, and a new request gives a fresh one", async () => {
    const id = await doneRun("short link");
    const short = await preview(`/api/runs/${id}/attempts/1/preview`, { expiresIn: 1 });
    expect(short.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const refused = await fetch(short.body.url!);
    expect([401, 403, 410]).toContain(refused.status);
    const fresh = await preview(`/api/runs/${id}/attempts/1/preview`);
    expect(fresh.body.url).not.toBe(short.body.url);
    expect((await fetch(fresh.body.url!)).status).toBe(200);
    expect(fresh.body.expiresAt! - Date.now()).toBeGreaterThan(3500_000);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("explains a server that never answers with its last log lines", async () => {
    const id = await doneRun("a stuck server [never-ready]");
    const res = await preview(`/api/runs/${id}/attempts/1/preview`, { healthTries: 3, healthIntervalMs: 200 });
    expect(res.status).toBe(409);
    expect(res.body.error!.code).toBe("preview_failed");
    expect(res.body.error!.message).toMatch(/did not answer on port 3000 after 3 tries/);
    expect(res.body.error!.message).toContain("warming up, attempt 1");
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("counts a preview's sandbox toward the account's attempts at once: past the limit, 429", async () => {
    const made = (await (await api("/api/accounts", { method: "POST", json: { name: "previewer", limits: { concurrentAttempts: 2 } }, key: ADMIN_TOKEN })).json()) as {
      account: { id: string };
      key: { key: string };
    };
    const key = made.key.key;
    const id = await startRun({ prompt: "two pages [static]", agent: "demo", attempts: 2 }, key);
    await expect.poll(async () => settled((await (await api(`/api/runs/${id}`, { key })).json()) as Parameters<typeof settled>[0]), { timeout: 45_000 }).toBe(true);
    // Now one sandbox at a time.
    expect((await api(`/api/accounts/${made.account.id}`, { method: "PATCH", json: { limits: { concurrentAttempts: 1 } }, key: ADMIN_TOKEN })).status).toBe(200);
    const open = (n: number) => api(`/api/runs/${id}/attempts/${n}/preview`, { method: "POST", key });
    expect((await open(1)).status).toBe(200);
    const second = await open(2);
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("30");
    expect(((await second.json()) as Preview).error).toMatchObject({ code: "too_many_attempts", message: expect.stringContaining("previews count") });
    // The preview that holds the slot is asked for again: it keeps it.
    expect((await open(1)).status).toBe(200);
    // And a new run waits for it too.
    const run = await api("/api/runs", { method: "POST", json: { prompt: "more", agent: "demo", attempts: 1 }, key });
    expect(run.status).toBe(429);
    const usage = (await (await api("/api/accounts/me", { key })).json()) as { usage: { activeAttempts: number } };
    expect(usage.usage.activeAttempts).toBe(1);
    await api(`/api/runs/${id}/cancel`, { method: "POST", key });
  });

  it("redacts known secrets from a failed preview's log lines, as from every other stored text", async () => {
    const secret = env.MULTISHOT_SIGNING_SECRET!;
    const id = await startRun({ prompt: "a page [static]", agent: "demo", attempts: 1, preview: { command: `echo "booting with ${secret}"; sleep 600`, port: 4100 } });
    await waitForRun(id, settled);
    const res = await preview(`/api/runs/${id}/attempts/1/preview`, { healthTries: 2, healthIntervalMs: 200 });
    expect(res.body.error!.message).toContain("booting with [redacted]");
    expect(res.body.error!.message).not.toContain(secret);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("uses the run's preview config over detection, and says why an attempt without a sandbox cannot be previewed", async () => {
    const id = await startRun({
      prompt: "configured [static]",
      agent: "demo",
      attempts: 2,
      variations: [{}, { promptSuffix: "[fail]" }],
      preview: {
        command: `node -e "require('http').createServer((q, s) => s.end('configured on ' + process.env.PORT)).listen(process.env.PORT, '0.0.0.0')"`,
        port: 4000,
      },
    });
    await waitForRun(id, settled);
    const { previews } = (await (await api(`/api/runs/${id}/rounds/1/preview`, { method: "POST" })).json()) as { previews: Preview[] };
    expect(previews[0]).toMatchObject({ attempt: 1, kind: "configured", port: 4000 });
    expect(await (await fetch(previews[0]!.url!)).text()).toBe("configured on 4000");
    expect(previews[1]!.error!.message).toMatch(/sandbox is gone \(attempt failed/);
    expect((await preview(`/api/runs/${id}/rounds/7/preview`)).status).toBe(404);
    expect((await preview(`/api/runs/${id}/attempts/1/preview`, { expiresIn: 90_000 })).status).toBe(400);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("installs and serves a Vite app", { timeout: 240_000 }, async () => {
    const id = await doneRun("a vite app [vite]");
    const res = await preview(`/api/runs/${id}/attempts/1/preview`, { healthTries: 60 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ kind: "vite", port: 5173 });
    const page = await fetch(res.body.url!);
    const html = await page.text();
    if (page.status !== 200) {
      const run = (await (await api(`/api/runs/${id}`)).json()) as { rounds: { attempts: { sandboxId: string }[] }[] };
      // Say why: the server's own log, and whether it still answers inside the sandbox.
      console.log(await sandboxExec(run.rounds[0]!.attempts[0]!.sandboxId, "cat ~/.multishot/preview.log; curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:5173/"));
    }
    expect(html).toContain('<script type="module" src="/main.js"></script>');
    expect(html).toContain("/@vite/client");
    const base = res.body.url!.replace(/\/?$/, "/");
    const js = await fetch(new URL("main.js", base));
    expect(js.status, await js.clone().text()).toBe(200);
    expect(await js.text()).toContain("vite app, attempt 1");
    // The install happened in the preview's copy: the attempt's workspace (a winner-to-be) is untouched.
    const run = (await (await api(`/api/runs/${id}`)).json()) as { rounds: { attempts: { sandboxId: string }[] }[] };
    const sandboxId = run.rounds[0]!.attempts[0]!.sandboxId;
    expect((await sandboxExec(sandboxId, "ls -A ~/workspace")).split("\n").filter(Boolean).sort()).toEqual([".git", "index.html", "main.js", "package.json"]);
    expect(await sandboxExec(sandboxId, "test -d ~/preview/node_modules/vite && echo installed")).toBe("installed\n");
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("stops the server after the idle limit", async () => {
    // PREVIEW_IDLE_MINUTES is 0.1 (6 s) in these tests.
    const id = await doneRun("idle page [static]");
    const p = await preview(`/api/runs/${id}/attempts/1/preview`);
    expect((await fetch(p.body.url!)).status).toBe(200);
    const slot = () => env.DB.prepare("SELECT preview_until AS u FROM attempts WHERE run_id = ? AND number = 1").bind(id).first<{ u: number | null }>();
    // While it is up, the preview holds one of the account's attempts until its idle limit.
    expect((await slot())!.u).toBeGreaterThan(Date.now());
    const until = Date.now() + 30_000;
    let view: { rounds: { attempts: { preview: unknown; sandboxId: string }[] }[] };
    for (;;) {
      view = (await (await api(`/api/runs/${id}`)).json()) as typeof view;
      if (view.rounds[0]!.attempts[0]!.preview === null || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(view.rounds[0]!.attempts[0]!.preview).toBeNull();
    expect(await sandboxExec(view.rounds[0]!.attempts[0]!.sandboxId, "pgrep -f static-server.mjs || echo none")).toBe("none\n");
    // Stopped, it holds none.
    await expect.poll(async () => (await slot())!.u).toBeNull();
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
