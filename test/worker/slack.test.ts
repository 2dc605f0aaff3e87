// The Slack slash command inside workerd: a request Slack signed starts one run however often Slack
// delivers it; one not signed right is refused with 401 and starts nothing; a workspace that is not
// linked to an account (outside local mode) starts nothing until one of the workspace's admins redeems a
// link code an account admin made (the fake Slack's users.info says who is a workspace admin).
//
// The Worker's configuration has no Slack secret, so these requests go to the app with one added to
// its bindings (every binding stays the real one). Progress messages and the button flow are tested end
// to end against a fake Slack in test/node/slack.test.ts.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, describe, expect, inject, it } from "vitest";
import { app } from "../../src/index.ts";
import { ADMIN_TOKEN, api } from "./helpers.ts";

const SIGNING_SECRET = "slack-signing-secret-for-tests";
const started = new Set<string>();
afterAll(async () => {
  for (const id of started) await api(`/api/runs/${id}/cancel`, { method: "POST" });
});

async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return [...new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

interface SlackOpts {
  secret?: string;
  timestamp?: number;
  headers?: Record<string, string | null>;
  /** Sent instead of the body that was signed. */
  sentBody?: string;
  env?: Record<string, unknown>;
}

/** POSTs a form body to the app as Slack would: signed `v0:<ts>:<body>` with the signing secret. */
async function slack(path: string, body: string, opts: SlackOpts = {}): Promise<Response> {
  const ts = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const headers = new Headers({
    "content-type": "application/x-www-form-urlencoded",
    "x-slack-request-timestamp": ts,
    "x-slack-signature": `v0=${await hmacHex(opts.secret ?? SIGNING_SECRET, `v0:${ts}:${body}`)}`,
  });
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`http://multishot.test${path}`, { method: "POST", headers, body: opts.sentBody ?? body }),
    { ...env, SLACK_SIGNING_SECRET: SIGNING_SECRET, ...opts.env },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

function command(text: string, o: { team?: string; user?: string; trigger?: string } = {}): string {
  return new URLSearchParams({
    token: "deprecated-verification-token",
    team_id: o.team ?? "T0LOCAL",
    team_domain: "acme",
    channel_id: "C0GENERAL",
    channel_name: "general",
    user_id: o.user ?? "U0ALICE",
    user_name: "alice",
    command: "/multishot",
    text,
    api_app_id: "A0MULTISHOT",
    response_url: "http://127.0.0.1:9/commands/T0LOCAL/1/x",
    trigger_id: o.trigger ?? `${Date.now()}.${Math.floor(Math.random() * 1e9)}.abcdef`,
  }).toString();
}

const count = async (sql: string, ...args: unknown[]) => (await env.DB.prepare(sql).bind(...args).first<{ n: number }>())!.n;
const runs = () => count("SELECT count(*) AS n FROM runs");
const runIdIn = (text: string) => /run_[a-z2-7]{20}/.exec(text)?.[0];

describe("the /multishot slash command", () => {
  it("starts exactly one run when Slack delivers the same command three times", async () => {
    const before = await runs();
    const body = command("a landing page for a bakery [hang] --attempts 2 --agent demo");
    const answers = await Promise.all([
      slack("/slack/commands", body),
      slack("/slack/commands", body, { headers: { "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout" } }),
      slack("/slack/commands", body, { headers: { "x-slack-retry-num": "2", "x-slack-retry-reason": "http_timeout" } }),
    ]);
    const texts: string[] = [];
    for (const res of answers) {
      expect(res.status).toBe(200);
      const json = (await res.json()) as { response_type: string; text: string };
      expect(json.response_type).toBe("ephemeral");
      texts.push(json.text);
    }
    const ids = new Set(texts.map(runIdIn));
    expect(ids.size).toBe(1);
    const id = [...ids][0]!;
    started.add(id);
    expect(await runs()).toBe(before + 1);
    expect(await count("SELECT count(*) AS n FROM slack_runs WHERE run_id = ?", id)).toBe(1);
    // One share link, shown to the person who ran the command.
    expect(await count("SELECT count(*) AS n FROM share_links WHERE run_id = ?", id)).toBe(1);
    // It expires, as every share link does (30 days by default): a link posted in a channel is not forever.
    expect(await count("SELECT count(*) AS n FROM share_links WHERE run_id = ? AND expires_at > ? AND expires_at <= ?", id, Date.now() + 29 * 86_400_000, Date.now() + 30 * 86_400_000)).toBe(1);
    expect(texts.join("\n")).toMatch(/Watch it live: http:\/\/\S+\/r\/mss_[A-Za-z0-9_-]{43}/);

    const run = (await (await api(`/api/runs/${id}`)).json()) as { prompt: string; config: { attempts: number; agent: string } };
    expect(run.prompt).toBe("a landing page for a bakery [hang]");
    expect(run.config).toMatchObject({ attempts: 2, agent: "demo" });

    // Later, one more retry still lands on the same run.
    const late = await slack("/slack/commands", body, { headers: { "x-slack-retry-num": "3" } });
    expect(runIdIn(((await late.json()) as { text: string }).text)).toBe(id);
    expect(await runs()).toBe(before + 1);
  });

  it("refuses with 401 a tampered body, a wrong secret, a stale timestamp and a missing header, and starts nothing", async () => {
    const body = command("never run this [hang] --agent demo");
    const now = Math.floor(Date.now() / 1000);
    const beforeRuns = await runs();
    const beforeSlack = await count("SELECT count(*) AS n FROM slack_runs");
    const cases: [string, string, SlackOpts][] = [
      ["tampered body", "/slack/commands", { sentBody: body.replace("never", "always") }],
      ["wrong secret", "/slack/commands", { secret: "not-the-signing-secret" }],
      ["stale timestamp", "/slack/commands", { timestamp: now - 5 * 60 - 30 }],
      ["timestamp from the future", "/slack/commands", { timestamp: now + 5 * 60 + 30 }],
      ["missing signature", "/slack/commands", { headers: { "x-slack-signature": null } }],
      ["missing timestamp", "/slack/commands", { headers: { "x-slack-request-timestamp": null } }],
      ["signature of another scheme", "/slack/commands", { headers: { "x-slack-signature": "sha256=00" } }],
      ["unsigned interaction", "/slack/interactions", { headers: { "x-slack-signature": null } }],
    ];
    for (const [what, path, opts] of cases) {
      const res = await slack(path, body, opts);
      expect(res.status, what).toBe(401);
      const json = (await res.json()) as { error: { code: string; message: string } };
      expect(json.error.code, what).toBe("invalid_signature");
      expect(json.error.message, what).not.toContain(SIGNING_SECRET);
    }
    expect(await runs()).toBe(beforeRuns);
    expect(await count("SELECT count(*) AS n FROM slack_runs")).toBe(beforeSlack);

    // Without a signing secret configured, Slack's routes are off.
    const off = await slack("/slack/commands", body, { env: { SLACK_SIGNING_SECRET: undefined } });
    expect(off.status).toBe(503);
    expect(((await off.json()) as { error: { code: string } }).error.code).toBe("slack_not_configured");
  });

  it("lets a Slack user pick winners only in their own account's runs", async () => {
    const made = await api("/api/accounts", { method: "POST", json: { name: "not-slack" }, key: ADMIN_TOKEN });
    const otherKey = ((await made.json()) as { key: { key: string } }).key.key;
    const res = await api("/api/runs", { method: "POST", json: { prompt: "someone else's site", agent: "demo", attempts: 1 }, key: otherKey });
    const { id } = (await res.json()) as { id: string };
    // Done, so that only whose run it is stands between the button and a pick.
    await expect
      .poll(async () => ((await (await api(`/api/runs/${id}`, { key: otherKey })).json()) as { status: string }).status, { timeout: 45_000, interval: 200 })
      .toBe("awaiting_pick");
    const payload = {
      type: "block_actions",
      team: { id: "T0LOCAL" },
      user: { id: "U0MALLORY", team_id: "T0LOCAL" },
      trigger_id: "t-1",
      response_url: "http://127.0.0.1:9/actions/1",
      actions: [{ action_id: "pick_winner:1:1", value: JSON.stringify({ run: id, round: 1, attempt: 1 }) }],
    };
    const pick = await slack("/slack/interactions", new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
    expect(pick.status).toBe(200);
    const run = (await (await api(`/api/runs/${id}`, { key: otherKey })).json()) as { rounds: { winner: unknown }[] };
    expect(run.rounds[0]!.winner).toBeNull();
    expect(await count("SELECT count(*) AS n FROM rounds WHERE run_id = ? AND winner_attempt IS NOT NULL", id)).toBe(0);
    const bad = await slack("/slack/interactions", new URLSearchParams({ payload: "{not json" }).toString());
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_payload");
    await api(`/api/runs/${id}/cancel`, { method: "POST", key: otherKey });
  });

  it("answers help and bad flags in Slack, without starting anything", async () => {
    const before = await runs();
    for (const [text, says] of [
      ["", "--attempts"],
      ["help", "link <code>"],
      ["a site --attempts many", "--attempts wants a number"],
      ["a site --attempts 12 --agent demo", "attempts"],
      ["a site --agent gpt", "agent"],
      ["--attempts 2", "Give a prompt"],
    ] as const) {
      const res = await slack("/slack/commands", command(text));
      expect(res.status, text).toBe(200);
      expect(((await res.json()) as { text: string }).text, text).toContain(says);
    }
    expect(await runs()).toBe(before);
  });

  it("outside local mode, starts runs only for a workspace an account admin linked with a one-time code", async () => {
    // Outside local mode, with a bot token for the fake Slack's users.info (U0ADMIN is an admin there).
    const deployed = { DAYTONA_API_KEY: "pretend-deployed", SLACK_API_URL: inject("fakeSlackApiUrl"), SLACK_BOT_TOKEN: inject("fakeSlackToken") };
    const team = `T${crypto.randomUUID().slice(0, 8).toUpperCase()}`;
    const before = await runs();
    const unlinked = await slack("/slack/commands", command("a site [hang] --agent demo", { team }), { env: deployed });
    expect(((await unlinked.json()) as { text: string }).text).toContain("not linked");
    expect(await runs()).toBe(before);

    const accountRes = await api("/api/accounts", { method: "POST", json: { name: "slack-team" }, key: ADMIN_TOKEN });
    const { account, key } = (await accountRes.json()) as { account: { id: string }; key: { key: string } };
    const codeRes = await api("/api/slack/link-codes", { method: "POST", json: { scope: "team" }, key: key.key });
    expect(codeRes.status).toBe(201);
    const { code } = (await codeRes.json()) as { code: string };
    expect(code).toMatch(/^msl_[a-z2-7]{20}$/);
    expect(JSON.stringify(await env.DB.prepare("SELECT * FROM slack_link_codes").all())).not.toContain(code);

    // A member who is not a workspace admin cannot link the workspace; the code stays good.
    for (const user of ["U0MEMBER", "U0UNKNOWN"]) {
      const refused = await slack("/slack/commands", command(`link ${code}`, { team, user }), { env: deployed });
      expect(((await refused.json()) as { text: string }).text, user).toContain("Only a workspace admin or owner can link this workspace");
    }
    const noToken = await slack("/slack/commands", command(`link ${code}`, { team, user: "U0ADMIN" }), { env: { ...deployed, SLACK_BOT_TOKEN: undefined } });
    expect(((await noToken.json()) as { text: string }).text).toContain("needs the service's SLACK_BOT_TOKEN");
    const linked = await slack("/slack/commands", command(`link ${code}`, { team, user: "U0ADMIN" }), { env: deployed });
    expect(((await linked.json()) as { text: string }).text).toContain(`linked to multishot account ${account.id}`);
    const reused = await slack("/slack/commands", command(`link ${code}`, { team, user: "U0ADMIN" }), { env: deployed });
    expect(((await reused.json()) as { text: string }).text).toContain("unknown, used or expired");

    const res = await slack("/slack/commands", command("a linked site [hang] --agent demo --attempts 1", { team }), { env: deployed });
    const id = runIdIn(((await res.json()) as { text: string }).text)!;
    expect(id).toBeTruthy();
    const mine = await api(`/api/runs/${id}`, { key: key.key });
    expect(mine.status).toBe(200);
    await api(`/api/runs/${id}/cancel`, { method: "POST", key: key.key });
    // The local account does not see it.
    expect((await api(`/api/runs/${id}`)).status).toBe(404);

    // Another account cannot take the workspace over.
    const other = await api("/api/accounts", { method: "POST", json: { name: "slack-rival" }, key: ADMIN_TOKEN });
    const rivalKey = ((await other.json()) as { key: { key: string } }).key.key;
    const rivalCode = ((await (await api("/api/slack/link-codes", { method: "POST", json: {}, key: rivalKey })).json()) as { code: string }).code;
    const takeover = await slack("/slack/commands", command(`link ${rivalCode}`, { team, user: "U0OWNER" }), { env: deployed });
    expect(((await takeover.json()) as { text: string }).text).toContain("another multishot account");

    const links = (await (await api("/api/slack/links", { key: key.key })).json()) as { links: { id: string; teamId: string; userId: string }[] };
    expect(links.links).toEqual([expect.objectContaining({ teamId: team, userId: "" })]);
    expect((await api(`/api/slack/links/${links.links[0]!.id}`, { method: "DELETE", key: key.key })).status).toBe(200);
    const after = await slack("/slack/commands", command("a site [hang] --agent demo", { team }), { env: deployed });
    expect(((await after.json()) as { text: string }).text).toContain("not linked");
  });
});
