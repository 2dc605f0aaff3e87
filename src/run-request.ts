// What a caller may ask for when starting a run. Validated once, at the edge; the Durable Object
// receives only requests that passed this schema.
import { z } from "zod";

export const AGENTS = ["claude-code", "demo"] as const;
export type AgentKind = (typeof AGENTS)[number];

export const MAX_PROMPT_CHARS = 100_000;
export const DEFAULT_EXCLUDES = ["node_modules", ".venv", "venv", "__pycache__", ".next/cache", ".turbo"] as const;

const variation = z.strictObject({
  model: z.string().min(1).max(200).optional(),
  promptSuffix: z.string().max(10_000).optional(),
});

const base = z.union([
  z.strictObject({
    git: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), "only http(s) git URLs are supported")
      // Credentials in the URL would show in the run, its share page and the workspace's .git/config.
      .refine((u) => !/^https?:\/\/[^/]*@/.test(u), "no credentials in the git URL: use a public repository URL"),
    ref: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9._\/-]+$/, "a branch, tag or commit")
      .optional(),
  }),
  z.strictObject({ run: z.string().min(1), round: z.number().int().min(1) }),
]);

/** How to serve an attempt's workspace for a preview, when detection should not guess. */
export const previewConfigSchema = z.strictObject({
  /** Run from the workspace with HOST=0.0.0.0 and PORT set; it must listen on 0.0.0.0:<port>. */
  command: z.string().min(1).max(2_000),
  port: z.number().int().min(1).max(65_535),
  /** Run once before the server (e.g. "npm ci"). */
  install: z.string().min(1).max(2_000).optional(),
});
export type PreviewConfig = z.output<typeof previewConfigSchema>;

/** Options of one preview request. */
export const previewRequestSchema = z.strictObject({
  /** Seconds the signed link stays good: 1 hour by default, at most 24 hours. */
  expiresIn: z.number().int().min(1).max(24 * 3600).default(3600),
  /** Health check: tries, and milliseconds between them. */
  healthTries: z.number().int().min(1).max(600).default(30),
  healthIntervalMs: z.number().int().min(100).max(10_000).default(1000),
}).refine((r) => r.healthTries * r.healthIntervalMs <= 600_000, {
  message: "healthTries × healthIntervalMs may be at most 10 minutes",
  path: ["healthTries"],
});
export type PreviewRequest = z.output<typeof previewRequestSchema>;

/**
 * The attempts' sandboxes: a snapshot to start from (agents preinstalled: `npm run snapshot`), or the
 * resources of a sandbox made from the image (DAYTONA_IMAGE). Daytona takes resources only with an image:
 * a sandbox made from a snapshot has the snapshot's (daytona.io/docs/en/scale, "Sandbox scaling").
 */
export const sandboxRequestSchema = z
  .strictObject({
    snapshot: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:\/-]*$/, "a snapshot name: letters, digits and . _ : / -")
      .optional(),
    resources: z
      .strictObject({
        /** vCPUs */
        cpu: z.number().int().min(1).max(64).optional(),
        /** GiB */
        memory: z.number().int().min(1).max(512).optional(),
        /** GiB */
        disk: z.number().int().min(1).max(2048).optional(),
      })
      .refine((r) => r.cpu !== undefined || r.memory !== undefined || r.disk !== undefined, "give at least one of cpu, memory, disk")
      .optional(),
  })
  .superRefine((s, ctx) => {
    if (s.snapshot !== undefined && s.resources !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["resources"],
        message:
          "resources come with an image, not a snapshot: a sandbox made from a snapshot has the snapshot's resources (Daytona). Leave out snapshot to get a sandbox of these resources from the image, or build a snapshot with them",
      });
    }
  });
export type SandboxRequest = z.output<typeof sandboxRequestSchema>;

export const runRequestSchema = z
  .strictObject({
    prompt: z.string().trim().min(1, "prompt must not be empty").max(MAX_PROMPT_CHARS),
    attempts: z.number().int().min(1).max(8).default(4),
    agent: z.enum(AGENTS).default("claude-code"),
    model: z.string().min(1).max(200).optional(),
    variations: z.array(variation).min(1).max(8).optional(),
    base: base.optional(),
    verify: z.string().min(1).max(2_000).optional(),
    /** Left out of the winner's tarball (tar --exclude patterns); .git is always kept. */
    excludes: z
      .array(z.string().min(1).max(200).regex(/^[^'"\\\n\r`$]+$/, "no quotes, backslashes, backticks or $"))
      .max(50)
      .default([...DEFAULT_EXCLUDES]),
    /** "manual": a person picks; "first-verified": the first attempt whose verify command passes wins. */
    winner: z.enum(["manual", "first-verified"]).default("manual"),
    preview: previewConfigSchema.optional(),
    sandbox: sandboxRequestSchema.optional(),
    limits: z
      .strictObject({
        attemptMinutes: z.number().positive().min(0.05).max(24 * 60).optional(),
        maxTurns: z.number().int().min(1).max(500).optional(),
        /** Rounds the run may have in all (the first included). */
        maxRounds: z.number().int().min(1).max(100).optional(),
        /** USD the run's model calls may cost in all (API-key mode: counted by the credential gateway). */
        budgetUsd: z.number().positive().max(100_000).optional(),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.winner === "first-verified" && !r.verify) {
      ctx.addIssue({ code: "custom", path: ["winner"], message: 'winner "first-verified" needs a verify command' });
    }
    if (r.variations && r.variations.length !== r.attempts) {
      ctx.addIssue({
        code: "custom",
        path: ["variations"],
        message: `variations must have one entry per attempt (${r.attempts}), got ${r.variations.length}`,
      });
    }
  });

export type RunRequest = z.output<typeof runRequestSchema>;

export const DEFAULT_ATTEMPT_MINUTES = 30;
export const DEFAULT_MAX_TURNS = 50;
/** Rounds a run may have when its request sets no `limits.maxRounds`: no run grows without end by default. */
export const DEFAULT_MAX_ROUNDS = 20;

/** The next round: a new prompt for N fresh attempts seeded from a winner (the newest by default). */
export const roundRequestSchema = z
  .strictObject({
    prompt: z.string().trim().min(1, "prompt must not be empty").max(MAX_PROMPT_CHARS),
    attempts: z.number().int().min(1).max(8).optional(),
    variations: z.array(variation).min(1).max(8).optional(),
    from: z.number().int().min(1).optional(),
    /** How to serve this round's attempts for previews (the run's `preview` otherwise). */
    preview: previewConfigSchema.optional(),
    /** This round's sandboxes (the run's `sandbox` otherwise). */
    sandbox: sandboxRequestSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.variations && r.attempts !== undefined && r.variations.length !== r.attempts) {
      ctx.addIssue({ code: "custom", path: ["variations"], message: `variations must have one entry per attempt (${r.attempts})` });
    }
  });
export type RoundRequest = z.output<typeof roundRequestSchema>;

export const winnerRequestSchema = z.strictObject({ attempt: z.number().int().min(1).max(8) });
