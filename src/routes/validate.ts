// Request bodies: size-capped, parsed as JSON, checked against a zod schema, with errors that say
// exactly which field is wrong.
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../errors.ts";

export const MAX_BODY_BYTES = 1_000_000;

export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json");
  }
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, "invalid_json", `the body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    const first = issues[0];
    throw new ApiError(
      400,
      "validation_failed",
      first ? `${first.path || "body"}: ${first.message}` : "the body is not valid",
      issues,
    );
  }
  return parsed.data;
}

/** A positive integer path parameter, or a 400 naming it. */
export function intParam(c: Context, name: string): number {
  const raw = c.req.param(name) ?? "";
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1) throw new ApiError(400, "invalid_parameter", `${name} must be a positive integer`);
  return n;
}
