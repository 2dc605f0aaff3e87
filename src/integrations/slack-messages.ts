// What multishot says in Slack, as Block Kit: one message per round (updated as its attempts move),
// the "Next round" modal, and the short ephemeral answers to commands. Pure functions of the run's view.
import { isAttemptEnded, type AttemptStatus } from "../vocabulary.ts";
import type { AttemptView, RoundView, RunView } from "../durable/view.ts";

export type Block = Record<string, unknown>;
export interface SlackMessage {
  text: string;
  blocks?: Block[];
}

/** Button values and modal metadata carry which run, round and attempt they act on. */
export interface PickAction {
  run: string;
  round: number;
  attempt: number;
}
export interface RoundRef {
  run: string;
  round: number;
}

export const PICK_ACTION = "pick_winner";
export const NEXT_ROUND_ACTION = "next_round";
export const NEXT_ROUND_VIEW = "next_round";
export const PROMPT_BLOCK = "prompt";

const STATUS: Record<AttemptStatus, string> = {
  queued: ":hourglass: queued",
  creating_sandbox: ":hourglass_flowing_sand: creating sandbox",
  installing_agent: ":hourglass_flowing_sand: installing agent",
  seeding_workspace: ":hourglass_flowing_sand: seeding workspace",
  running_agent: ":gear: agent running",
  collecting_result: ":gear: collecting result",
  done: ":white_check_mark: done",
  failed: ":x: failed",
  cancelled: ":no_entry_sign: cancelled",
};

/** Slack's mrkdwn treats &, < and > as markup: text from people and agents is escaped. */
export function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
const quote = (text: string) =>
  escape(text)
    .split("\n")
    .map((l) => `>${l}`)
    .join("\n");
const mrkdwn = (text: string) => ({ type: "mrkdwn", text: clip(text, 3000) });
const plain = (text: string) => ({ type: "plain_text", text: clip(text, 150), emoji: true });

/** Links a round message shows: the shared run page when there is one, else the API. */
function links(view: RunView, shareUrl: string | null) {
  return {
    run: shareUrl ?? view.links.self,
    attempt: (r: number, a: number) => (shareUrl ? `${shareUrl}#attempt-${r}-${a}` : `${view.links.self}`),
    diff: (r: number, a: number, api: string | null) => (shareUrl ? `${shareUrl}/rounds/${r}/attempts/${a}/diff` : api),
  };
}

export function roundMessage(view: RunView, round: RoundView, shareUrl: string | null): SlackMessage {
  const l = links(view, shareUrl);
  const ended = round.attempts.filter((a) => isAttemptEnded(a.status)).length;
  const newest = view.rounds[view.rounds.length - 1]?.number === round.number;
  const state = round.status === "running" ? `${ended} of ${round.attempts.length} attempts finished` : round.status;
  const blocks: Block[] = [
    {
      type: "section",
      text: mrkdwn(`*Round ${round.number}* of <${l.run}|${view.id}> · ${view.agent} · ${state}\n${quote(clip(round.prompt, 500))}`),
    },
    { type: "divider" },
  ];
  const canPick = round.winner === null || round.winner.status === "failed";
  for (const a of round.attempts) {
    const block: Block = { type: "section", text: mrkdwn(attemptText(view, round, a, l)) };
    if (canPick && a.status === "done") {
      block.accessory = {
        type: "button",
        action_id: `${PICK_ACTION}:${round.number}:${a.number}`,
        text: plain("Pick as winner"),
        style: "primary",
        value: JSON.stringify({ run: view.id, round: round.number, attempt: a.number } satisfies PickAction),
      };
    }
    blocks.push(block);
  }
  if (round.winner) {
    const w = round.winner;
    const how =
      w.status === "packing"
        ? "packing its workspace…"
        : w.status === "stored"
          ? `its workspace is stored${w.tarball ? ` (${megabytes(w.tarball.size)})` : ""} and can seed the next round`
          : `packing its workspace failed: ${escape(clip(w.error ?? "unknown reason", 300))}. Pick again.`;
    blocks.push({ type: "context", elements: [mrkdwn(`:trophy: *Attempt ${w.attempt}* is round ${round.number}'s winner: ${how}`)] });
    if (newest && w.status === "stored") {
      blocks.push({
        type: "actions",
        elements: [
          {
            type: "button",
            action_id: `${NEXT_ROUND_ACTION}:${round.number}`,
            text: plain("Next round…"),
            value: JSON.stringify({ run: view.id, round: round.number } satisfies RoundRef),
          },
        ],
      });
    }
  } else if (round.status !== "running" && round.attempts.some((a) => a.status === "done")) {
    blocks.push({ type: "context", elements: [mrkdwn("Pick a winner: its workspace seeds every attempt of the next round.")] });
  }
  const text = `Round ${round.number} of ${view.id}: ${state}${round.winner ? `, attempt ${round.winner.attempt} won` : ""}`;
  return { text, blocks };
}

function attemptText(view: RunView, round: RoundView, a: AttemptView, l: ReturnType<typeof links>): string {
  const parts = [`*Attempt ${a.number}* · ${STATUS[a.status]}`];
  if (a.diffStats) parts.push(`${a.diffStats.files} ${a.diffStats.files === 1 ? "file" : "files"} +${a.diffStats.additions} −${a.diffStats.deletions}`);
  if (a.verify) parts.push(a.verify.passed ? "verify passed" : `verify failed (exit ${a.verify.exitCode})`);
  if (a.summary?.costUsd != null) parts.push(`$${a.summary.costUsd.toFixed(2)}`);
  let text = parts.join(" · ");
  if (a.error && a.status !== "done") text += `\n${escape(clip(a.error, 300))}`;
  if (a.summary?.finalMessage) text += `\n_${escape(clip(a.summary.finalMessage.replace(/\s+/g, " "), 280))}_`;
  const diff = l.diff(round.number, a.number, a.links.diff);
  // The attempt's live preview while it has one; else its pane on the run page, where one can be opened.
  const linkParts = [`<${a.preview && a.preview.expiresAt > Date.now() ? a.preview.url : l.attempt(round.number, a.number)}|preview>`];
  if (a.status === "done" && diff) linkParts.push(`<${diff}|diff>`);
  return `${text}\n${linkParts.join(" · ")}`;
}

function megabytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The modal that starts the next round from a round's winner. */
export function nextRoundModal(ref: RoundRef, winnerAttempt: number | null): Block {
  return {
    type: "modal",
    callback_id: NEXT_ROUND_VIEW,
    private_metadata: JSON.stringify(ref),
    title: plain("Next round"),
    submit: plain("Start round"),
    close: plain("Cancel"),
    blocks: [
      {
        type: "section",
        text: mrkdwn(
          `Round ${ref.round + 1} of ${ref.run}: every attempt starts from ${winnerAttempt ? `attempt ${winnerAttempt}'s` : "the winner's"} workspace.`,
        ),
      },
      {
        type: "input",
        block_id: PROMPT_BLOCK,
        label: plain("What should the next round do?"),
        element: { type: "plain_text_input", action_id: PROMPT_BLOCK, multiline: true, min_length: 1, max_length: 3000 },
      },
    ],
  };
}

export const ephemeral = (text: string) => ({ response_type: "ephemeral", text });

export function usage(command: string): string {
  return [
    `*${command} <prompt> [--attempts N] [--agent claude-code|demo]*: start N attempts (4 by default) at the prompt; progress goes to this channel.`,
    `*${command} link <code>*: link this workspace (or you) to a multishot account, with a code from \`POST /api/slack/link-codes\`.`,
    `*${command} help*: this.`,
  ].join("\n");
}
