// Inbound webhooks: an account makes an endpoint (its secret shown once, stored nowhere); a payload
// signed with that secret (multishot's scheme or GitHub's) starts a run through the endpoint's template,
// once per delivery id; anything not signed right is refused with 401 and starts nothing.
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, api, getRun } from "./helpers.ts";

const started: string[] = [];
afterAll(async () => {
  for (const id of started) await api(`/api/runs/${id}/cancel`, { method: "POST" });
});

/** HMAC-SHA256, hex: computed here, independently of the code under test. */
async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
  return [...sig].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const now = () => Math.floor(Date.now() / 1000);

interface Endpoint {
  id: string;
  kind: string;
  hookUrl: string;
  secret: string;
}

async function makeInbound(template: unknown, key?: string): Promise<Endpoint> {
  const res = await api("/api/webhooks", { method: "POST", json: { kind: "inbound", name: "test", template }, ...(key ? { key } : {}) });
  const body = (await res.json()) as Endpoint;
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body;
}

function hook(endpointId: string, body: string, headers: Record<string, string>): Promise<Response> {
  return exports.default.fetch(`http://multishot.test/hooks/${endpointId}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

/** multishot's signature; `signDelivery` puts the delivery id inside the signed text, as an inbound sender may. */
async function multishotHeaders(secret: string, body: string, opts: { timestamp?: number; delivery?: string; signDelivery?: boolean } = {}) {
  const ts = opts.timestamp ?? now();
  const signed = opts.signDelivery ? `${ts}.${opts.delivery}.${body}` : `${ts}.${body}`;
  return {
    "x-multishot-timestamp": String(ts),
    "x-multishot-signature": `sha256=${await hmacHex(secret, signed)}`,
    ...(opts.delivery ? { "x-multishot-delivery": opts.delivery } : {}),
  };
}

const runCount = async () => (await env.DB.prepare("SELECT count(*) AS n FROM runs").first<{ n: number }>())!.n;

async function errorOf(res: Response) {
  return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error };
}

const issueEvent = (action: string, n: number, association = "COLLABORATOR") => ({
  action,
  issue: {
    number: n,
    title: `Add a dark mode toggle #${n}`,
    body: "The site should follow the system theme, with a toggle in the header.",
    state: action === "closed" ? "closed" : "open",
    html_url: `https://github.com/acme/site/issues/${n}`,
    author_association: association,
  },
  // Nothing listens here: the attempts fail to clone, which this test does not need.
  repository: { full_name: "acme/site", clone_url: "http://127.0.0.1:9/acme/site.git", default_branch: "main" },
  sender: { login: "octocat" },
});

