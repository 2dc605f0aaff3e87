// The run's timers: every wait of the run (a step due now, a poll, a retry's backoff, a deadline, a
// preview's idle stop, a hook's delivery) is one row of the `timers` table, and the object's single alarm
// is set to the earliest. This module owns that table and is the only caller of setAlarm/deleteAlarm.
//
// A timer is typed (`Timer`); its key in storage is built and read only here. The alarm hands each due
// timer to the handler registered for its kind, several at once, each under a short lease: the lease
// moves the timer a little into the future while its handler runs, so if the isolate dies mid-step the
// timer falls due again and a later wake-up retries it. A handler reschedules or removes its timer; one
// that does neither (its work was superseded) is looked at again a second later.

export type Timer =
  /** One step of an attempt's state machine. */
  | { kind: "attempt"; round: number; attempt: number }
  /** The running job's time limit. */
  | { kind: "deadline"; round: number; attempt: number }
  /** Packing a round's winner. */
  | { kind: "winner"; round: number }
  /** Stopping an idle preview server. */
  | { kind: "preview"; round: number; attempt: number }
  /** Mirroring to D1 again after a failure (the alarm mirrors after every step anyway). */
  | { kind: "mirror" }
  /** A hook's own timer (webhook deliveries, Slack progress); `key` starts with "hook:". */
  | { kind: "hook"; key: string };

export type TimerKind = Timer["kind"];
export type TimerHandlers = { [K in TimerKind]: (timer: Extract<Timer, { kind: K }>) => Promise<void> | void };

/** How long a step may hold its timer before another wake-up may try it again (a crash mid-step). */
const STEP_LEASE_MS = 10_000;
/** How often a running alarm looks for newly due timers while steps are in flight. */
const ALARM_TICK_MS = 250;
/** When a handler throws: its timer is tried again this much later. */
const AFTER_ERROR_MS = 5_000;

export function timerKey(t: Timer): string {
  switch (t.kind) {
    case "attempt":
    case "deadline":
    case "preview":
      return `${t.kind}:${t.round}:${t.attempt}`;
    case "winner":
      return `winner:${t.round}`;
    case "mirror":
      return "mirror";
    case "hook":
      if (!t.key.startsWith("hook:")) throw new Error(`a hook's timer key starts with "hook:": ${t.key}`);
      return t.key;
  }
}

/** The timer a stored key stands for, or null for a key no kind claims (it is dropped). */
export function parseTimer(key: string): Timer | null {
  if (key.startsWith("hook:")) return { kind: "hook", key };
  if (key === "mirror") return { kind: "mirror" };
  const [kind, a, b, ...rest] = key.split(":");
  const round = Number(a);
  if (rest.length || !Number.isInteger(round)) return null;
  if (kind === "winner" && b === undefined) return { kind, round };
  const attempt = Number(b);
  if ((kind === "attempt" || kind === "deadline" || kind === "preview") && Number.isInteger(attempt)) return { kind, round, attempt };
  return null;
}

export class Scheduler {
  private readonly storage: DurableObjectStorage;
  private readonly sql: SqlStorage;
  /** Keys whose handler runs now, and those that were poked while it ran. */
  private readonly inFlight = new Set<string>();
  private readonly poked = new Set<string>();

  constructor(storage: DurableObjectStorage) {
    this.storage = storage;
    this.sql = storage.sql;
  }

  schedule(t: Timer, dueAt: number): void {
    this.put(timerKey(t), dueAt);
  }

  /** Schedules only if the timer has no earlier wake-up already. */
  scheduleNoLaterThan(t: Timer, dueAt: number): void {
    this.sql.exec(
      `INSERT INTO timers (key, due_at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET due_at = min(due_at, excluded.due_at)`,
      timerKey(t),
      dueAt,
    );
  }

  unschedule(t: Timer): void {
    this.sql.exec("DELETE FROM timers WHERE key = ?", timerKey(t));
  }

  dueAt(t: Timer): number | null {
    return this.dueAtKey(timerKey(t));
  }

  /** Runs the timer's handler now, or right after it finishes if it is running. */
  poke(t: Timer): void {
    const key = timerKey(t);
    if (this.inFlight.has(key)) this.poked.add(key);
    else this.put(key, Date.now());
  }

  /** The earliest wake-up, or null when nothing waits. */
  nextWake(): number | null {
    const row = this.sql.exec<{ due: number | null }>("SELECT min(due_at) AS due FROM timers").one();
    return row.due === null ? null : Number(row.due);
  }

  /** Sets the alarm to the earliest timer (or clears it). The one place that touches the alarm. */
  async rearm(): Promise<void> {
    const next = this.nextWake();
    if (next === null) await this.storage.deleteAlarm();
    else await this.storage.setAlarm(Math.max(next, Date.now()));
  }

  /**
   * Runs every due timer's handler, in parallel, until nothing is due. Each due timer starts as soon as it
   * is due, never waiting for a slower one to finish; `afterTick` runs each time the loop wakes.
   */
  async runDue(handlers: TimerHandlers, afterTick: () => void): Promise<void> {
    const running = new Map<string, Promise<void>>();
    for (;;) {
      for (const key of this.dueKeys(Date.now())) {
        if (running.has(key) || this.inFlight.has(key)) continue;
        running.set(
          key,
          this.dispatch(key, handlers).finally(() => running.delete(key)),
        );
      }
      if (running.size === 0) return;
      // Wake when a step ends, or after a short tick, so that a slow step (a create, a long read) never
      // holds back a report or a cancel that made another attempt's step due.
      await Promise.race([...running.values(), new Promise((r) => setTimeout(r, ALARM_TICK_MS))]);
      afterTick();
    }
  }

  private async dispatch(key: string, handlers: TimerHandlers): Promise<void> {
    const timer = parseTimer(key);
    if (!timer) {
      this.sql.exec("DELETE FROM timers WHERE key = ?", key);
      return;
    }
    this.inFlight.add(key);
    const lease = Date.now() + STEP_LEASE_MS;
    this.put(key, lease);
    try {
      await (handlers[timer.kind] as (t: Timer) => Promise<void> | void)(timer);
    } catch (err) {
      console.error(`timer ${key} failed unexpectedly`, err instanceof Error ? err.stack : err);
      this.put(key, Date.now() + AFTER_ERROR_MS);
    } finally {
      this.inFlight.delete(key);
      if (this.dueAtKey(key) === lease) this.put(key, Date.now() + 1_000);
      if (this.poked.delete(key)) this.put(key, Date.now());
    }
  }

  private put(key: string, dueAt: number): void {
    this.sql.exec("INSERT INTO timers (key, due_at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET due_at = excluded.due_at", key, dueAt);
  }

  private dueAtKey(key: string): number | null {
    const row = this.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE key = ?", key).toArray()[0];
    return row ? Number(row.due_at) : null;
  }

  /** The keys due at `now`, earliest first. They stay until their handler reschedules or removes them. */
  private dueKeys(now: number): string[] {
    return this.sql
      .exec<{ key: string }>("SELECT key FROM timers WHERE due_at <= ? ORDER BY due_at", now)
      .toArray()
      .map((r) => String(r.key));
  }
}
