// /r/<token>: the run page a share link opens, its live socket, its artifacts, and (control links
// only) its controls. A token that is unknown, revoked or expired shows a plain "link expired" page
// (404) and never another run. Every answer here is kept out of search engines.
import { Hono, type Context } from "hono";
import { createMiddleware } from "hono/factory";
import { html } from "hono/html";
import { attemptArtifactKey } from "../artifact-keys.ts";
import { ApiError, notFound } from "../errors.ts";
import { ExpiredPage, LiveRegion, RunPage, type PageContext, type PageData } from "../page/components.tsx";
import liveScript from "../page/live.client.js";
import { roundRequestSchema, winnerRequestSchema } from "../run-request.ts";
import { startNextRound } from "../runs/start.ts";
import { pageUrl, resolveShareToken, type ResolvedShare } from "../share.ts";
import type { AppEnv } from "./app-types.ts";
import { answerPreview, previewOptions } from "./previews.ts";
import { winnerTarball } from "./rounds.ts";
import { coordinator, unwrap } from "./run-access.ts";
import { intParam, jsonBody } from "./validate.ts";

type PageEnv = AppEnv & { Variables: { share: ResolvedShare } };

/** Transcript entries each attempt shows when the page loads; the rest are behind "full transcript". */
const TRANSCRIPT_TAIL = 200;

const PAGE_HEADERS = {
  "x-robots-tag": "noindex, nofollow",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
};

function expired(c: Context) {
  const accept = c.req.header("accept") ?? "";
  // A script's requests (run.json, the event stream, the socket) get JSON; a browser's page gets HTML.
  const forScripts = /\/(run\.json|events|live)$/.test(c.req.path);
  const wantsJson = c.req.method !== "GET" || forScripts || (accept.includes("application/json") && !accept.includes("text/html"));
  if (wantsJson) return c.json({ error: { code: "link_expired", message: "this share link has expired or was revoked" } }, 404, PAGE_HEADERS);
  return c.html(html`<!doctype html>${<ExpiredPage />}`, 404, PAGE_HEADERS);
}

const requireControl = (c: Context<PageEnv>) => {
  if (c.get("share").scope !== "control") {
    throw new ApiError(403, "forbidden", "this is a view-only link: ask for a control link to pick winners, start rounds or cancel");
  }
};

async function pageData(c: Context<PageEnv>): Promise<PageData> {
  return (await coordinator(c.env, c.get("share").runId).page(TRANSCRIPT_TAIL)) as PageData;
}

const pageContext = (c: Context<PageEnv>): PageContext => ({ base: `/r/${c.req.param("token")}`, scope: c.get("share").scope });

/** Resolves the token, or answers "link expired"; every answer but a WebSocket gets PAGE_HEADERS. */
const withShare = createMiddleware<PageEnv>(async (c, next) => {
  const share = await resolveShareToken(c.env, c.req.param("token") ?? "");
  if (!share) return expired(c);
  c.set("share", share);
  await next();
  if (c.res.status === 101) return;
  // A response that came from the run's object has immutable headers: answer with a copy.
  const res = new Response(c.res.body, c.res);
  for (const [k, v] of Object.entries(PAGE_HEADERS)) if (!res.headers.has(k)) res.headers.set(k, v);
  c.res = undefined;
  c.res = res;
});

