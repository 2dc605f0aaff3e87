// What a run's object tells the outside world as its events happen: outbound webhooks, Slack progress
// messages. The object calls `onEvent` for every event it appends (synchronously, in order) and hands
// every due timer whose key starts with `hook:` to `onTimer`. Hooks keep their own tables in the
// object's SQLite storage and schedule their own `hook:` timers through the host.
//
// An event appended inside an RPC (start, pickWinner, cancel, startRound, completeWinner) is followed by
// the object's re-arm, and one appended in a step by the alarm's own loop, so a timer a hook schedules
// from `onEvent` is always picked up.
import type { HookHost } from "../integrations/hook-host.ts";
import { WebhookOutbox } from "../integrations/outbox.ts";
import { SlackProgress } from "../integrations/slack-progress.ts";
import type { RunEvent } from "./state.ts";

export class RunHooks {
  private readonly host: HookHost;
  private readonly webhooks: WebhookOutbox;
  private readonly slack: SlackProgress;

  constructor(host: HookHost) {
    this.host = host;
    this.webhooks = new WebhookOutbox(host);
    this.slack = new SlackProgress(host);
  }

  /** Called for every appended event, in order. Must not throw; work that waits belongs in a timer. */
  onEvent(event: RunEvent): void {
    for (const hook of [this.webhooks, this.slack]) {
      try {
        hook.onEvent(event);
      } catch (err) {
        console.error(`a hook failed on event ${event.type}`, err instanceof Error ? err.stack : err);
      }
    }
  }

  /** Runs a due `hook:` timer. It must reschedule or unschedule its key. */
  async onTimer(key: string): Promise<void> {
    if (this.webhooks.handles(key)) return this.webhooks.onTimer(key);
    if (this.slack.handles(key)) return this.slack.onTimer();
    this.host.unschedule(key);
  }
}
