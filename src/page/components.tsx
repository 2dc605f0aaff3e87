// The run page, server-rendered with hono/jsx. The page works without script; live.client.js keeps it
// current over a WebSocket: it appends transcript entries as events arrive and swaps in a fresh
// render of the #live region (this same component) when the run changes.
import type { FC } from "hono/jsx";
import { raw } from "hono/html";
import type { RunEvent } from "../durable/state.ts";
import type { AttemptView, RoundView, RunView } from "../durable/view.ts";
import type { ShareScope } from "../db/schema.ts";
import { transcriptLine } from "../durable/transcript.ts";
import { isAttemptEnded } from "../vocabulary.ts";

export interface PageData {
  run: RunView;
  seq: number;
  transcripts: Record<string, { total: number; entries: RunEvent[] }>;
}

export interface PageContext {
  /** The page's own base path: `/r/<token>`. */
  base: string;
  scope: ShareScope;
}

const PHASE: Record<AttemptView["status"], string> = {
  queued: "queued",
  creating_sandbox: "creating sandbox",
  installing_agent: "installing agent",
  seeding_workspace: "seeding workspace",
  running_agent: "agent running",
  collecting_result: "collecting result",
  done: "done",
  failed: "failed",
  cancelled: "cancelled",
};

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const usd = (n: number) => `$${n.toFixed(n < 1 ? 4 : 2)}`;

export function describeRun(run: RunView): { title: string; description: string } {
  const latest = run.rounds[run.rounds.length - 1]!;
  const done = latest.attempts.filter((a) => a.status === "done").length;
  return {
    title: `multishot: ${clip(run.prompt.replace(/\s+/g, " ").trim(), 70)}`,
    description: `${run.status} · ${latest.attempts.length} attempts · round ${latest.number} · ${done} done`,
  };
}

/** Elapsed time, kept ticking by the client while `data-to` is absent. */
const Elapsed: FC<{ from: number | undefined; to: number | undefined }> = ({ from, to }) =>
  from === undefined ? null : (
    <time class="elapsed" data-from={String(from)} data-to={to === undefined ? undefined : String(to)}>
      {formatDuration((to ?? Date.now()) - from)}
    </time>
  );

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export const TranscriptEntry: FC<{ e: RunEvent }> = ({ e }) => {
  const d = (e.data ?? {}) as Record<string, unknown>;
  const kind = e.type === "agent.tool_result" && d.isError ? "error" : e.type.replace("agent.", "");
  return (
    <li class={`tx-${kind}`} data-seq={String(e.seq)}>
      {clip(transcriptLine(e), 600)}
    </li>
  );
};

