// Slack: `/slack/commands` (the /multishot slash command) and `/slack/interactions` (buttons and the
// "Next round" modal), and `/api/slack/…` where an account admin links Slack workspaces or users to
// the account.
//
// Every request from Slack is checked against SLACK_SIGNING_SECRET before anything in it is read.
// Slack wants an answer within three seconds: the command answers at once (with the run's share link
// when the run is up in time, which is nearly always) and leaves the rest to `waitUntil`. A command's
// run id is derived from its trigger, so Slack's retries (X-Slack-Retry-Num) land on the same run.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { randomId, sha256Hex } from "../crypto.ts";
import { db } from "../db/client.ts";
import {
  claimSlackRun,
  deleteSlackLink,
  insertLinkCode,
  linkSlack,
  listSlackLinks,
  linkCodeScope,
  redeemLinkCode,
  setSlackRunShare,
  slackAccount,
  slackRun,
} from "../db/integration-queries.ts";
import { ensureLocalAccount, runOwner } from "../db/queries.ts";
import { isLocalMode, type Env } from "../env.ts";
import { ApiError, notFound } from "../errors.ts";
import { derivedRunId, seal, unseal } from "../integrations/derive.ts";
import { verifySlackRequest } from "../integrations/signatures.ts";
import { SlackApi, SlackApiError, postToResponseUrl } from "../integrations/slack-api.ts";
import { parseSlackCommand } from "../integrations/slack-command.ts";
import {
  NEXT_ROUND_ACTION,
  NEXT_ROUND_VIEW,
  PICK_ACTION,
  PROMPT_BLOCK,
  ephemeral,
  nextRoundModal,
  usage,
  type RoundRef,
} from "../integrations/slack-messages.ts";
import { SHARE_SEAL_PURPOSE } from "../integrations/slack-progress.ts";
import { roundRequestSchema, runRequestSchema } from "../run-request.ts";
import { startNextRound, startRun } from "../runs/start.ts";
import { createShareLink } from "../share.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey, requireScope } from "./auth.ts";
import { coordinator } from "./run-access.ts";
import { MAX_BODY_BYTES, jsonBody } from "./validate.ts";

/** How long a command waits for its run and share link before answering without them (Slack allows 3 s). */
const ACK_BUDGET_MS = 2_000;
/** How long a link code made by `POST /api/slack/link-codes` can be redeemed. */
const LINK_CODE_TTL_MS = 15 * 60_000;
export const linkCodeRequestSchema = z.strictObject({ scope: z.enum(["team", "user"]).default("team") });

const RUN_ID = /^run_[a-z2-7]{20}$/;
const pickSchema = z.strictObject({ run: z.string().regex(RUN_ID), round: z.number().int().min(1), attempt: z.number().int().min(1) });
const roundRefSchema = z.strictObject({ run: z.string().regex(RUN_ID), round: z.number().int().min(1) });

const interactionSchema = z.object({
  type: z.string(),
  team: z.object({ id: z.string() }).nullish(),
  user: z.object({ id: z.string(), team_id: z.string().optional() }),
  trigger_id: z.string().optional(),
  response_url: z.string().optional(),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().optional() })).optional(),
  view: z
    .object({
      callback_id: z.string().optional(),
      private_metadata: z.string().optional(),
      state: z.object({ values: z.record(z.string(), z.record(z.string(), z.object({ value: z.string().nullish() }).loose())) }).optional(),
    })
    .loose()
    .optional(),
});
type Interaction = z.output<typeof interactionSchema>;

