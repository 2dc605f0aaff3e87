import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("the Worker", () => {
  it("answers /health with its version", async () => {
    const res = await exports.default.fetch("http://multishot.test/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
  });

  it("runs with every migration applied to D1", async () => {
    const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all<{ name: string }>();
    expect(tables.results.map((t) => t.name)).toEqual(expect.arrayContaining(["accounts", "api_keys", "attempts", "rounds", "runs"]));
    const applied = await env.DB.prepare("SELECT name FROM d1_migrations").all<{ name: string }>();
    expect(applied.results.map((m) => m.name)).toContain("0000_init.sql");
  });

  it("answers unknown routes with a JSON 404", async () => {
    const res = await exports.default.fetch("http://multishot.test/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "not_found", message: "no route for GET /nope" } });
  });
});