const AttemptPane: FC<{ ctx: PageContext; round: RoundView; a: AttemptView; tx: PageData["transcripts"][string] | undefined; canPick: boolean }> = ({
  ctx,
  round,
  a,
  tx,
  canPick,
}) => {
  const isWinner = round.winner?.attempt === a.number;
  const started = a.timestamps.queued ?? a.timestamps.creating_sandbox;
  const ended = isAttemptEnded(a.status) ? (a.timestamps[a.status] ?? a.updatedAt) : undefined;
  const entries = tx?.entries ?? [];
  const hidden = (tx?.total ?? 0) - entries.length;
  const path = `${ctx.base}/rounds/${round.number}/attempts/${a.number}`;
  return (
    <section class={`pane status-${a.status}${isWinner ? " winner" : ""}`} id={`attempt-${round.number}-${a.number}`} data-status={a.status}>
      <header>
        <h3>Attempt {a.number}</h3>
        {isWinner ? <span class="badge winner-badge">winner</span> : null}
        <span class={`badge st-${a.status}`}>{PHASE[a.status]}</span>
        <Elapsed from={started} to={ended} />
      </header>
      {a.error ? <p class="error" role="status">{a.error}</p> : null}
      {a.retries ? <p class="muted">{a.retries} {a.retries === 1 ? "retry" : "retries"}</p> : null}
      {a.agentSetup ? <p class="muted agent-setup">agent {a.agentSetup.text}</p> : null}
      {a.summary ? (
        <div class="summary">
          {a.summary.finalMessage ? <p class="final">{clip(a.summary.finalMessage, 600)}</p> : null}
          <p class="muted">
            {a.summary.turns !== null ? `${a.summary.turns} turns` : "turns unknown"}
            {a.summary.costUsd !== null ? ` · ${usd(a.summary.costUsd)}` : ""}
          </p>
        </div>
      ) : null}
      {a.usage ? (
        <p class="usage muted">
          model: {a.usage.calls} {a.usage.calls === 1 ? "call" : "calls"} · {a.usage.inputTokens.toLocaleString("en")} in /{" "}
          {a.usage.outputTokens.toLocaleString("en")} out tokens · {usd(a.usage.costUsd)}
        </p>
      ) : null}
      {a.diffStats ? (
        <p class="diff">
          {a.diffStats.files} {a.diffStats.files === 1 ? "file" : "files"} changed,{" "}
          <span class="add">+{a.diffStats.additions}</span> <span class="del">−{a.diffStats.deletions}</span>
          {a.links.diff ? (
            <>
              {" · "}
              <a href={`${path}/diff`} target="_blank" rel="noopener">
                patch
              </a>
            </>
          ) : null}
        </p>
      ) : null}
      {a.verify ? (
        <details class={`verify ${a.verify.passed ? "passed" : "failed"}`}>
          <summary>
            verify {a.verify.passed ? "passed" : `failed (exit ${a.verify.exitCode})`}: <code>{clip(a.verify.command, 80)}</code>
          </summary>
          <pre>{a.verify.outputTail}</pre>
        </details>
      ) : null}
      <div class="tx-wrap">
        <p class="tx-more" data-hidden={String(Math.max(0, hidden))} hidden={hidden <= 0}>
          <span class="tx-hidden">{Math.max(0, hidden)}</span> earlier entries not shown ·{" "}
          <a href={`${path}/transcript`} target="_blank" rel="noopener">
            full transcript
          </a>
          {a.links.log ? (
            <>
              {" · "}
              <a href={`${path}/log`} target="_blank" rel="noopener">
                raw log
              </a>
            </>
          ) : null}
        </p>
        <ol class="tx" data-tx={`${round.number}:${a.number}`} data-seq={String(entries[entries.length - 1]?.seq ?? 0)}>
          {entries.map((e) => (
            <TranscriptEntry e={e} />
          ))}
        </ol>
      </div>
      <p class="preview-line">
        {a.preview ? (
          <a class="preview-link" href={a.preview.url} target="_blank" rel="noopener">
            open preview
          </a>
        ) : null}
        {ctx.scope === "control" && a.sandboxId && !a.sandboxReleased && a.status === "done" ? (
          <button type="button" class="preview" data-round={String(round.number)} data-attempt={String(a.number)}>
            {a.preview ? "refresh preview" : "preview"}
          </button>
        ) : null}
      </p>
      {canPick && a.status === "done" ? (
        <button type="button" class="pick" data-round={String(round.number)} data-attempt={String(a.number)}>
          Pick as winner
        </button>
      ) : null}
    </section>
  );
};

const RoundTree: FC<{ run: RunView }> = ({ run }) => {
  const children = (from: number | null) => run.rounds.filter((r) => r.fromRound === from);
  const Node: FC<{ r: RoundView }> = ({ r }) => (
    <li>
      <a href={`#round-${r.number}`}>Round {r.number}</a>{" "}
      <span class="muted">
        {r.status}
        {r.winner ? ` · winner: attempt ${r.winner.attempt} (${r.winner.status})` : ""}
      </span>
      {children(r.number).length ? (
        <ul>
          {children(r.number).map((c) => (
            <Node r={c} />
          ))}
        </ul>
      ) : null}
    </li>
  );
  return (
    <nav class="tree" aria-label="Round history">
      <ul>
        {children(null).map((r) => (
          <Node r={r} />
        ))}
      </ul>
    </nav>
  );
};

