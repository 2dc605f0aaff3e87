// A Slack-started run's progress messages, kept by the run's Durable Object: one message per round in
// the channel the command came from, posted when the round opens and updated as its attempts move.
//
// Rendering is a function of the run's view, so the timer does not replay events: it renders every
// round, and posts or updates the messages whose text changed. Events only say "something changed"
// (a generation counter) and wake the timer, at most once a second, which keeps within Slack's rate
// limits however fast the attempts move.
import { db } from "../db/client.ts";
import { slackRun } from "../db/integration-queries.ts";
import type { HookHost } from "./hook-host.ts";
import type { RunEvent } from "../durable/state.ts";
import { unseal } from "./derive.ts";
import { isRetryableSlackError, SlackApi, SlackApiError } from "./slack-api.ts";
import { roundMessage } from "./slack-messages.ts";

const KEY = "hook:slack";
/** Least time between two rounds of posting. */
const THROTTLE_MS = 1_000;
/** How long to wait for the command to seal its share link before posting without it. */
const SHARE_LINK_WAIT_MS = 10_000;
export const SHARE_SEAL_PURPOSE = "slack-share-url";

const RELEVANT = new Set([
  "run.created",
  "run.status",
  "attempt.status",
  "round.started",
  "round.finished",
  "winner.selected",
  "winner.stored",
  "winner.pack_failed",
]);

const SCHEMA = `
CREATE TABLE IF NOT EXISTS hook_slack (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hook_slack_messages (
  round INTEGER PRIMARY KEY, channel TEXT NOT NULL, ts TEXT NOT NULL, rendered TEXT NOT NULL, at INTEGER NOT NULL);
`;

type Row = Record<string, SqlStorageValue>;

/** Where the run reports: a channel, or nowhere (not a Slack run, or Slack refused for good). */
type Target = { channelId: string; teamId: string; since: number } | { off: string };

export class SlackProgress {
  private readonly host: HookHost;
  private shareUrl: string | null = null;
  /** The share link was looked for long enough: messages go without it. */
  private noShareUrl = false;
  private lastPass = 0;

  constructor(host: HookHost) {
    this.host = host;
    host.sql.exec(SCHEMA);
  }

  handles(key: string): boolean {
    return key === KEY;
  }

  onEvent(e: RunEvent): void {
    if (!RELEVANT.has(e.type)) return;
    const target = this.target();
    if (target && "off" in target) return;
    this.host.sql.exec(
      "INSERT INTO hook_slack (key, value) VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
    );
    this.host.schedule(KEY, Math.max(Date.now(), this.lastPass + THROTTLE_MS));
  }

  async onTimer(): Promise<void> {
    const generation = this.generation();
    let target = this.target();
    const run = this.host.run();
    if (!run) return this.host.unschedule(KEY);
    if (!target) {
      const row = await slackRun(db(this.host.env.DB), run.id);
      target = row ? { channelId: row.channelId, teamId: row.teamId, since: row.createdAt } : { off: "not started from Slack" };
      this.setTarget(target);
    }
    if ("off" in target) return this.host.unschedule(KEY);
    const api = new SlackApi(this.host.env);
    if (!api.configured) {
      console.warn(`run ${run.id} came from Slack but SLACK_BOT_TOKEN is not set: no progress messages`);
      this.setTarget({ off: "SLACK_BOT_TOKEN is not set" });
      return this.host.unschedule(KEY);
    }
    const shareUrl = await this.share(run.id, target.since);
    if (!shareUrl && Date.now() - target.since < SHARE_LINK_WAIT_MS) {
      // The command is still making the run's share link; the messages should carry it from the start.
      return this.host.schedule(KEY, Date.now() + 250);
    }

    this.lastPass = Date.now();
    const view = await this.host.view();
    try {
      for (const round of view.rounds) {
        const message = roundMessage(view, round, shareUrl);
        const rendered = JSON.stringify(message);
        const posted = this.host.sql.exec<Row>("SELECT channel, ts, rendered FROM hook_slack_messages WHERE round = ?", round.number).toArray()[0];
        if (posted && posted.rendered === rendered) continue;
        if (!posted) {
          const res = await api.call<{ channel: string; ts: string }>("chat.postMessage", {
            channel: target.channelId,
            ...message,
            unfurl_links: false,
            unfurl_media: false,
          });
          this.host.sql.exec(
            "INSERT OR REPLACE INTO hook_slack_messages (round, channel, ts, rendered, at) VALUES (?, ?, ?, ?, ?)",
            round.number,
            res.channel,
            res.ts,
            rendered,
            Date.now(),
          );
        } else {
          await api.call("chat.update", { channel: String(posted.channel), ts: String(posted.ts), ...message });
          this.host.sql.exec("UPDATE hook_slack_messages SET rendered = ?, at = ? WHERE round = ?", rendered, Date.now(), round.number);
        }
      }
    } catch (err) {
      if (isRetryableSlackError(err)) {
        const wait = err instanceof SlackApiError && err.retryAfterMs ? err.retryAfterMs : 5_000;
        console.warn(`Slack progress for run ${run.id}: ${err instanceof Error ? err.message : err}; trying again in ${wait} ms`);
        return this.host.schedule(KEY, Date.now() + wait);
      }
      // The same call would fail the same way again (the bot is not in the channel, the token was revoked).
      const reason = err instanceof Error ? err.message : String(err);
      console.error(`Slack progress for run ${run.id} stops: ${reason}`);
      this.setTarget({ off: reason });
      return this.host.unschedule(KEY);
    }
    // Something changed while this pass ran: another pass, no sooner than the throttle allows.
    if (this.generation() !== generation) this.host.schedule(KEY, this.lastPass + THROTTLE_MS);
    else this.host.unschedule(KEY);
  }

  private async share(runId: string, since: number): Promise<string | null> {
    if (this.shareUrl || this.noShareUrl) return this.shareUrl;
    const row = await slackRun(db(this.host.env.DB), runId);
    if (row?.shareUrlSealed) this.shareUrl = await unseal(this.host.env, SHARE_SEAL_PURPOSE, runId, row.shareUrlSealed);
    else if (Date.now() - since >= SHARE_LINK_WAIT_MS) this.noShareUrl = true;
    return this.shareUrl;
  }

  private target(): Target | null {
    const row = this.host.sql.exec<Row>("SELECT value FROM hook_slack WHERE key = 'target'").toArray()[0];
    return row ? (JSON.parse(String(row.value)) as Target) : null;
  }

  private setTarget(t: Target): void {
    this.host.sql.exec("INSERT OR REPLACE INTO hook_slack (key, value) VALUES ('target', ?)", JSON.stringify(t));
  }

  private generation(): number {
    const row = this.host.sql.exec<Row>("SELECT value FROM hook_slack WHERE key = 'generation'").toArray()[0];
    return row ? Number(row.value) : 0;
  }
}