export const page = new Hono<PageEnv>()
  .use("/:token", withShare)
  .use("/:token/*", withShare)

  .get("/:token", async (c) => {
    const data = await pageData(c);
    const body = <RunPage ctx={pageContext(c)} data={data} url={pageUrl(c.env, c.req.param("token"))} script={liveScript} />;
    return c.html(html`<!doctype html>${body}`);
  })

  /** The #live region alone, for the page's script to swap in. */
  .get("/:token/live.html", async (c) => c.html(<LiveRegion ctx={pageContext(c)} data={await pageData(c)} />))

  /** The page's WebSocket (the run's object accepts it; see RunCoordinator.acceptLive). */
  .get("/:token/live", async (c) => {
    const after = Number(c.req.query("after") ?? "0");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    const { runId, linkId, expiresAt } = c.get("share");
    const q = `after=${after}&link=${linkId}${expiresAt ? `&expires=${expiresAt}` : ""}`;
    return coordinator(c.env, runId).fetch(`https://run/live?${q}`, { headers: c.req.raw.headers });
  })

  /** The run as JSON, as the API shows it. */
  .get("/:token/run.json", async (c) => c.json(await coordinator(c.env, c.get("share").runId).view()))

  .get("/:token/events", async (c) => {
    const after = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? "0");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    const { runId, linkId, expiresAt } = c.get("share");
    const q = `after=${after}&link=${linkId}${expiresAt ? `&expires=${expiresAt}` : ""}`;
    return coordinator(c.env, runId).fetch(`https://run/events?${q}`, { signal: c.req.raw.signal });
  })

  .get("/:token/rounds/:round/attempts/:n/:artifact{diff|log}", async (c) => {
    const { runId } = c.get("share");
    const round = intParam(c, "round");
    const n = intParam(c, "n");
    const which = c.req.param("artifact");
    const object = await c.env.ARTIFACTS.get(attemptArtifactKey(runId, round, n, which === "diff" ? "diff.patch" : "agent.log"));
    if (!object) throw notFound(`${which} of attempt ${n} in round ${round}`);
    // Shown as text in the browser, never interpreted: the content is the agent's.
    return new Response(object.body, { headers: { "content-type": "text/plain; charset=utf-8", "content-length": String(object.size) } });
  })

  // Paged: a long transcript is read a page at a time (?after=<seq>&limit=<n>, 5,000 entries by
  // default), each page ending with where the next one is.
  .get("/:token/rounds/:round/attempts/:n/transcript", async (c) => {
    const after = Number(c.req.query("after") ?? "0");
    const limit = Number(c.req.query("limit") ?? "5000");
    if (!Number.isInteger(after) || after < 0) throw new ApiError(400, "invalid_parameter", "after must be a sequence number");
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new ApiError(400, "invalid_parameter", "limit must be an integer from 1 to 10000");
    const page = await coordinator(c.env, c.get("share").runId).transcriptText(intParam(c, "round"), intParam(c, "n"), after, limit);
    if (page === null) throw notFound("attempt");
    const next = page.next === null ? null : `${c.req.path}?after=${page.next}${c.req.query("limit") ? `&limit=${limit}` : ""}`;
    return c.text(next ? `${page.text}\n… the transcript continues: ${next}\n` : page.text, 200, {
      "content-type": "text/plain; charset=utf-8",
      ...(next ? { link: `<${next}>; rel="next"` } : {}),
    });
  })

  .get("/:token/rounds/:round/winner.tar.gz", async (c) => winnerTarball(c.env, c.req.raw, c.get("share").runId, intParam(c, "round")))

  // ---- controls: control links only
  .post("/:token/rounds/:round/winner", async (c) => {
    requireControl(c);
    const round = intParam(c, "round");
    const { attempt } = await jsonBody(c, winnerRequestSchema);
    return c.json(unwrap(await coordinator(c.env, c.get("share").runId).pickWinner(round, attempt)), 202);
  })

  .post("/:token/rounds", async (c) => {
    requireControl(c);
    const req = await jsonBody(c, roundRequestSchema);
    return c.json(unwrap(await startNextRound(c.env, c.get("share").accountId, c.get("share").runId, req)), 202);
  })

  .post("/:token/rounds/:round/attempts/:n/preview", async (c) => {
    requireControl(c);
    const stub = coordinator(c.env, c.get("share").runId);
    return answerPreview(c, unwrap(await stub.preview(intParam(c, "round"), intParam(c, "n"), await previewOptions(c))));
  })

  .post("/:token/rounds/:round/preview", async (c) => {
    requireControl(c);
    const stub = coordinator(c.env, c.get("share").runId);
    return c.json({ previews: unwrap(await stub.previewRound(intParam(c, "round"), await previewOptions(c))) });
  })

  .post("/:token/cancel", async (c) => {
    requireControl(c);
    return c.json(await coordinator(c.env, c.get("share").runId).cancel());
  });