describe("inbound webhooks", () => {
  it("shows an endpoint's secret once and keeps it nowhere: not in D1, not in listings", async () => {
    const e = await makeInbound("run-request");
    expect(e.id).toMatch(/^wh_[a-z2-7]{20}$/);
    // Standard Webhooks' form: whsec_ and the key (32 bytes) in base64.
    expect(e.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(e.hookUrl).toMatch(new RegExp(`/hooks/${e.id}$`));

    const listed = await (await api("/api/webhooks")).text();
    expect(listed).toContain(e.id);
    expect(listed).not.toContain(e.secret);
    const one = await (await api(`/api/webhooks/${e.id}`)).text();
    expect(one).not.toContain(e.secret);
    expect(JSON.parse(one)).not.toHaveProperty("secret");

    const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all<{ name: string }>();
    for (const { name } of tables.results.filter((t) => !/^(_cf_|sqlite_)/.test(t.name))) {
      const dump = JSON.stringify(await env.DB.prepare(`SELECT * FROM "${name}"`).all());
      expect(dump, name).not.toContain(e.secret);
      expect(dump, name).not.toContain(e.secret.slice(6));
      expect(dump, name).not.toContain(e.secret.slice(6, 30));
    }
  });

  it("starts a run from a GitHub issue event signed GitHub's way, and a redelivery answers the same run", async () => {
    const e = await makeInbound({ preset: "github-issue", run: { agent: "demo", attempts: 2 } });
    const before = await runCount();
    const body = JSON.stringify(issueEvent("opened", 42));
    const headers = {
      "x-github-event": "issues",
      "x-github-delivery": crypto.randomUUID(),
      "x-hub-signature-256": `sha256=${await hmacHex(e.secret, body)}`,
    };
    const res = await hook(e.id, body, headers);
    const first = (await res.json()) as { id: string; status: string; delivery: string; replayed?: boolean };
    expect(res.status, JSON.stringify(first)).toBe(202);
    expect(first.id).toMatch(/^run_[a-z2-7]{20}$/);
    expect(first.replayed).toBeUndefined();
    started.push(first.id);

    const run = await getRun(first.id);
    expect(run.prompt).toContain("Add a dark mode toggle #42");
    expect(run.prompt).toContain("follow the system theme");
    expect(run.config).toMatchObject({ attempts: 2, agent: "demo", base: { git: "http://127.0.0.1:9/acme/site.git", ref: "main" } });

    const again = await hook(e.id, body, headers);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: first.id, replayed: true });
    expect(await runCount()).toBe(before + 1);

    // The endpoint's log names the delivery and its run.
    const log = (await (await api(`/api/webhooks/${e.id}/deliveries`)).json()) as { deliveries: { id: string; outcome: string; runId: string }[] };
    // GitHub's delivery id is not signed: it is shown, and the delivery is known by its signature and body.
    expect(log.deliveries).toEqual([expect.objectContaining({ id: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), senderId: headers["x-github-delivery"], outcome: "started", runId: first.id })]);

    // An event the template does not want is acknowledged and ignored.
    const closed = JSON.stringify(issueEvent("closed", 42));
    const ignored = await hook(e.id, closed, {
      "x-github-event": "issues",
      "x-github-delivery": crypto.randomUUID(),
      "x-hub-signature-256": `sha256=${await hmacHex(e.secret, closed)}`,
    });
    expect(ignored.status).toBe(200);
    expect(await ignored.json()).toMatchObject({ ignored: true, reason: expect.stringContaining("action") });
    expect(await runCount()).toBe(before + 1);

    // On a public repository anyone can open an issue, and its text would be the agent's prompt: only
    // the owner, members and collaborators start a run.
    for (const association of ["NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR"]) {
      const stranger = JSON.stringify(issueEvent("opened", 43, association));
      const res = await hook(e.id, stranger, { "x-github-event": "issues", "x-hub-signature-256": `sha256=${await hmacHex(e.secret, stranger)}` });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ignored: true, reason: expect.stringContaining(`issue.author_association is "${association}"`) });
    }
    expect(await runCount()).toBe(before + 1);
  });

  it("starts one run from a request signed by the standardwebhooks package, and none from the same request again", async () => {
    const e = await makeInbound({ preset: "run-request", run: { agent: "demo", attempts: 1 } });
    const before = await runCount();
    const body = JSON.stringify({ prompt: "signed the standard way [hang]" });
    const wh = new Webhook(e.secret);
    const signed = (id: string, at = new Date()) => ({ "webhook-id": id, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": wh.sign(id, at, body) });
    const headers = signed("msg_2kV9standard01");
    const first = await hook(e.id, body, headers);
    expect(first.status).toBe(202);
    const run = (await first.json()) as { id: string; delivery: string };
    expect(run.delivery).toBe("msg_2kV9standard01");
    started.push(run.id);
    // The same message again (a retry re-signs it with a new timestamp): the first run, nothing new.
    const again = await hook(e.id, body, signed("msg_2kV9standard01", new Date(Date.now() + 2000)));
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: run.id, replayed: true });
    expect(await runCount()).toBe(before + 1);
    // A tampered body, another secret, a stale timestamp, an id the signature does not cover: 401.
    const other = new Webhook(`whsec_${btoa("another secret, 32 bytes long!!!")}`);
    const refusals: [string, string, Record<string, string>][] = [
      ["tampered body", body.replace("standard", "sneaky"), headers],
      ["wrong secret", body, { ...headers, "webhook-signature": other.sign("msg_2kV9standard01", new Date(), body) }],
      ["stale timestamp", body, signed("msg_old", new Date(Date.now() - 6 * 60_000))],
      ["id moved", body, { ...headers, "webhook-id": "msg_someone_else" }],
    ];
    for (const [what, sent, h] of refusals) {
      const res = await hook(e.id, sent, h);
      expect(res.status, what).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code, what).toBe("invalid_signature");
    }
    expect(await runCount()).toBe(before + 1);
    await api(`/api/runs/${run.id}/cancel`, { method: "POST" });
  });

  it("never lets an unsigned delivery id make a replayed request a new delivery", async () => {
    const e = await makeInbound({ preset: "run-request", run: { agent: "demo", attempts: 1 } });
    const before = await runCount();
    const answers = async (body: string, headersOf: (i: number) => Promise<Record<string, string>>) => {
      const out: { http: number; id: string; replayed?: boolean }[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await hook(e.id, body, await headersOf(i));
        out.push({ ...((await res.json()) as { id: string; replayed?: boolean }), http: res.status });
      }
      return out;
    };
    // One GitHub body and signature, sent with three delivery ids: one run.
    const gh = JSON.stringify({ prompt: "github replay [hang]" });
    const ghSig = `sha256=${await hmacHex(e.secret, gh)}`;
    const ghRuns = await answers(gh, async () => ({ "x-hub-signature-256": ghSig, "x-github-delivery": crypto.randomUUID() }));
    expect(ghRuns.map((r) => r.http)).toEqual([202, 200, 200]);
    expect(new Set(ghRuns.map((r) => r.id)).size).toBe(1);
    started.push(ghRuns[0]!.id);
    // One multishot timestamp and signature (not covering the id), sent with three delivery ids: one run.
    const ms = JSON.stringify({ prompt: "multishot replay [hang]" });
    const signed = await multishotHeaders(e.secret, ms);
    const msRuns = await answers(ms, async (i) => ({ ...signed, "x-multishot-delivery": `forged-${i}` }));
    expect(msRuns.map((r) => r.http)).toEqual([202, 200, 200]);
    expect(new Set(msRuns.map((r) => r.id)).size).toBe(1);
    started.push(msRuns[0]!.id);
    expect(await runCount()).toBe(before + 2);

    // A delivery id inside the signature is the sender's own: a retry under it, signed anew, is the same
    // delivery; the id cannot be changed without the secret.
    const own = JSON.stringify({ prompt: "signed delivery [hang]" });
    const first = await hook(e.id, own, await multishotHeaders(e.secret, own, { delivery: "order-7", signDelivery: true }));
    expect(first.status).toBe(202);
    const firstRun = ((await first.json()) as { id: string }).id;
    started.push(firstRun);
    const retry = await hook(e.id, own, await multishotHeaders(e.secret, own, { timestamp: now() + 1, delivery: "order-7", signDelivery: true }));
    expect(retry.status).toBe(200);
    expect(await retry.json()).toMatchObject({ id: firstRun, replayed: true, delivery: "order-7" });
    const moved = { ...(await multishotHeaders(e.secret, own, { delivery: "order-7", signDelivery: true })), "x-multishot-delivery": "order-8" };
    expect((await hook(e.id, own, moved)).status).toBe(401);
    expect(await runCount()).toBe(before + 3);
    // Their attempts would hold the account's concurrency for the tests after this one.
    for (const id of [ghRuns[0]!.id, msRuns[0]!.id, firstRun]) await api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("maps any JSON payload to a run through a template: placeholders, typed values, defaults and a when-filter", async () => {
    const e = await makeInbound({
      when: { event: ["push", "deploy"], "repo.private": false },
      run: { prompt: "Fix {{repo.name}} on {{branch}}: {{commit.message}}", attempts: "{{count}}", agent: "demo", model: "{{missing.model}}" },
    });
    const payload = { event: "push", branch: "main", repo: { name: "site", private: false }, commit: { message: "the build is broken [hang]" }, count: 3 };
    const body = JSON.stringify(payload);
    const res = await hook(e.id, body, await multishotHeaders(e.secret, body, { delivery: "push-1" }));
    const { id } = (await res.json()) as { id: string };
    expect(res.status).toBe(202);
    started.push(id);
    const run = await getRun(id);
    expect(run.prompt).toBe("Fix site on main: the build is broken [hang]");
    expect(run.config).toMatchObject({ attempts: 3, agent: "demo" });
    expect(run.config).not.toHaveProperty("model");

    const other = JSON.stringify({ ...payload, event: "tag" });
    const ignored = await hook(e.id, other, await multishotHeaders(e.secret, other, { delivery: "tag-1" }));
    expect(await ignored.json()).toMatchObject({ ignored: true, reason: 'event is "tag", not "push" or "deploy"' });
  });

  it("refuses with 401 a tampered body, a wrong secret, a stale timestamp and a missing header, and starts nothing", async () => {
    const e = await makeInbound({ preset: "run-request", run: { agent: "demo", attempts: 1 } });
    const body = JSON.stringify({ prompt: "should never run [hang]" });
    const good = await multishotHeaders(e.secret, body, { delivery: "d-1" });
    const before = await runCount();
    const cases: [string, string, Record<string, string>][] = [
      ["tampered body", body.replace("never", "always"), good],
      ["wrong secret", body, await multishotHeaders(`${e.secret}x`, body)],
      ["stale timestamp", body, await multishotHeaders(e.secret, body, { timestamp: now() - 6 * 60 })],
      ["timestamp from the future", body, await multishotHeaders(e.secret, body, { timestamp: now() + 6 * 60 })],
      ["timestamp moved, signature kept", body, { ...good, "x-multishot-timestamp": String(now() + 1) }],
      ["missing signature", body, { "x-multishot-timestamp": good["x-multishot-timestamp"] }],
      ["missing timestamp", body, { "x-multishot-signature": good["x-multishot-signature"] }],
      ["no headers at all", body, {}],
      ["GitHub signature, wrong secret", body, { "x-hub-signature-256": `sha256=${await hmacHex("not-the-secret", body)}` }],
    ];
    for (const [what, sent, headers] of cases) {
      const res = await hook(e.id, sent, headers);
      const { status, error } = await errorOf(res);
      expect(status, what).toBe(401);
      expect(error.code, what).toBe("invalid_signature");
      expect(error.message, what).not.toContain(e.secret);
    }
    expect(await runCount()).toBe(before);
    const log = (await (await api(`/api/webhooks/${e.id}/deliveries`)).json()) as { deliveries: unknown[] };
    expect(log.deliveries).toEqual([]);

    // The same request signed right does start its run.
    const ok = await hook(e.id, body, good);
    expect(ok.status).toBe(202);
    started.push(((await ok.json()) as { id: string }).id);
    expect(await runCount()).toBe(before + 1);
  });

  it("answers bad requests with a 4xx JSON error that says what is wrong", async () => {
    const bad: [unknown, string][] = [
      [{ kind: "inbound", template: "gitlab-issue" }, "template"],
      [{ kind: "inbound", template: { when: { action: { nested: true } }, run: { prompt: "x" } } }, "template"],
      [{ kind: "inbound", template: {} }, "template"],
      [{ kind: "outbound", url: "ftp://example.com/hook" }, "url"],
      [{ kind: "outbound", url: "https://example.com/hook", events: ["run.exploded"] }, "events"],
      [{ kind: "sideways" }, "kind"],
      [{ template: "run-request" }, "kind"],
    ];
    for (const [json, mentions] of bad) {
      const { status, error } = await errorOf(await api("/api/webhooks", { method: "POST", json }));
      expect(status, JSON.stringify(json)).toBe(400);
      expect(error.code).toBe("validation_failed");
      expect(error.message, JSON.stringify(json)).toContain(mentions);
    }

    const e = await makeInbound({ preset: "run-request", run: { agent: "demo" } });
    const before = await runCount();
    const empty = JSON.stringify({ prompt: "   " });
    const invalid = await errorOf(await hook(e.id, empty, await multishotHeaders(e.secret, empty)));
    expect(invalid).toMatchObject({ status: 422, error: { code: "template_invalid_run", message: expect.stringContaining("prompt") } });
    const notJson = "{nope";
    expect(await errorOf(await hook(e.id, notJson, await multishotHeaders(e.secret, notJson)))).toMatchObject({ status: 400, error: { code: "invalid_json" } });
    expect((await errorOf(await hook("wh_aaaaaaaaaaaaaaaaaaaa", empty, {}))).status).toBe(404);
    expect((await errorOf(await hook("nonsense", empty, {}))).status).toBe(404);
    expect(await runCount()).toBe(before);
  });

  it("keeps an account's endpoints to itself; rotating a secret retires the old one; a deleted endpoint answers 404", async () => {
    const made = await api("/api/accounts", { method: "POST", json: { name: "hooks-other" }, key: ADMIN_TOKEN });
    const other = ((await made.json()) as { key: { key: string } }).key.key;
    const e = await makeInbound({ preset: "run-request", run: { agent: "demo", attempts: 1 } });
    expect((await api(`/api/webhooks/${e.id}`, { key: other })).status).toBe(404);
    expect((await api(`/api/webhooks/${e.id}`, { method: "DELETE", key: other })).status).toBe(404);
    expect((await api(`/api/webhooks/${e.id}/deliveries`, { key: other })).status).toBe(404);
    const theirs = (await (await api("/api/webhooks", { key: other })).json()) as { endpoints: unknown[] };
    expect(theirs.endpoints).toEqual([]);
    // Only admin keys manage webhooks.
    const keyRes = await api("/api/keys", { method: "POST", json: { scopes: ["runs:write"] }, key: other });
    const writer = ((await keyRes.json()) as { key: string }).key;
    expect((await errorOf(await api("/api/webhooks", { key: writer }))).status).toBe(403);

    // With no grace, the old secret stops at once (a rotation's grace is tested end to end in test/node/webhooks.test.ts).
    const rotated = (await (await api(`/api/webhooks/${e.id}/secret`, { method: "POST", json: { graceHours: 0 } })).json()) as { secret: string; secretVersion: number };
    expect(rotated.secretVersion).toBe(2);
    expect(rotated.secret).not.toBe(e.secret);
    const body = JSON.stringify({ prompt: "rotated [hang]" });
    expect((await hook(e.id, body, await multishotHeaders(e.secret, body))).status).toBe(401);
    const ok = await hook(e.id, body, await multishotHeaders(rotated.secret, body));
    expect(ok.status).toBe(202);
    started.push(((await ok.json()) as { id: string }).id);

    // With a grace, a sender still holding the old secret gets through until it ends; the new one too.
    const graced = (await (await api(`/api/webhooks/${e.id}/secret`, { method: "POST", json: { graceHours: 1 } })).json()) as { secret: string };
    const std = (secret: string, id: string, text: string) => {
      const at = new Date();
      return { "webhook-id": id, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": new Webhook(secret).sign(id, at, text) };
    };
    const startedBy = async (secret: string, id: string, text: string) => {
      const res = await hook(e.id, text, std(secret, id, text));
      const json = (await res.json()) as { id: string };
      // Cancelled at once: these runs would hold the account's attempts for the tests after this one.
      if (res.status === 202) await api(`/api/runs/${json.id}/cancel`, { method: "POST" });
      return res.status;
    };
    for (const r of started.splice(0)) await api(`/api/runs/${r}/cancel`, { method: "POST" });
    const oldBody = JSON.stringify({ prompt: "old secret in grace" });
    expect(await startedBy(rotated.secret, "msg_grace_old", oldBody)).toBe(202);
    const newBody = JSON.stringify({ prompt: "new secret" });
    expect(await startedBy(graced.secret, "msg_grace_new", newBody)).toBe(202);
    // The secret before that one is long gone.
    expect((await hook(e.id, oldBody, std(e.secret, "msg_gone", oldBody))).status).toBe(401);

    expect((await api(`/api/webhooks/${e.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await hook(e.id, body, await multishotHeaders(graced.secret, body))).status).toBe(404);
    expect((await api(`/api/webhooks/${e.id}`)).status).toBe(404);
  });

  it("honours Idempotency-Key on creation without storing the answer", async () => {
    const json = { kind: "outbound", url: "http://127.0.0.1:9/events" };
    const key = `create-${crypto.randomUUID()}`;
    const a = await api("/api/webhooks", { method: "POST", json, headers: { "idempotency-key": key } });
    const b = await api("/api/webhooks", { method: "POST", json, headers: { "idempotency-key": key } });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    const [first, second] = (await Promise.all([a.json(), b.json()])) as [Endpoint, Endpoint];
    expect(second).toEqual(first);
    const listed = (await (await api("/api/webhooks")).json()) as { endpoints: { id: string }[] };
    expect(listed.endpoints.filter((x) => x.id === first.id)).toHaveLength(1);
    const reused = await api("/api/webhooks", { method: "POST", json: { ...json, name: "other" }, headers: { "idempotency-key": key } });
    expect((await errorOf(reused)).status).toBe(422);
    const stored = JSON.stringify(await env.DB.prepare("SELECT * FROM idempotency_keys").all());
    expect(stored).not.toContain(first.secret);
    await api(`/api/webhooks/${first.id}`, { method: "DELETE" });
  });
});
