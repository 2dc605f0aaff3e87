// Templates: how an inbound webhook's JSON payload becomes a run request.
//
// A template is `{when?, run}`. `run` is a run request (see src/run-request.ts) whose strings may hold
// `{{path.to.field}}` placeholders, read from the payload (`{{$}}` is the whole payload; array items by
// index, `labels.0.name`). A string that is one placeholder takes the field's value as it is (a number
// stays a number, an object an object); a missing or null field leaves the key out, so the run
// request's default applies. Placeholders inside longer text become text ("" when missing). The key
// `"..."` spreads an object from the payload into the one it stands in, under the other keys there:
// `{"...": "{{$}}", "agent": "demo"}` is the payload as a run request, with the agent fixed.
// `when` names payload fields and the value (or one of the values) each must have; a payload that does
// not match is acknowledged and ignored (GitHub sends a `ping`, and every action of an event).
//
//   {"preset": "github-issue", "run": {"agent": "demo", "attempts": 2}}
//   {"when": {"action": "opened"}, "run": {"prompt": "{{issue.title}}\n\n{{issue.body}}", "base": {"git": "{{repository.clone_url}}"}}}
import { z } from "zod";

type Scalar = string | number | boolean;

export interface Template {
  when?: Record<string, Scalar | Scalar[]>;
  run: unknown;
}

export const PRESETS = {
  /**
   * A GitHub `issues` event, action "opened": the issue's title and body are the prompt, its repository
   * the base. Only an issue its repository's owner, a member of its organization or a collaborator opened
   * (`author_association`): on a public repository anyone can open one, and its text is the agent's prompt.
   * A template with its own `when` decides for itself.
   */
  "github-issue": {
    when: { action: "opened", "issue.state": "open", "issue.author_association": ["OWNER", "MEMBER", "COLLABORATOR"] },
    run: {
      prompt: "{{issue.title}}\n\n{{issue.body}}\n\n(GitHub issue {{issue.html_url}})",
      base: { git: "{{repository.clone_url}}", ref: "{{repository.default_branch}}" },
    },
  },
  /** The payload is itself a run request, as `POST /api/runs` takes it. */
  "run-request": { run: { "...": "{{$}}" } },
} satisfies Record<string, Template>;

export type PresetName = keyof typeof PRESETS;
const PRESET_NAMES = Object.keys(PRESETS) as [PresetName, ...PresetName[]];

const scalar = z.union([z.string().max(1000), z.number(), z.boolean()]);

export const templateSchema = z
  .union([
    z.enum(PRESET_NAMES),
    z.strictObject({
      /** Start from a preset; `when` and the fields of `run` given here replace the preset's. */
      preset: z.enum(PRESET_NAMES).optional(),
      when: z.record(z.string().min(1).max(200), z.union([scalar, z.array(scalar).min(1).max(50)])).optional(),
      run: z.union([z.record(z.string(), z.unknown()), z.string().regex(/^\{\{\s*[^{}]+\s*\}\}$/, "a string run must be one placeholder, e.g. {{$}}")]).optional(),
    }),
  ])
  .superRefine((t, ctx) => {
    if (typeof t !== "string" && !t.preset && t.run === undefined) {
      ctx.addIssue({ code: "custom", path: ["run"], message: "a template needs a preset or a run" });
    }
    if (JSON.stringify(t).length > 20_000) ctx.addIssue({ code: "custom", message: "a template may be at most 20000 characters of JSON" });
  });

export type TemplateInput = z.output<typeof templateSchema>;

/** The template a stored (validated) input stands for: the preset with the input's parts laid over it. */
export function resolveTemplate(input: TemplateInput): Template {
  if (typeof input === "string") return PRESETS[input];
  const preset: Template = input.preset ? PRESETS[input.preset] : { run: {} };
  const run =
    isPlainObject(preset.run) && isPlainObject(input.run) ? { ...preset.run, ...input.run } : input.run === undefined ? preset.run : input.run;
  const when = input.when ?? preset.when;
  return when ? { when, run } : { run };
}

export type Rendered = { matched: true; request: unknown } | { matched: false; reason: string };

export function renderTemplate(template: Template, payload: unknown): Rendered {
  for (const [path, wanted] of Object.entries(template.when ?? {})) {
    const value = lookup(payload, path);
    const allowed = Array.isArray(wanted) ? wanted : [wanted];
    if (!allowed.some((w) => w === value)) {
      return { matched: false, reason: `${path} is ${JSON.stringify(value) ?? "missing"}, not ${allowed.map((w) => JSON.stringify(w)).join(" or ")}` };
    }
  }
  return { matched: true, request: render(template.run, payload) ?? {} };
}

const PLACEHOLDER = /\{\{\s*([^{}]+?)\s*\}\}/g;
const ONLY_PLACEHOLDER = /^\{\{\s*([^{}]+?)\s*\}\}$/;

function render(t: unknown, payload: unknown): unknown {
  if (typeof t === "string") {
    const only = ONLY_PLACEHOLDER.exec(t);
    if (only) return lookup(payload, only[1]!) ?? undefined;
    return t.replace(PLACEHOLDER, (_, path: string) => asText(lookup(payload, path)));
  }
  if (Array.isArray(t)) return t.map((v) => render(v, payload)).filter((v) => v !== undefined);
  if (isPlainObject(t)) {
    const spread = "..." in t ? render(t["..."], payload) : undefined;
    const out: Record<string, unknown> = isPlainObject(spread) ? { ...spread } : {};
    for (const [k, v] of Object.entries(t)) {
      if (k === "...") continue;
      const r = render(v, payload);
      if (r !== undefined) out[k] = r;
    }
    // An object all of whose fields were missing is left out whole (e.g. `base` of a payload without a repository).
    return Object.keys(t).length > 0 && Object.keys(out).length === 0 ? undefined : out;
  }
  return t;
}

/** The value at a dotted path (`$` is the root); undefined when any step is missing; null counts as missing. */
export function lookup(payload: unknown, path: string): unknown {
  if (path === "$") return payload ?? undefined;
  let v: unknown = payload;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v ?? undefined;
}

function asText(v: unknown): string {
  if (v === undefined || v === null) return "";
  return typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
