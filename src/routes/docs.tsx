// GET /api/openapi.json (the OpenAPI 3.1 document, src/openapi.ts) and GET /docs (the same, as a page:
// self-contained, no script, no outside assets).
import { Hono } from "hono";
import { html, raw } from "hono/html";
import { OPERATIONS, openApiDocument, openApiPath } from "../openapi.ts";
import type { AppEnv } from "./app-types.ts";

const CSS = `body{font:14px/1.5 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px;color:#1b1f24}
h2{margin-top:28px;border-bottom:1px solid #d8dde3}.op{border:1px solid #d8dde3;border-radius:6px;margin:10px 0;padding:8px 12px}
.m{display:inline-block;min-width:56px;font-weight:700;text-transform:uppercase}.get{color:#1a7f37}.post{color:#0969da}.delete{color:#cf222e}
.put,.patch{color:#9a6700}code{font:12px ui-monospace,monospace}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;max-height:360px}
.muted{color:#667}`;

export const docs = new Hono<AppEnv>()
  .get("/api/openapi.json", (c) => c.json(openApiDocument(c.env.PUBLIC_URL)))
  .get("/docs", (c) => {
    const doc = openApiDocument(c.env.PUBLIC_URL) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>> };
    const tags = [...new Set(OPERATIONS.map((o) => o.tag))];
    return c.html(
      html`<!doctype html>${(
        <html lang="en">
          <head>
            <meta charset="utf-8" />
            <meta name="viewport" content="width=device-width, initial-scale=1" />
            <title>multishot API</title>
            <style>{raw(CSS)}</style>
          </head>
          <body>
            <h1>multishot API</h1>
            <p>
              Every <code>/api</code> route wants <code>Authorization: Bearer &lt;key&gt;</code>. Errors are JSON{" "}
              <code>{"{error: {code, message, details?}}"}</code>. The machine-readable form:{" "}
              <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1).
            </p>
            {tags.map((tag) => (
              <section>
                <h2>{tag}</h2>
                {OPERATIONS.filter((o) => o.tag === tag).map((o) => {
                  const body = doc.paths[openApiPath(o.path)]?.[o.method]?.requestBody?.content["application/json"]?.schema;
                  return (
                    <div class="op" id={`${o.method}-${openApiPath(o.path)}`}>
                      <div>
                        <span class={`m ${o.method}`}>{o.method}</span> <code>{o.path}</code>
                      </div>
                      <div>{o.summary}</div>
                      <div class="muted">
                        auth: {o.auth}
                        {o.scope ? ` · scope ${o.scope}` : ""} ·{" "}
                        {Object.entries(o.responses)
                          .map(([s, d]) => `${s} ${d}`)
                          .join(" · ")}
                      </div>
                      {body ? (
                        <details>
                          <summary>request body</summary>
                          <pre>{JSON.stringify(body, null, 2)}</pre>
                        </details>
                      ) : o.rawBody ? (
                        <div class="muted">body: {o.rawBody}</div>
                      ) : null}
                    </div>
                  );
                })}
              </section>
            ))}
          </body>
        </html>
      )}`,
    );
  });
