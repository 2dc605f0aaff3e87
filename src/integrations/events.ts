// Outbound events: which of a run's events an account's webhook endpoints hear about, and the JSON
// body each gets.
//
//   run.created       the run started (its first round's attempts are queued)
//   attempt.finished  an attempt ended: done, failed or cancelled
//   round.finished    every attempt of a round ended
//   winner.selected   a round's winner was picked (by a person or "first-verified")
//   run.finished      the run stopped running: awaiting_pick, succeeded, failed or cancelled (a next round
//                     starts it again)
import type { RunEvent } from "../durable/state.ts";
import type { RunView } from "../durable/view.ts";
import { isAttemptEnded } from "../vocabulary.ts";

export const OUTBOUND_EVENTS = ["run.created", "attempt.finished", "round.finished", "winner.selected", "run.finished"] as const;
export type OutboundEvent = (typeof OUTBOUND_EVENTS)[number];

/** The outbound event a run event stands for, or null when endpoints do not hear of it. */
export function outboundEvent(e: Pick<RunEvent, "type" | "data">): OutboundEvent | null {
  const data = (e.data ?? {}) as Record<string, unknown>;
  switch (e.type) {
    case "run.created":
    case "round.finished":
    case "winner.selected":
      return e.type;
    case "attempt.status":
      return isAttemptEnded(String(data.to)) ? "attempt.finished" : null;
    case "run.status":
      // Once per stop: leaving `running` (a pick that ends `awaiting_pick` is not a second finish).
      return data.status !== "running" && (data.from === undefined || data.from === "running") ? "run.finished" : null;
    default:
      return null;
  }
}

export function subscribes(events: string[] | null, type: OutboundEvent): boolean {
  return !events || events.length === 0 || events.includes(type);
}

/**
 * The body one endpoint gets. `id` names the event (the same for every endpoint and every try);
 * `data` is the event as the run recorded it; `run`, `round` and `attempt` are the run as it stood
 * when the event was queued for delivery, with links into the API.
 */
export function eventBody(type: OutboundEvent, e: RunEvent, view: RunView): Record<string, unknown> {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const round = e.round !== null ? view.rounds.find((r) => r.number === e.round) : undefined;
  const attempt = round && e.attempt !== null ? round.attempts.find((a) => a.number === e.attempt) : undefined;
  const status = type === "run.finished" ? String(data.status) : type === "run.created" ? "running" : view.status;
  return {
    id: `${view.id}:${e.seq}`,
    type,
    createdAt: new Date(e.at).toISOString(),
    run: { id: view.id, status, prompt: view.prompt, agent: view.agent, links: view.links },
    ...(round
      ? {
          round: {
            number: round.number,
            status: round.status,
            winner: round.winner ? { attempt: round.winner.attempt, status: round.winner.status } : null,
            links: round.links,
          },
        }
      : {}),
    ...(attempt
      ? {
          attempt: {
            number: attempt.number,
            status: type === "attempt.finished" ? String(data.to) : attempt.status,
            error: attempt.error,
            summary: attempt.summary,
            diffStats: attempt.diffStats,
            verify: attempt.verify ? { command: attempt.verify.command, exitCode: attempt.verify.exitCode, passed: attempt.verify.passed } : null,
            links: attempt.links,
          },
        }
      : {}),
    data,
  };
}
