// Following a run until something is true of it (a round ended, a winner stored): the live event log
// drives it, and a fresh view of the run is fetched shortly after any event that may change the answer,
// and every few seconds anyway (some changes, like a cancel ending a winner's packing, have no event).
//
// When the caller shows every event (a watched round's log), the view saying "done" is not the end: the
// stream may be behind it, after a reconnect. Then following ends at the event that closes the story
// (`endsWith`), or once the stream has been connected and quiet for a while after the view said done.
import type { Api, RunEvent, RunView } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";
import { runEvents, type FollowOptions } from "./sse.ts";

export interface FollowRun {
  /** The view to start from (else fetched first). */
  view?: RunView;
  /** Stop once this holds for a fresh view of the run. */
  until: (view: RunView) => boolean;
  /**
   * The event that ends it. Without one, following ends as soon as a view satisfies `until`; with one,
   * it ends at that event (or `graceMs` after a satisfying view with no event since), so every event
   * up to the end reaches `onEvent`.
   */
  endsWith?: (e: RunEvent) => boolean;
  graceMs?: number;
  /** Events after which the view is fetched again. */
  refreshOn: (e: RunEvent) => boolean;
  onEvent?: (e: RunEvent) => void;
  onView?: (view: RunView) => void;
  onReconnect?: FollowOptions["onReconnect"];
  signal: AbortSignal;
  /** How often the view is fetched without an event asking for it. */
  pollMs?: number;
  /** Stream timings (tests shorten them). */
  stream?: Pick<FollowOptions, "idleTimeoutMs" | "maxFailures">;
}

/** Follows the run until `until` holds; answers the view that satisfied it. */
export async function followRun(api: Api, runId: string, opts: FollowRun): Promise<RunView> {
  let view = opts.view ?? (await api.getRun(runId));
  opts.onView?.(view);
  if (opts.until(view)) return view;

  const done = new AbortController();
  const stopOnAbort = () => done.abort();
  opts.signal.addEventListener("abort", stopOnAbort, { once: true });
  let fatal: unknown = null;
  let finished = false;
  let endedByEvent = false;
  let viewSaysDone = false;
  let grace: ReturnType<typeof setTimeout> | undefined;
  const armGrace = () => {
    clearTimeout(grace);
    grace = setTimeout(() => {
      finished = true;
      done.abort();
    }, opts.graceMs ?? 3000);
  };
  let wanted = false;
  let running: Promise<void> | null = null;

  // One fetch at a time; requests that come meanwhile share the next one.
  const refresh = () => {
    wanted = true;
    running ??= (async () => {
      while (wanted && !done.signal.aborted) {
        wanted = false;
        try {
          const next = await api.getRun(runId);
          if (done.signal.aborted) return;
          view = next;
          opts.onView?.(view);
          if (opts.until(view)) {
            if (!opts.endsWith) {
              finished = true;
              done.abort();
            } else if (!viewSaysDone) {
              viewSaysDone = true;
              armGrace();
            }
          }
        } catch (err) {
          // A view that fails to come is tried again at the next event or poll; a refusal ends it.
          if (!(err instanceof CliError) || !err.transient) {
            fatal = err;
            done.abort();
          }
        }
      }
    })().finally(() => {
      running = null;
    });
  };
  const poll = setInterval(refresh, opts.pollMs ?? 5000);
  try {
    for await (const e of runEvents(api, runId, {
      signal: done.signal,
      onReconnect: (info) => {
        // A stream that is reconnecting is not a quiet one: the events it owes us are still to come.
        if (viewSaysDone) armGrace();
        opts.onReconnect?.(info);
      },
      ...opts.stream,
    })) {
      opts.onEvent?.(e);
      if (opts.endsWith?.(e)) {
        finished = endedByEvent = true;
        break;
      }
      // Events still coming: the stream is catching up; give it time.
      if (viewSaysDone) armGrace();
      if (opts.refreshOn(e)) refresh();
    }
  } catch (err) {
    if (!done.signal.aborted) fatal ??= err;
  } finally {
    clearInterval(poll);
    clearTimeout(grace);
    opts.signal.removeEventListener("abort", stopOnAbort);
    done.abort();
  }
  await running;
  if (fatal) throw fatal;
  if (!finished) throw new CliError(EXIT.failed, "interrupted", "stopped following the run");
  if (endedByEvent) {
    view = await api.getRun(runId);
    opts.onView?.(view);
  }
  return view;
}
