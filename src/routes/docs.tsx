// GET /api/openapi.json (the OpenAPI 3.1 document, src/openapi.ts) and GET /docs (the same document as a
// page: rendered on the server from the document itself, no script, nothing loaded from elsewhere).
import { Hono } from "hono";
import { html, raw } from "hono/html";
import { openApiDocument } from "../openapi.ts";
import type { AppEnv } from "./app-types.ts";

interface Param {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema: Record<string, unknown>;
}
interface Content {
  [mediaType: string]: { schema?: unknown };
}
interface Op {
  tags: string[];
  summary: string;
  description: string;
  operationId: string;
  parameters?: Param[];
  requestBody?: { required?: boolean; description?: string; content: Content };
  responses: Record<string, { description: string; content?: Content }>;
}
interface Doc {
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, Op>>;
  components: { schemas: Record<string, unknown> };
}

const CSS = `body{font:14px/1.5 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px;color:#1b1f24}
h2{margin-top:28px;border-bottom:1px solid #d8dde3}h3{margin:0;font-size:15px}.op{border:1px solid #d8dde3;border-radius:6px;margin:10px 0;padding:8px 12px}
.m{display:inline-block;min-width:64px;font-weight:700}.get{color:#1a7f37}.post{color:#0969da}.delete{color:#cf222e}.put,.patch{color:#9a6700}
code{font:12px ui-monospace,monospace}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px;max-height:420px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d8dde3;padding:2px 8px;text-align:left;vertical-align:top}
.muted{color:#667}ul{margin:4px 0;padding-left:20px}`;

/** A schema in a line: `RunView` for a reference, `{a, b}` for an object's fields, else its type. */
function shortSchema(schema: unknown): string {
  const s = (schema ?? {}) as { $ref?: string; type?: unknown; properties?: Record<string, unknown>; items?: unknown };
  if (s.$ref) return s.$ref.replace("#/components/schemas/", "");
  if (s.properties) return `{${Object.keys(s.properties).join(", ")}}`;
  if (s.type === "array") return `[${shortSchema(s.items)}]`;
  return typeof s.type === "string" ? s.type : "";
}

const pretty = (v: unknown) => JSON.stringify(v, null, 2);
/** The document's prose marks code with backticks. */
const prose = (text: string) => text.split("`").map((part, i) => (i % 2 ? <code>{part}</code> : part));
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-");

function Operation({ method, path, op }: { method: string; path: string; op: Op }) {
  const body = op.requestBody;
  return (
    <div class="op" id={op.operationId}>
      <h3>
        <span class={`m ${method}`}>{method.toUpperCase()}</span> <code>{path}</code>
      </h3>
      <div>{op.summary}</div>
      {op.description.split("\n\n").map((p) => (
        <div class="muted">{prose(p)}</div>
      ))}
      {op.parameters?.length ? (
        <table>
          <tr>
            <th>parameter</th>
            <th>in</th>
            <th>schema</th>
            <th>description</th>
          </tr>
          {op.parameters.map((p) => (
            <tr>
              <td>
                <code>{p.name}</code>
                {p.required ? " (required)" : ""}
              </td>
              <td>{p.in}</td>
              <td>
                <code>{JSON.stringify(p.schema)}</code>
              </td>
              <td>{prose(p.description ?? "")}</td>
            </tr>
          ))}
        </table>
      ) : null}
      {body ? (
        <details>
          <summary>
            request body{body.required ? "" : " (optional)"}: {Object.keys(body.content).join(", ")}
            {body.description ? ` (${body.description})` : ""}
          </summary>
          {body.content["application/json"]?.schema ? <pre>{pretty(body.content["application/json"].schema)}</pre> : null}
        </details>
      ) : null}
      <ul>
        {Object.entries(op.responses).map(([status, r]) => (
          <li>
            <b>{status}</b> {prose(r.description)}
            {Object.entries(r.content ?? {}).map(([type, c]) => (
              <span class="muted">
                {" "}
                · {type} <code>{shortSchema(c.schema)}</code>
              </span>
            ))}
          </li>
        ))}
      </ul>
    </div>
  );
}

export const docs = new Hono<AppEnv>()
  .get("/api/openapi.json", (c) => c.json(openApiDocument(c.env.PUBLIC_URL)))
  .get("/docs", (c) => {
    const doc = openApiDocument(c.env.PUBLIC_URL) as unknown as Doc;
    const ops = Object.entries(doc.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ path, method, op })));
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
            <h1>
              {doc.info.title} API <span class="muted">{doc.info.version}</span>
            </h1>
            {doc.info.description.split("\n\n").map((p) => (
              <p>{prose(p)}</p>
            ))}
            <p>
              The machine-readable form: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1). Shared schemas are{" "}
              <a href="#schemas">at the end</a>.
            </p>
            <ul>
              {doc.tags.map((t) => (
                <li>
                  <a href={`#${slug(t.name)}`}>{t.name}</a> <span class="muted">{prose(t.description)}</span>
                </li>
              ))}
            </ul>
            {doc.tags.map((t) => (
              <section id={slug(t.name)}>
                <h2>{t.name}</h2>
                <p class="muted">{prose(t.description)}</p>
                {ops
                  .filter((o) => o.op.tags[0] === t.name)
                  .map((o) => (
                    <Operation method={o.method} path={o.path} op={o.op} />
                  ))}
              </section>
            ))}
            <section id="schemas">
              <h2>Schemas</h2>
              {Object.entries(doc.components.schemas).map(([name, schema]) => (
                <div class="op" id={`schema-${name}`}>
                  <h3>{name}</h3>
                  <pre>{pretty(schema)}</pre>
                </div>
              ))}
            </section>
          </body>
        </html>
      )}`,
    );
  });
