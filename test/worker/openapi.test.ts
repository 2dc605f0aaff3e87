// GET /api/openapi.json lists every route the app has, and nothing it does not; /docs renders it.
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { openApiPath } from "../../src/openapi.ts";
import { api } from "./helpers.ts";

describe("the API's documentation", () => {
  it("lists every route of the app, with its method, and no other", async () => {
    const res = await api("/api/openapi.json", { key: null });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    // Middleware entries (`use`) are ALL with no handler of their own; the gateway is the one ALL route,
    // documented as the POST it accepts.
    const routes = new Set(
      app.routes
        .filter((r) => r.method !== "ALL" || r.path.startsWith("/llm/"))
        .map((r) => `${r.method === "ALL" ? "POST" : r.method} ${openApiPath(r.path)}`),
    );
    expect([...routes].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((r) => !routes.has(r))).toEqual([]);
  });

  it("renders /docs", async () => {
    const res = await api("/docs", { key: null });
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain("<title>multishot API</title>");
    expect(page).toContain("<code>/api/runs/:id/rounds/:round/winner</code>");
    expect(page).toContain('href="/api/openapi.json"');
  });
});