/** The raw body of a request Slack signed; refuses (401) anything else before it is parsed. */
async function slackBody(c: Context<AppEnv>): Promise<string> {
  const secret = c.env.SLACK_SIGNING_SECRET;
  if (!secret) throw new ApiError(503, "slack_not_configured", "Slack is not set up here: SLACK_SIGNING_SECRET is not set");
  if (Number(c.req.header("content-length") ?? "0") > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
  const body = await c.req.text();
  if (body.length > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
  const verdict = await verifySlackRequest(secret, c.req.raw.headers, body);
  if (!verdict.ok) throw new ApiError(401, "invalid_signature", verdict.reason);
  return body;
}

/** The account a Slack user acts for: their own link, their workspace's, or in local mode the local account. */
async function slackAccountFor(env: Env, teamId: string, userId: string): Promise<string | null> {
  const linked = await slackAccount(db(env.DB), teamId, userId);
  if (linked) return linked;
  return isLocalMode(env) ? ensureLocalAccount(db(env.DB)) : null;
}

const NOT_LINKED =
  "This Slack workspace is not linked to a multishot account. An account admin can make a code with `POST /api/slack/link-codes`; then run `/multishot link <code>` here.";

export const slack = new Hono<AppEnv>()
  // ---------------------------------------------------------------- from Slack

  .post("/slack/commands", async (c) => {
    const body = await slackBody(c);
    const form = new URLSearchParams(body);
    if (form.get("ssl_check") === "1") return c.body(null, 200);
    const teamId = form.get("team_id");
    const userId = form.get("user_id");
    const channelId = form.get("channel_id");
    const command = form.get("command") || "/multishot";
    if (!teamId || !userId || !channelId) throw new ApiError(400, "invalid_request", "team_id, user_id and channel_id are required");

    const parsed = parseSlackCommand(form.get("text") ?? "");
    switch (parsed.kind) {
      case "help":
        return c.json(ephemeral(usage(command)));
      case "invalid":
        return c.json(ephemeral(`${parsed.message}\n${usage(command)}`));
      case "link":
        return c.json(ephemeral(await redeemLink(c.env, parsed.code, teamId, userId)));
    }

    const accountId = await slackAccountFor(c.env, teamId, userId);
    if (!accountId) return c.json(ephemeral(NOT_LINKED));
    const checked = runRequestSchema.safeParse({
      prompt: parsed.prompt,
      ...(parsed.attempts !== undefined ? { attempts: parsed.attempts } : {}),
      ...(parsed.agent !== undefined ? { agent: parsed.agent } : {}),
    });
    if (!checked.success) {
      const issue = checked.error.issues[0];
      return c.json(ephemeral(`That run cannot start: ${issue ? `${issue.path.join(".") || "request"}: ${issue.message}` : "invalid request"}\n${usage(command)}`));
    }
    const request = checked.data;

    // One trigger, one run: a retried delivery carries the same trigger_id (and the same body).
    const source = form.get("trigger_id") || (await sha256Hex(body));
    const runId = await derivedRunId(c.env, `slack:${teamId}:${source}`);
    const first = await claimSlackRun(db(c.env.DB), { runId, accountId, teamId, channelId, userId });
    const env = c.env;
    const work = (async () => {
      const view = await startRun(env, { id: runId, accountId, request });
      return { view, shareUrl: await shareLinkFor(env, runId, accountId, first) };
    })();
    const settled = work.then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    );
    c.executionCtx.waitUntil(settled);
    let budget: ReturnType<typeof setTimeout> | undefined;
    const early = await Promise.race([settled, new Promise<null>((r) => (budget = setTimeout(() => r(null), ACK_BUDGET_MS)))]);
    clearTimeout(budget);
    const answer = (o: Awaited<typeof settled>) =>
      "err" in o ? ephemeral(`Run ${runId} could not start: ${describe(o.err)}`) : ephemeral(startedText(o.ok.view.id, request, o.ok.shareUrl, first));
    if (early) return c.json(answer(early));
    const responseUrl = form.get("response_url");
    if (responseUrl) c.executionCtx.waitUntil(settled.then((o) => postToResponseUrl(responseUrl, answer(o))));
    return c.json(ephemeral(`Starting ${runId} (${attemptsOf(request)}). The link follows in a moment.`));
  })

  .post("/slack/interactions", async (c) => {
    const body = await slackBody(c);
    let interaction: Interaction;
    try {
      interaction = interactionSchema.parse(JSON.parse(new URLSearchParams(body).get("payload") ?? ""));
    } catch {
      throw new ApiError(400, "invalid_payload", "the body's payload field is not a Slack interaction");
    }
    const teamId = interaction.team?.id ?? interaction.user.team_id ?? "";
    const accountId = await slackAccountFor(c.env, teamId, interaction.user.id);

    if (interaction.type === "block_actions") {
      const action = interaction.actions?.[0];
      // Refusals reach the person as an ephemeral note; Slack only needs a quick 200.
      const respond = (text: string) => {
        if (interaction.response_url) c.executionCtx.waitUntil(postToResponseUrl(interaction.response_url, { ...ephemeral(text), replace_original: false }));
        return c.body(null, 200);
      };
      if (!action) return c.body(null, 200);
      const [kind] = action.action_id.split(":");
      if (kind === PICK_ACTION) {
        const pick = parseJson(action.value, pickSchema);
        if (!pick) throw new ApiError(400, "invalid_payload", "the button's value is not a pick");
        if (!accountId) return respond(NOT_LINKED);
        if ((await runOwner(db(c.env.DB), pick.run)) !== accountId) return respond("That run belongs to another multishot account.");
        const outcome = await coordinator(c.env, pick.run).pickWinner(pick.round, pick.attempt);
        if ("error" in outcome) return respond(`Could not pick attempt ${pick.attempt}: ${outcome.error.message}`);
        // The round's message is updated by the run itself (winner.selected); the person gets the modal.
        if (interaction.trigger_id) c.executionCtx.waitUntil(openModal(c.env, interaction.trigger_id, { run: pick.run, round: pick.round }, pick.attempt));
        return c.body(null, 200);
      }
      if (kind === NEXT_ROUND_ACTION) {
        const ref = parseJson(action.value, roundRefSchema);
        if (!ref) throw new ApiError(400, "invalid_payload", "the button's value is not a round");
        if (!accountId) return respond(NOT_LINKED);
        if ((await runOwner(db(c.env.DB), ref.run)) !== accountId) return respond("That run belongs to another multishot account.");
        const view = await coordinator(c.env, ref.run).view();
        if (interaction.trigger_id) c.executionCtx.waitUntil(openModal(c.env, interaction.trigger_id, ref, view.rounds[ref.round - 1]?.winner?.attempt ?? null));
        return c.body(null, 200);
      }
      return c.body(null, 200);
    }

    if (interaction.type === "view_submission" && interaction.view?.callback_id === NEXT_ROUND_VIEW) {
      const fieldError = (message: string) => c.json({ response_action: "errors", errors: { [PROMPT_BLOCK]: message } });
      const ref = parseJson(interaction.view.private_metadata, roundRefSchema);
      if (!ref) throw new ApiError(400, "invalid_payload", "the modal's metadata is not a round");
      if (!accountId) return fieldError(NOT_LINKED);
      if ((await runOwner(db(c.env.DB), ref.run)) !== accountId) return fieldError("That run belongs to another multishot account.");
      const prompt = interaction.view.state?.values[PROMPT_BLOCK]?.[PROMPT_BLOCK]?.value ?? "";
      const req = roundRequestSchema.safeParse({ prompt, from: ref.round });
      if (!req.success) return fieldError(req.error.issues[0]?.message ?? "this prompt cannot start a round");
      const stub = coordinator(c.env, ref.run);
      const view = await stub.view();
      const winner = view.rounds[ref.round - 1]?.winner;
      if (winner?.status === "packing") return fieldError("The winner's workspace is still being packed. Submit again in a moment.");
      let outcome;
      try {
        // The same limits as any next round: over one, the modal says so and nothing starts.
        outcome = await startNextRound(c.env, accountId, ref.run, req.data, view);
      } catch (err) {
        if (err instanceof ApiError && err.status === 429) return fieldError(err.message);
        throw err;
      }
      if ("error" in outcome) return fieldError(outcome.error.message);
      // An empty answer closes the modal; the new round's message follows from the run.
      return c.body(null, 200);
    }
    return c.body(null, 200);
  })

  // ---------------------------------------------------------------- the account's Slack links

  .use("/api/slack/*", requireApiKey, async (c, next) => {
    if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN manages accounts, their limits and the stats; this needs an account's API key");
    await next();
  })
  .use("/api/slack/*", requireScope("admin"))

  // No Idempotency-Key here: the answer holds a secret, and a repeated request only makes another code.
  .post("/api/slack/link-codes", async (c) => {
    const empty = c.req.header("content-length") === "0" || !c.req.header("content-type");
    const req = empty ? { scope: "team" as const } : await jsonBody(c, linkCodeRequestSchema);
    const code = `msl_${randomId("x").slice(2)}`;
    const expiresAt = Date.now() + LINK_CODE_TTL_MS;
    await insertLinkCode(db(c.env.DB), { hash: await sha256Hex(code), accountId: c.get("accountId"), scope: req.scope, expiresAt });
    // The only time the code is shown.
    return c.json({ code, scope: req.scope, expiresAt, command: `/multishot link ${code}` }, 201);
  })

  .get("/api/slack/links", async (c) => c.json({ links: await listSlackLinks(db(c.env.DB), c.get("accountId")) }))

  .delete("/api/slack/links/:linkId", async (c) => {
    if (!(await deleteSlackLink(db(c.env.DB), c.get("accountId"), c.req.param("linkId")))) throw notFound("Slack link");
    return c.json({ id: c.req.param("linkId"), deleted: true });
  });

/** `/multishot link <code>`: the code's account gets this workspace (team code) or this user (user code). */
async function redeemLink(env: Env, code: string, teamId: string, userId: string): Promise<string> {
  const d = db(env.DB);
  const hash = /^msl_[a-z2-7]{20}$/.test(code) ? await sha256Hex(code) : null;
  // A workspace is linked by one of its admins only: any member could otherwise send every colleague's
  // /multishot to an account of their own. Checked before the code is used, so a refusal keeps it.
  if (hash && (await linkCodeScope(d, hash, Date.now())) === "team") {
    const refused = await notWorkspaceAdmin(env, userId);
    if (refused) return refused;
  }
  const redeemed = hash ? await redeemLinkCode(d, hash, Date.now()) : undefined;
  if (!redeemed) return "That link code is unknown, used or expired. Make a new one with `POST /api/slack/link-codes`.";
  const who = redeemed.scope === "team" ? "This workspace" : "You";
  const result = await linkSlack(d, { id: randomId("slk"), accountId: redeemed.accountId, teamId, userId: redeemed.scope === "team" ? "" : userId });
  if (result === "taken") return `${who} ${redeemed.scope === "team" ? "is" : "are"} linked to another multishot account already; unlink there first.`;
  return `${who} ${redeemed.scope === "team" ? "is" : "are"} now linked to multishot account ${redeemed.accountId}: \`/multishot <prompt>\` starts runs there.`;
}

/** Why this Slack user may not link the workspace (not an admin or owner, per users.info), or null. */
async function notWorkspaceAdmin(env: Env, userId: string): Promise<string | null> {
  const api = new SlackApi(env);
  if (!api.configured) return "Linking a workspace needs the service's SLACK_BOT_TOKEN (to check that you are a workspace admin); ask its operator, or link just yourself with a user code.";
  const notAdmin =
    "Only a workspace admin or owner can link this workspace. Ask one to run the command, or link just yourself with a user code (`POST /api/slack/link-codes {\"scope\": \"user\"}`).";
  try {
    const { user } = await api.call<{ user: { is_admin?: boolean; is_owner?: boolean; is_primary_owner?: boolean } }>("users.info", { user: userId });
    return user.is_admin || user.is_owner || user.is_primary_owner ? null : notAdmin;
  } catch (err) {
    if (err instanceof SlackApiError && err.error === "user_not_found") return notAdmin;
    return `Could not check that you are a workspace admin (${err instanceof Error ? err.message : String(err)}); the code is still good, try again.`;
  }
}

/**
 * The run page's link: made by the command's first delivery (view scope) and kept sealed in D1 for the
 * run's Slack messages; a retried delivery reads it back. A run without one still runs; its messages
 * then link to the API.
 */
async function shareLinkFor(env: Env, runId: string, accountId: string, first: boolean): Promise<string | null> {
  try {
    if (first) {
      const link = await createShareLink(env, { runId, accountId, scope: "view" });
      await setSlackRunShare(db(env.DB), runId, await seal(env, SHARE_SEAL_PURPOSE, runId, link.url));
      return link.url;
    }
    const row = await slackRun(db(env.DB), runId);
    return row?.shareUrlSealed ? await unseal(env, SHARE_SEAL_PURPOSE, runId, row.shareUrlSealed) : null;
  } catch (err) {
    console.error(`the share link of ${runId} could not be made`, err instanceof Error ? err.message : err);
    return null;
  }
}

async function openModal(env: Env, triggerId: string, ref: RoundRef, winnerAttempt: number | null): Promise<void> {
  try {
    await new SlackApi(env).call("views.open", { trigger_id: triggerId, view: nextRoundModal(ref, winnerAttempt) });
  } catch (err) {
    console.warn("opening the next-round modal failed", err instanceof Error ? err.message : err);
  }
}

function startedText(runId: string, request: { attempts: number; agent: string; prompt: string }, shareUrl: string | null, first: boolean): string {
  const what = attemptsOf(request);
  const link = shareUrl ? ` Watch it live: ${shareUrl}` : "";
  return first ? `Started ${runId}: ${what}. Progress goes to this channel.${link}` : `Already on it: ${runId} (${what}).${link}`;
}

const attemptsOf = (r: { attempts: number; agent: string }) => `${r.attempts} ${r.attempts === 1 ? "attempt" : "attempts"} of ${r.agent}`;

function describe(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  console.error("starting a run from Slack failed", err instanceof Error ? err.stack : err);
  return "internal error";
}

function parseJson<S extends z.ZodType>(text: string | undefined, schema: S): z.output<S> | null {
  try {
    const r = schema.safeParse(JSON.parse(text ?? ""));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
