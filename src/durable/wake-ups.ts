// How often the run's object was woken (the `counters` table), for the operator: each alarm, each request
// that came without a user asking (SSE streams, live sockets, runner reports). It is the cost meter, so
// counting is one row write.
import type { WakeUps } from "./state.ts";

export class WakeUpMeter {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
  }

  count(kind: keyof WakeUps): void {
    this.sql.exec("INSERT INTO counters (name, n) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1", kind);
  }

  read(): WakeUps {
    const counts = new Map(this.sql.exec<{ name: string; n: number }>("SELECT name, n FROM counters").toArray().map((r) => [String(r.name), Number(r.n)]));
    return { alarms: counts.get("alarms") ?? 0, requests: counts.get("requests") ?? 0 };
  }
}
