// The run object's own SQLite schema is versioned: an object written by a release before versions (its
// attempts as JSON documents, the later fields missing) is migrated once, and reads back whole.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { migrate, SCHEMA_VERSION } from "../../src/durable/migrations.ts";
import { EventLog } from "../../src/durable/event-log.ts";
import { RunStore } from "../../src/durable/run-state.ts";

describe("the run object's schema", () => {
  it("migrates an object from before versions: its attempts become columns and keep every field", async () => {
    const stub = env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(`schema-${crypto.randomUUID()}`));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      // Back to the unversioned layout, as an object made by the earlier release has it.
      sql.exec("DROP TABLE schema_version");
      sql.exec("DROP TABLE attempts");
      sql.exec("CREATE TABLE attempts (round INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (round, number))");
      const old = {
        round: 1, number: 2, status: "done", sandboxId: "sb-1", createRequestedAt: 10, job: "collect", jobTry: 3, cmdId: "c-9",
        exitCode: 0, error: null, retries: 1, summary: { finalMessage: "ok", turns: 4, costUsd: 0.01, isError: false },
        diffStats: { files: 2, additions: 5, deletions: 1 }, verify: null, timestamps: { queued: 1, done: 9 },
        cleanupPending: true, homeDir: "/home/daytona", deadlineAt: null, version: 17, updatedAt: 99,
        // No usage, cleanupTries, sandboxDeleted or jobStartedAt: they came later.
      };
      sql.exec("INSERT INTO attempts (round, number, state, dirty) VALUES (1, 2, ?, 0)", JSON.stringify(old));

      migrate(state.storage);
      migrate(state.storage); // a second start changes nothing

      expect(sql.exec<{ v: number }>("SELECT max(version) AS v FROM schema_version").one().v).toBe(SCHEMA_VERSION);
      const columns = sql.exec<{ name: string }>("PRAGMA table_info(attempts)").toArray().map((c) => c.name);
      expect(columns).toContain("cleanup_tries");
      expect(columns).toEqual(expect.arrayContaining(["delete_pending", "quota_waits", "reaches_worker", "agent_setup"]));
      expect(columns).not.toContain("state");
      const store = new RunStore({ sql, env, redact: (t) => t, events: new EventLog(sql, (t) => t), retryMirrorAt: () => {} });
      expect(store.attempt(1, 2)).toEqual({
        ...old,
        usage: null,
        cleanupTries: 0,
        sandboxDeleted: false,
        jobStartedAt: null,
        // migration 3
        deletePending: false,
        quotaWaits: 0,
        reachesWorker: null,
        // migration 5
        agentSetup: null,
      });
      expect(sql.exec<{ dirty: number }>("SELECT dirty FROM attempts").one().dirty).toBe(0);
    });
  });
});