/** The part of the page that changes as the run moves: status, the round tree, every round's panes. */
export const LiveRegion: FC<{ ctx: PageContext; data: PageData }> = ({ ctx, data }) => {
  const { run } = data;
  const control = ctx.scope === "control";
  const rounds = [...run.rounds].reverse();
  const latest = run.rounds[run.rounds.length - 1]!;
  return (
    <div id="live" data-seq={String(data.seq)} data-status={run.status}>
      <p class="run-status">
        <span class={`badge run-${run.status}`}>{run.status === "awaiting_pick" ? "waiting for your pick" : run.status}</span> {run.agent} · {latest.attempts.length} attempts · round{" "}
        {latest.number} <Elapsed from={run.createdAt} to={run.finishedAt ?? undefined} />
        {control && (run.status === "running" || run.status === "awaiting_pick") ? (
          <button type="button" class="cancel" data-action="cancel">
            Cancel run
          </button>
        ) : null}
      </p>
      {run.error ? <p class="error">{run.error}</p> : null}
      {run.rounds.length > 1 ? <RoundTree run={run} /> : null}
      {rounds.map((r) => {
        const canPick = control && r.winner === null;
        return (
          <details class="round" id={`round-${r.number}`} open={r.number === latest.number || undefined} data-round={String(r.number)}>
            <summary>
              <h2>
                Round {r.number}
                {r.fromRound !== null ? <span class="muted"> · from round {r.fromRound}'s winner</span> : null}
                <span class={`badge round-${r.status}`}>{r.status}</span>
              </h2>
            </summary>
            <p class="prompt">{clip(r.prompt, 2000)}</p>
            {r.sandbox ? <p class="muted sandbox-spec">sandboxes: {sandboxText(r.sandbox)}</p> : null}
            {control && r.attempts.some((a) => a.status === "done" && !a.sandboxReleased) ? (
              <p>
                <button type="button" class="preview-all" data-round={String(r.number)}>
                  Preview all
                </button>
              </p>
            ) : null}
            {r.winner ? (
              <p class="winner-line">
                Winner: attempt {r.winner.attempt} ·{" "}
                {r.winner.status === "stored" && r.winner.tarball ? (
                  <a href={`${ctx.base}/rounds/${r.number}/winner.tar.gz`} download>
                    download workspace ({formatBytes(r.winner.tarball.size)})
                  </a>
                ) : r.winner.status === "failed" ? (
                  <span class="error">packing failed: {r.winner.error}</span>
                ) : (
                  <span class="muted">packing workspace…</span>
                )}
              </p>
            ) : null}
            <div class="panes">
              {r.attempts.map((a) => (
                <AttemptPane ctx={ctx} round={r} a={a} tx={data.transcripts[`${r.number}:${a.number}`]} canPick={canPick} />
              ))}
            </div>
          </details>
        );
      })}
    </div>
  );
};

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

const Head: FC<{ title: string; description: string; url?: string }> = ({ title, description, url }) => (
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="robots" content="noindex, nofollow" />
    <meta name="referrer" content="no-referrer" />
    <title>{title}</title>
    <meta property="og:type" content="website" />
    <meta property="og:site_name" content="multishot" />
    <meta property="og:title" content={title} />
    <meta property="og:description" content={description} />
    {url ? <meta property="og:url" content={url} /> : null}
    <meta name="twitter:card" content="summary" />
    <link rel="icon" href="data:," />
    <style>{raw(CSS)}</style>
  </head>
);

export const RunPage: FC<{ ctx: PageContext; data: PageData; url: string; script: string }> = ({ ctx, data, url, script }) => {
  const { title, description } = describeRun(data.run);
  return (
    <html lang="en">
      <Head title={title} description={description} url={url} />
      <body data-base={ctx.base} data-scope={ctx.scope}>
        <header class="top">
          <h1>{clip(data.run.prompt.split("\n")[0] ?? "", 140)}</h1>
          <p class="muted">
            multishot run <code>{data.run.id}</code> · {ctx.scope === "control" ? "control link" : "view-only link"} ·{" "}
            <span id="conn" class="conn">connecting…</span>
          </p>
        </header>
        <main>
          <LiveRegion ctx={ctx} data={data} />
          {ctx.scope === "control" ? (
            <form id="next-round" class="next">
              <h2>Next round</h2>
              <label for="next-prompt">Prompt for the next round (starts from the newest round's winner)</label>
              <textarea id="next-prompt" name="prompt" rows={3} required maxlength={100000}></textarea>
              <button type="submit">Start next round</button>
            </form>
          ) : null}
          <p id="message" role="alert" class="message"></p>
        </main>
        <script>{raw(script)}</script>
      </body>
    </html>
  );
};

export const ExpiredPage: FC = () => (
  <html lang="en">
    <Head title="multishot: link expired" description="This share link has expired or was revoked." />
    <body>
      <main class="expired">
        <h1>Link expired</h1>
        <p>This share link has expired or was revoked. Ask whoever sent it for a new one.</p>
      </main>
    </body>
  </html>
);

const CSS = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1f24; --muted: #667; --line: #d8dde3; --card: #f7f8fa;
  --ok: #1a7f37; --bad: #cf222e; --run: #0969da; --win: #bf8700; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #8b949e; --line: #30363d; --card: #161b22; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header.top, main { padding: 0 16px; max-width: 1600px; margin: 0 auto; }
h1 { font-size: 20px; margin: 16px 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 0; display: inline; }
h3 { font-size: 15px; margin: 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color: var(--muted); }
.error { color: var(--bad); overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; border: 1px solid var(--line); margin-left: 6px; }
.st-done, .run-succeeded, .round-finished { color: var(--ok); border-color: var(--ok); }
.run-awaiting_pick { color: var(--win); border-color: var(--win); font-weight: 600; }
.st-failed, .run-failed { color: var(--bad); border-color: var(--bad); }
.st-cancelled, .run-cancelled, .round-cancelled { color: var(--muted); }
.st-running_agent, .st-creating_sandbox, .st-installing_agent, .st-seeding_workspace, .st-collecting_result, .run-running, .round-running { color: var(--run); border-color: var(--run); }
.winner-badge { color: var(--win); border-color: var(--win); font-weight: 600; }
.round { margin: 12px 0; border-top: 1px solid var(--line); padding-top: 8px; }
.round > summary { cursor: pointer; padding: 4px 0; }
.prompt { white-space: pre-wrap; background: var(--card); padding: 8px; border-radius: 6px; overflow-wrap: anywhere; }
.panes { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
.pane { border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: var(--card); min-width: 0; display: flex; flex-direction: column; gap: 6px; }
.pane.winner { border: 2px solid var(--win); }
.pane header { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; }
.pane header .elapsed { margin-left: auto; color: var(--muted); font-variant-numeric: tabular-nums; }
.pane p { margin: 0; }
.final { white-space: pre-wrap; overflow-wrap: anywhere; }
.add { color: var(--ok); } .del { color: var(--bad); }
.verify pre { white-space: pre-wrap; max-height: 160px; overflow: auto; font-size: 12px; }
.verify.passed summary { color: var(--ok); } .verify.failed summary { color: var(--bad); }
.tx-wrap { border-top: 1px solid var(--line); padding-top: 4px; }
.tx { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow: auto; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.tx li { padding: 2px 0; border-bottom: 1px dotted var(--line); white-space: pre-wrap; overflow-wrap: anywhere; }
.tx-tool { color: var(--run); } .tx-error { color: var(--bad); } .tx-result { font-weight: 600; } .tx-init, .tx-tool_result { color: var(--muted); }
.tx-more { font-size: 12px; color: var(--muted); }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button.pick { align-self: flex-start; border-color: var(--win); }
.preview-line:empty { display: none; }
.preview-line { display: flex; gap: 8px; align-items: center; }
button.preview, button.preview-all { border-color: var(--run); color: var(--run); }
button.cancel { margin-left: 8px; border-color: var(--bad); color: var(--bad); }
.next { margin: 16px 0; display: flex; flex-direction: column; gap: 6px; max-width: 720px; }
.next textarea { font: inherit; width: 100%; padding: 6px; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); }
.next button { align-self: flex-start; }
.message { min-height: 1.5em; }
.tree ul { list-style: none; padding-left: 16px; margin: 4px 0; }
.tree > ul { padding-left: 0; }
.conn.live { color: var(--ok); } .conn.down { color: var(--bad); }
.expired { padding: 48px 16px; text-align: center; }
`;

/** A round's sandbox request, in words: "from snapshot X", "2 vCPU · 4 GiB memory · 10 GiB disk". */
function sandboxText(s: NonNullable<RoundView["sandbox"]>): string {
  if (s.snapshot) return `from snapshot ${s.snapshot}`;
  const r = s.resources ?? {};
  return [r.cpu ? `${r.cpu} vCPU` : null, r.memory ? `${r.memory} GiB memory` : null, r.disk ? `${r.disk} GiB disk` : null].filter(Boolean).join(" · ");
}
