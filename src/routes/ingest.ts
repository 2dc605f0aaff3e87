// POST /ingest/<run>/<round>/<attempt>/<sig>: reports from the runner inside an attempt's sandbox.
// Authenticated by the URL's signature alone (sandboxes hold no API key); answered fast, always JSON.
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../errors.ts";
import { verifySignature } from "../signed-urls.ts";
import { JOB_NAMES } from "../vocabulary.ts";
import type { AppEnv } from "./app-types.ts";
import { intParam, jsonBody } from "./validate.ts";

const reportSchema = z.object({
  job: z.enum(JOB_NAMES),
  try: z.number().int().min(1),
  kind: z.enum(["output", "exit"]),
  seq: z.number().int().min(0).optional(),
  first: z.number().int().min(0).optional(),
  lines: z.array(z.string().max(70_000)).max(1000).optional(),
  exitCode: z.number().int().optional(),
  signal: z.string().nullable().optional(),
});

export const ingest = new Hono<AppEnv>().post("/:run/:round/:attempt/:sig", async (c) => {
  const runId = c.req.param("run");
  const round = intParam(c, "round");
  const attempt = intParam(c, "attempt");
  if (!(await verifySignature(c.env, "ingest", [runId, round, attempt], c.req.param("sig")))) {
    throw new ApiError(403, "forbidden", "bad ingest signature");
  }
  const report = await jsonBody(c, reportSchema);
  const stub = c.env.RUN_COORDINATOR.get(c.env.RUN_COORDINATOR.idFromName(runId));
  const { accepted } = await stub.ingest(round, attempt, {
    job: report.job,
    try: report.try,
    kind: report.kind,
    ...(report.lines ? { lines: report.lines, first: report.first ?? 0 } : {}),
    ...(report.exitCode !== undefined ? { exitCode: report.exitCode } : {}),
  });
  // 410 tells the runner to stop reporting: the attempt is over.
  return accepted ? c.json({ ok: true }) : c.json({ error: { code: "gone", message: "the attempt has ended" } }, 410);
});
