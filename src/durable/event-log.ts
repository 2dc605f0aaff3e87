// The run's ordered event log (the `events` table): phase changes, retries, winners, the agent's transcript.
// Appending redacts the data, stores it, then hands the event to every subscriber in order (the live
// sockets, the hooks); a subscriber that throws never stops the append or the others.
import type { Redact } from "../redact.ts";
import { redactDeep } from "../redact.ts";
import type { RunEvent } from "./state.ts";

type Row = Record<string, SqlStorageValue>;
export type EventSubscriber = (event: RunEvent) => void;

export class EventLog {
  private readonly sql: SqlStorage;
  private readonly redact: Redact;
  private readonly subscribers: EventSubscriber[] = [];

  constructor(sql: SqlStorage, redact: Redact) {
    this.sql = sql;
    this.redact = redact;
  }

  subscribe(subscriber: EventSubscriber): void {
    this.subscribers.push(subscriber);
  }

  append(round: number | null, attempt: number | null, type: string, data: unknown): RunEvent {
    const e = { at: Date.now(), round, attempt, type, data: redactDeep(data, this.redact) };
    this.sql.exec("INSERT INTO events (at, round, attempt, type, data) VALUES (?, ?, ?, ?, ?)", e.at, e.round, e.attempt, e.type, JSON.stringify(e.data));
    const event: RunEvent = { seq: Number(this.sql.exec<Row>("SELECT last_insert_rowid() AS seq").one().seq), ...e };
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event);
      } catch (err) {
        console.error(`a subscriber failed on event ${type}`, err instanceof Error ? err.stack : err);
      }
    }
    return event;
  }

  /** Events after `afterSeq`, oldest first. */
  after(afterSeq: number, limit: number): RunEvent[] {
    return this.sql.exec<Row>("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit).toArray().map(toEvent);
  }

  lastSeq(): number {
    return Number(this.sql.exec<Row>("SELECT coalesce(max(seq), 0) AS seq FROM events").one().seq);
  }

  /** The newest event of a type for one attempt. */
  last(round: number, attempt: number, type: string): RunEvent | null {
    const row = this.sql
      .exec<Row>("SELECT * FROM events WHERE round = ? AND attempt = ? AND type = ? ORDER BY seq DESC LIMIT 1", round, attempt, type)
      .toArray()[0];
    return row ? toEvent(row) : null;
  }

  /** One attempt's transcript (its `agent.*` events): how many there are, and the newest `limit`, oldest first. */
  /** Transcript entries after `afterSeq`, oldest first, at most `limit`; `more` when others follow. */
  transcriptAfter(round: number, attempt: number, afterSeq: number, limit: number): { entries: RunEvent[]; more: boolean } {
    const rows = this.sql
      .exec<Row>("SELECT * FROM events WHERE round = ? AND attempt = ? AND type LIKE 'agent.%' AND seq > ? ORDER BY seq LIMIT ?", round, attempt, afterSeq, limit + 1)
      .toArray()
      .map(toEvent);
    return { entries: rows.slice(0, limit), more: rows.length > limit };
  }

  transcript(round: number, attempt: number, limit: number): { total: number; entries: RunEvent[] } {
    const where = "round = ? AND attempt = ? AND type LIKE 'agent.%'";
    const total = Number(this.sql.exec<Row>(`SELECT count(*) AS n FROM events WHERE ${where}`, round, attempt).one().n);
    const entries = this.sql
      .exec<Row>(`SELECT * FROM events WHERE ${where} ORDER BY seq DESC LIMIT ?`, round, attempt, limit)
      .toArray()
      .map(toEvent)
      .reverse();
    return { total, entries };
  }
}

function toEvent(r: Row): RunEvent {
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    round: r.round === null ? null : Number(r.round),
    attempt: r.attempt === null ? null : Number(r.attempt),
    type: String(r.type),
    data: JSON.parse(String(r.data)),
  };
}
