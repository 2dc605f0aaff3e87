// Watching from a terminal: a round until every attempt has ended, a winner until it is stored. In a
// terminal the attempts are one line each, redrawn in place; otherwise each change is one plain log
// line; with --json nothing is printed until the end. The live event stream drives all three.
import type { RunEvent, RunView } from "./api.ts";
import type { Ctx } from "./context.ts";
import { CliError, EXIT } from "./errors.ts";
import { followRun } from "./follow.ts";
import { bytes, oneLine } from "./format.ts";
import { fit, headerLines, liveLines, logLine, RoundProgress, summaryLines } from "./progress.ts";
import { LiveBlock } from "./screen.ts";

const REDRAW_MS = 250;

export interface WatchOptions {
  /** The round to watch (the newest by default). */
  round?: number;
  /** Open previews of the round's finished attempts once it ends. */
  preview?: boolean;
  view?: RunView;
}

/** Ctrl-C stops watching (the run goes on) and says how to pick up again. */
function interruptible(ctx: Ctx, resume: string, cleanup: () => void) {
  const ac = new AbortController();
  const onSigint = () => {
    cleanup();
    ctx.note(`\nstopped watching; the run goes on. Resume with: ${resume}`);
    ac.abort();
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  return { signal: ac.signal, dispose: () => process.removeListener("SIGINT", onSigint) };
}

/** Watches a round to its end and prints what it came to; the exit code says how the run stands. */
export async function watchRound(ctx: Ctx, runId: string, opts: WatchOptions = {}): Promise<number> {
  const api = ctx.api;
  const first = opts.view ?? (await api.getRun(runId));
  const roundNo = opts.round ?? first.rounds[first.rounds.length - 1]!.number;
  if (!first.rounds.some((r) => r.number === roundNo)) {
    throw new CliError(EXIT.usage, "usage", `run ${runId} has no round ${roundNo} (it has ${first.rounds.length})`);
  }
  const progress = new RoundProgress(first, roundNo);
  const block = ctx.tty ? new LiveBlock(ctx.io.stdout) : null;
  let reconnecting: string | null = null;
  const draw = () => {
    if (!block) return;
    const lines = liveLines(progress, ctx.now(), ctx.width, ctx.c);
    if (reconnecting) lines.push(fit(ctx.c.dim(`  reconnecting to the event stream (${reconnecting})…`), ctx.width));
    block.draw(lines);
  };
  const ticker = block ? setInterval(draw, REDRAW_MS) : null;
  const stopDrawing = () => {
    if (ticker) clearInterval(ticker);
    block?.release();
  };
  const { signal, dispose } = interruptible(ctx, `multishot watch ${runId}`, stopDrawing);

  if (!block) for (const line of headerLines(first, progress.round, ctx.c)) ctx.out(line);
  let final: RunView;
  try {
    draw();
    final = await followRun(api, runId, {
      view: first,
      signal,
      until: (v) => (v.rounds.find((r) => r.number === roundNo)?.status ?? "running") !== "running",
      // Every event of the round is shown, so the round ends with its own last event.
      endsWith: (e) => e.type === "round.finished" && e.round === roundNo,
      refreshOn: (e) => e.type === "run.status" || (e.round === roundNo && (e.type === "attempt.status" || e.type === "agent.result")),
      onView: (v) => {
        progress.applyView(v);
        draw();
      },
      onEvent: (e: RunEvent) => {
        reconnecting = null;
        if (!progress.applyEvent(e)) return;
        if (block) return draw();
        const line = logLine(e, progress, ctx.c);
        if (line) ctx.out(line);
      },
      onReconnect: ({ reason }) => {
        reconnecting = reason;
        if (block) draw();
        else ctx.note(`reconnecting to the event stream (${reason})…`);
      },
    });
  } finally {
    if (ticker) clearInterval(ticker);
    block?.clear();
    dispose();
  }

  if (opts.preview) final = await openPreviews(ctx, runId, roundNo, final);
  progress.applyView(final);
  if (ctx.json) {
    ctx.emitJson(final);
  } else {
    if (block) for (const line of headerLines(final, progress.round, ctx.c)) ctx.out(line);
    for (const line of summaryLines(progress, ctx.width, ctx.c)) ctx.out(line);
    const round = progress.round;
    if (!round.winner && round.attempts.some((a) => a.status === "done")) {
      ctx.out(ctx.c.dim(`pick a winner: multishot pick ${runId} <attempt>${roundNo === final.rounds.length ? "" : ` --round ${roundNo}`}`));
    }
  }
  return final.status === "failed" || final.status === "cancelled" ? EXIT.failed : EXIT.ok;
}

/** Asks for previews of the round's finished attempts; answers the run's view with their links. */
async function openPreviews(ctx: Ctx, runId: string, roundNo: number, view: RunView): Promise<RunView> {
  const round = view.rounds.find((r) => r.number === roundNo)!;
  if (!round.attempts.some((a) => a.status === "done")) return view;
  ctx.note(ctx.ce.dim("opening previews…"));
  try {
    const { previews } = await ctx.api.previewRound(runId, roundNo);
    for (const p of previews) {
      if ("error" in p && round.attempts.find((a) => a.number === p.attempt)?.status === "done") {
        ctx.note(`#${p.attempt} has no preview: ${oneLine(p.error.message)}`);
      }
    }
  } catch (err) {
    if (!(err instanceof CliError) || err.exitCode === EXIT.auth) throw err;
    ctx.note(`previews are not available: ${err.message}`);
    return view;
  }
  return ctx.api.getRun(runId);
}

/** Waits while a round's winner is packed and stored; answers the run's view once it is (or failed). */
export async function waitForWinner(ctx: Ctx, runId: string, roundNo: number, view?: RunView): Promise<RunView> {
  const block = ctx.tty ? new LiveBlock(ctx.io.stdout) : null;
  let parts = 0;
  let sent = 0;
  let packTry = 0;
  const started = Date.now();
  const winnerOf = (v: RunView) => v.rounds.find((r) => r.number === roundNo)?.winner ?? null;
  const draw = () => {
    const secs = Math.floor((Date.now() - started) / 1000);
    const so = parts ? `: ${parts} part${parts === 1 ? "" : "s"}, ${bytes(sent)} uploaded` : "";
    block?.draw([`packing round ${roundNo}'s winner${so} (${secs}s)`]);
  };
  const ticker = block ? setInterval(draw, REDRAW_MS) : null;
  const { signal, dispose } = interruptible(ctx, `multishot download ${runId} --round ${roundNo}`, () => {
    if (ticker) clearInterval(ticker);
    block?.release();
  });
  let said = false;
  try {
    return await followRun(ctx.api, runId, {
      ...(view ? { view } : {}),
      signal,
      until: (v) => {
        const w = winnerOf(v);
        if (!w) throw new CliError(EXIT.failed, "no_winner", `round ${roundNo} of run ${runId} has no winner: pick one with multishot pick ${runId} <attempt>`);
        return w.status !== "packing";
      },
      refreshOn: (e) => e.type === "run.status" || (e.round === roundNo && e.type.startsWith("winner.") && e.type !== "winner.part"),
      onView: (v) => {
        if (!block && !said && winnerOf(v)?.status === "packing") {
          said = true;
          ctx.note(`packing round ${roundNo}'s winner…`);
        }
        draw();
      },
      onEvent: (e) => {
        if (e.round !== roundNo || e.type !== "winner.part") return;
        const d = e.data as { try?: number; size?: number };
        // A new packing try starts over.
        if (d.try !== undefined && d.try !== packTry) {
          packTry = d.try;
          parts = 0;
          sent = 0;
        }
        parts++;
        sent += d.size ?? 0;
        draw();
      },
    });
  } finally {
    if (ticker) clearInterval(ticker);
    block?.clear();
    dispose();
  }
}

