// What a run's object tells the outside world as its events happen: outbound webhooks, Slack progress
// messages. The object calls `onEvent` for every event it appends (synchronously, in order) and hands
// every due timer whose key starts with `hook:` to `onTimer`. Hooks keep their own tables in the
// object's SQLite storage and schedule their own `hook:` timers through the host.
import type { Env } from "../env.ts";
import type { RunState, RunEvent } from "./store.ts";
import type { RunView } from "./view.ts";

export interface HookHost {
  readonly env: Env;
  readonly sql: SqlStorage;
  /** The run (null before it starts). */
  run(): RunState | null;
  view(): Promise<RunView>;
  /** Wake `onTimer(key)` at `dueAt` (ms since epoch); keys must start with `hook:`. */
  schedule(key: string, dueAt: number): void;
  unschedule(key: string): void;
}

export class RunHooks {
  private readonly host: HookHost;

  constructor(host: HookHost) {
    this.host = host;
  }

  /** Called for every appended event, in order. Must not throw; work that waits belongs in a timer. */
  onEvent(_event: RunEvent): void {}

  /** Runs a due `hook:` timer. It must reschedule or unschedule its key. */
  async onTimer(key: string): Promise<void> {
    this.host.unschedule(key);
  }
}
