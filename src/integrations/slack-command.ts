// `/multishot <prompt> [--attempts N] [--agent A]`, `/multishot link <code>`, `/multishot help`.
// Flags may stand anywhere in the text; what is left is the prompt. Slack clients that "smarten"
// punctuation turn `--` into an em or en dash, so those count as `--` too.

export type SlackCommand =
  | { kind: "help" }
  | { kind: "link"; code: string }
  | { kind: "run"; prompt: string; attempts?: number; agent?: string }
  | { kind: "invalid"; message: string };

const FLAG = /(?:^|\s)(?:--|—|–)(attempts|agent)(?:=|\s+)(\S+)/g;

export function parseSlackCommand(text: string): SlackCommand {
  const t = text.trim();
  if (t === "" || t === "help") return { kind: "help" };
  const link = /^link(?:\s+(\S+))?$/.exec(t);
  if (link) return link[1] ? { kind: "link", code: link[1] } : { kind: "invalid", message: "`link` needs the code from `POST /api/slack/link-codes`." };

  const out: { kind: "run"; prompt: string; attempts?: number; agent?: string } = { kind: "run", prompt: "" };
  for (const m of t.matchAll(FLAG)) {
    const [, name, value] = m;
    if (name === "attempts") {
      if (!/^\d+$/.test(value!)) return { kind: "invalid", message: `--attempts wants a number from 1 to 8, not "${value}".` };
      out.attempts = Number(value);
    } else {
      out.agent = value!;
    }
  }
  const leftover = /(?:^|\s)(?:--|—|–)(attempts|agent)\s*$/.exec(t.replace(FLAG, " "));
  if (leftover) return { kind: "invalid", message: `--${leftover[1]} needs a value.` };
  out.prompt = t.replace(FLAG, " ").replace(/[ \t]+/g, " ").trim();
  if (!out.prompt) return { kind: "invalid", message: "What should the attempts do? Give a prompt." };
  return out;
}
