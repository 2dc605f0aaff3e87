// Slack end to end under `npm start`, against a fake Slack (tools/fake-slack: Slack's Web API JSON on a
// local port): `/multishot` answers at once with the run's share link; the run posts one message per
// round to the channel and updates it as attempts finish, with each attempt's summary, diff stats,
// preview link and a "Pick as winner" button; the button picks the winner and offers the "Next round"
// modal, whose prompt starts round 2 with its own message.
import { createHmac } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { startFakeSlack, type FakeSlack, type SlackMessageRecord } from "../../tools/fake-slack/server.ts";
import { startService, type Service } from "../support/service.ts";

const SIGNING_SECRET = "e2e-slack-signing-secret-7f3a9c";
const BOT_TOKEN = "test-e2e-0000-fake-bot-token";
const CHANNEL = "C0PROGRESS";
const TEAM = "T0ACME";
const USER = "U0ALICE";

let slack: FakeSlack;
let service: Service;
beforeAll(async () => {
  slack = await startFakeSlack({ token: BOT_TOKEN });
  service = await startService({
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_API_URL: slack.apiUrl,
    POLL_INTERVAL_MS: "1000",
  });
});
afterAll(async () => {
  await service?.close();
  await slack?.close();
});

/** POSTs a form body to the service, signed the way Slack signs (computed here with node's HMAC). */
function fromSlack(path: string, form: Record<string, string>): Promise<Response> {
  const body = new URLSearchParams(form).toString();
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = `v0=${createHmac("sha256", SIGNING_SECRET).update(`v0:${ts}:${body}`).digest("hex")}`;
  return fetch(`${service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts, "x-slack-signature": sig },
    body,
  });
}

const interaction = (payload: Record<string, unknown>) =>
  fromSlack("/slack/interactions", {
    payload: JSON.stringify({ team: { id: TEAM, domain: "acme" }, user: { id: USER, username: "alice", team_id: TEAM }, api_app_id: "A0MULTISHOT", ...payload }),
  });

async function waitFor<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(slack.messages(), null, 1).slice(0, 4000)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const run = async (id: string) => (await (await service.api(`/api/runs/${id}`)).json()) as RunView;

type Block = { type: string; text?: { text: string }; accessory?: { action_id: string; value: string; text: { text: string } }; elements?: { action_id?: string; value?: string; text?: string | { text: string } }[] };
const blocksOf = (m: SlackMessageRecord) => (m.blocks ?? []) as Block[];
const textOf = (m: SlackMessageRecord) => JSON.stringify(m.blocks);
const pickButtons = (m: SlackMessageRecord) => blocksOf(m).flatMap((b) => (b.accessory?.action_id.startsWith("pick_winner") ? [b.accessory] : []));
const roundMessage = (n: number) => slack.messages(CHANNEL).find((m) => m.text.startsWith(`Round ${n} of`));

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("Slack", () => {
  it("runs /multishot from a channel: share link at once, a progress message per round, the winner button and the next-round modal", async () => {
    // The command: answered at once, ephemerally, with the run's share link.
    const t0 = Date.now();
    const res = await fromSlack("/slack/commands", {
      team_id: TEAM,
      team_domain: "acme",
      channel_id: CHANNEL,
      channel_name: "progress",
      user_id: USER,
      user_name: "alice",
      command: "/multishot",
      text: "a landing page for a bakery --attempts 2 --agent demo",
      response_url: slack.responseUrl("command-1"),
      trigger_id: "13345224609.738474920.8088930838d88f008e0",
    });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(res.status).toBe(200);
    const ack = (await res.json()) as { response_type: string; text: string };
    expect(ack.response_type).toBe("ephemeral");
    const id = /run_[a-z2-7]{20}/.exec(ack.text)![0];
    const shareUrl = new RegExp(`${service.url}/r/mss_[A-Za-z0-9_-]{43}`).exec(ack.text)![0];
    expect((await fetch(shareUrl)).status).toBe(200);

    // Round 1's message: posted once, then updated as the attempts move, until both are done.
    const done = await waitFor("round 1's message with both attempts done", () => {
      const m = roundMessage(1);
      // A copy: the fake keeps updating its record of the message.
      return m && pickButtons(m).length === 2 ? structuredClone(m) : null;
    });
    expect(slack.calls("chat.postMessage")).toHaveLength(1);
    expect(done.updates).toBeGreaterThan(0);
    expect((await run(id)).status).toBe("awaiting_pick");
    const text = textOf(done);
    expect(text).toContain(`Round 1* of <${shareUrl}|${id}>`);
    expect(text).toContain("a landing page for a bakery");
    for (const n of [1, 2]) {
      expect(text).toContain(`*Attempt ${n}* · :white_check_mark: done · 3 files +`);
      expect(text).toContain(`Attempt ${n} built`); // the agent's summary
      expect(text).toContain(`<${shareUrl}#attempt-1-${n}|preview>`);
      expect(text).toContain(`<${shareUrl}/rounds/1/attempts/${n}/diff|diff>`);
    }
    for (const call of slack.requests) expect(call.headers.authorization ?? `Bearer ${BOT_TOKEN}`).toBe(`Bearer ${BOT_TOKEN}`);

    // "Pick as winner" on attempt 2: the winner is picked, the message says so, and the modal opens.
    const button = pickButtons(done).find((b) => b.action_id === "pick_winner:1:2")!;
    const picked = await interaction({
      type: "block_actions",
      trigger_id: "13345224609.738474920.pick",
      response_url: slack.responseUrl("pick-1"),
      container: { type: "message", channel_id: CHANNEL, message_ts: done.ts },
      channel: { id: CHANNEL },
      actions: [{ type: "button", block_id: "b1", action_id: button.action_id, value: button.value, action_ts: "1" }],
    });
    expect(picked.status).toBe(200);
    expect((await run(id)).rounds[0]!.winner).toMatchObject({ attempt: 2 });
    const modal = await waitFor("views.open", () => slack.calls("views.open")[0]);
    const opened = modal.body as { trigger_id: string; view: { callback_id: string; private_metadata: string; blocks: { type: string; block_id?: string; element?: { type: string } }[] } };
    expect(opened.trigger_id).toBe("13345224609.738474920.pick");
    expect(opened.view.callback_id).toBe("next_round");
    expect(opened.view.blocks).toContainEqual(expect.objectContaining({ type: "input", block_id: "prompt", element: expect.objectContaining({ type: "plain_text_input" }) }));

    const stored = await waitFor("the winner stored and shown with a Next round button", () => {
      const m = roundMessage(1)!;
      return textOf(m).includes("next_round:1") ? m : null;
    });
    expect(pickButtons(stored)).toEqual([]);
    expect(textOf(stored)).toContain("*Attempt 2* is round 1's winner");

    // A stale button (the round has its winner) is refused, privately.
    const stale = pickButtons(done).find((b) => b.action_id === "pick_winner:1:1")!;
    await interaction({ type: "block_actions", trigger_id: "t-stale", response_url: slack.responseUrl("pick-2"), actions: [{ action_id: stale.action_id, value: stale.value }] });
    const note = await waitFor("the refusal", () => slack.responses("pick-2")[0] as { text: string; response_type: string } | undefined);
    expect(note).toMatchObject({ response_type: "ephemeral", text: expect.stringContaining("already has a winner") });

    // The modal's prompt starts round 2, which gets a message of its own.
    const submitted = await interaction({
      type: "view_submission",
      trigger_id: "t-submit",
      view: {
        id: "V00000001",
        callback_id: "next_round",
        private_metadata: opened.view.private_metadata,
        state: { values: { prompt: { prompt: { type: "plain_text_input", value: "now add a contact form" } } } },
      },
    });
    expect(submitted.status).toBe(200);
    expect(await submitted.text()).toBe("");
    const round2 = await run(id);
    expect(round2.rounds[1]).toMatchObject({ number: 2, prompt: "now add a contact form", fromRound: 1 });
    await waitFor("round 2's message", () => roundMessage(2));
    await waitFor("round 1's Next round button gone", () => !textOf(roundMessage(1)!).includes("next_round:1"));
    expect(slack.messages(CHANNEL)).toHaveLength(2);
    await waitFor("round 2 done", async () => (await run(id)).status === "awaiting_pick");
    await waitFor("round 2's message with its attempts done", () => pickButtons(roundMessage(2)!).length === 2);

    // Neither Slack secret is in anything the service stored or printed, nor in what it sent Slack
    // beyond the Authorization header.
    for (const file of filesUnder(service.stateDir)) {
      const bytes = readFileSync(file).toString("latin1");
      expect(bytes.includes(BOT_TOKEN), file).toBe(false);
      expect(bytes.includes(SIGNING_SECRET), file).toBe(false);
    }
    expect(service.output()).not.toContain(BOT_TOKEN);
    expect(JSON.stringify(slack.requests.map((r) => r.body))).not.toContain(BOT_TOKEN);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
