// What a hook (outbound webhooks, Slack progress) may ask of the run's object that runs it
// (src/durable/hooks.ts): its settings and storage, the run, and timers of its own.
import type { RunState } from "../durable/state.ts";
import type { RunView } from "../durable/view.ts";
import type { Env } from "../env.ts";

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
