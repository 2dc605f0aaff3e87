// GET /api/openapi.json lists every route the app has, and nothing it does not; what it says about who may
// call each operation holds; /docs renders it. (test/node/openapi.test.ts validates it as OpenAPI 3.1.)
import { inspectRoutes } from "hono/dev";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { openApiPath } from "../../src/openapi.ts";
import { ADMIN_TOKEN, api } from "./helpers.ts";

interface Op {
  tags: string[];
  operationId: string;
  "x-auth": string;
  "x-scope"?: string;
  security: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
}
type Doc = { openapi: string; paths: Record<string, Record<string, Op>> };

async function document(): Promise<Doc> {
  const res = await api("/api/openapi.json", { key: null });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return (await res.json()) as Doc;
}

const operations = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));

/** A path with made-up values: well-formed, naming nothing that exists. */
const filled = (path: string) =>
  path.replace(/\{(\w+)\}/g, (_m, name: string) =>
    name === "id" ? (path.startsWith("/api/webhooks") ? "wh_aaaaaaaaaaaaaaaaaaaa" : "run_aaaaaaaaaaaaaaaaaaaa") : name === "artifact" ? "diff" : ["round", "n"].includes(name) ? "1" : "none",
  );

async function keyWith(scopes: string[]): Promise<string> {
  const res = await api("/api/keys", { method: "POST", json: { name: `openapi ${scopes.join(" ")}`, scopes } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { key: string }).key;
}

describe("the API's documentation", () => {
  it("lists every route of the app, with its method and path, and no route the app does not have", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    const documented = new Set(operations(doc).map((o) => `${o.method} ${o.path}`));

    // Hono's own route table. Middleware (`use`, and `idempotent` before a handler) is left out by
    // inspectRoutes' own test; a handler for every method (`all`) must be named here, with what it accepts.
    const handlers = inspectRoutes(app).filter((r) => !r.isMiddleware);
    const everyMethod: Record<string, string> = { "/llm/:run/:round/:attempt/:sig/*": "POST" }; // the gateway forwards POSTs only
    expect(handlers.filter((r) => r.method === "ALL").map((r) => r.path)).toEqual(Object.keys(everyMethod));
    const routes = new Set(handlers.map((r) => `${r.method === "ALL" ? everyMethod[r.path] : r.method} ${openApiPath(r.path)}`));

    expect([...routes].filter((r) => !documented.has(r)), "routes the document leaves out").toEqual([]);
    expect([...documented].filter((r) => !routes.has(r)), "documented routes the app does not have").toEqual([]);
    // Sandbox-only routes are there, under their own tag.
    for (const prefix of ["/ingest/", "/llm/"]) {
      expect(operations(doc).filter((o) => o.path.startsWith(prefix)).map((o) => o.op.tags[0])).toContain("Internal (sandboxes)");
    }
  });

  it("describes a route's path parameters and its request body from the route's own zod schema", async () => {
    const doc = await document();
    for (const { path, op } of operations(doc)) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      expect((op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name), path).toEqual(inPath);
    }
    const run = doc.paths["/api/runs"]!.post!.requestBody!.content["application/json"]!.schema as { required: string[]; properties: Record<string, unknown> };
    expect(run.required).toEqual(["prompt"]);
    expect(Object.keys(run.properties)).toEqual(expect.arrayContaining(["prompt", "attempts", "agent", "variations", "base", "verify", "limits", "winner"]));
    const artifact = doc.paths["/api/runs/{id}/attempts/{n}/{artifact}"]!.get!.parameters!.find((p) => p.name === "artifact") as unknown as { schema: { enum: string[] } };
    expect(artifact.schema.enum).toEqual(["diff", "log"]);
  });

  it("says truly which credential and scope each operation needs", async () => {
    const doc = await document();
    const read = await keyWith(["runs:read"]);
    const write = await keyWith(["runs:write"]);
    const runsOnly = await keyWith(["runs:read", "runs:write"]);
    const admin = await keyWith(["admin"]);
    const holding: Record<string, string> = { "runs:read": read, "runs:write": write, admin };
    const lacking: Record<string, string> = { "runs:read": write, "runs:write": read, admin: runsOnly };

    const checked: string[] = [];
    for (const { method, path, op } of operations(doc)) {
      const call = (key: string | null) => api(filled(path), { method, key });
      const what = `${method} ${path}`;
      if (op["x-auth"] === "key") {
        const scope = op["x-scope"];
        expect(op.security, what).toEqual([{ apiKey: scope ? [scope] : [] }]);
        expect((await call(null)).status, `${what} without a key`).toBe(401);
        expect([401, 403], `${what} with ${scope ?? "any"} scope`).not.toContain((await call(scope ? holding[scope]! : read)).status);
        if (scope) expect((await call(lacking[scope]!)).status, `${what} without ${scope}`).toBe(403);
      } else if (op["x-auth"] === "admin-token") {
        expect(op.security, what).toEqual([{ adminToken: [] }]);
        expect((await call(admin)).status, `${what} with an account's admin key`).toBe(403);
        expect([401, 403], `${what} with ADMIN_TOKEN`).not.toContain((await call(ADMIN_TOKEN)).status);
      } else if (op["x-auth"] === "none") {
        expect(op.security, what).toEqual([]);
        expect((await call(null)).status, what).toBe(200);
      } else if (op["x-auth"] === "share-token") {
        expect(op.security, what).toEqual([]);
        expect((await call(null)).status, `${what} with an unknown token`).toBe(404);
      } else continue;
      checked.push(what);
    }
    expect(checked.length).toBeGreaterThan(50);
  });

  it("renders /docs: every operation, its parameters and request body, on one self-contained page", async () => {
    const doc = await document();
    const res = await api("/docs", { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const page = await res.text();
    expect(page).toContain("<title>multishot API</title>");
    expect(page).toContain('href="/api/openapi.json"');
    const text = page.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
    for (const { method, path } of operations(doc)) expect(text).toContain(`${method} ${path}`);
    expect(text).toContain("POST /api/runs");
    expect(text).toContain("Idempotency-Key"); // a header parameter
    expect(page).toContain("&quot;maxLength&quot;: 100000"); // the run request's prompt cap, pretty-printed
    // Nothing from elsewhere: no script, no outside stylesheet, image or link.
    expect(page).not.toMatch(/<script|<link|<img|src=|href="https?:/i);
  });
});
