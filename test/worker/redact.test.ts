// What redaction takes out of everything stored: known secret values, and the signatures of the signed
// URLs a sandbox holds (an agent that prints its environment must not leak its gateway token).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { redactorFor } from "../../src/redact.ts";
import { ingestUrl, llmGatewayUrl } from "../../src/signed-urls.ts";

describe("redaction", () => {
  it("removes secrets and signed-URL signatures, and leaves the rest", async () => {
    const redact = redactorFor({ ...env, ANTHROPIC_API_KEY: "test-secret-value-123" });
    const gateway = await llmGatewayUrl(env, "run_abcdefghijklmnopqrst", 1, 2);
    const ingest = await ingestUrl(env, "run_abcdefghijklmnopqrst", 1, 2);
    const sig = gateway.split("/").pop()!;
    const text = `ANTHROPIC_BASE_URL=${gateway}\nreport to ${ingest}\nkey test-secret-value-123\nmultishot-signing ${env.MULTISHOT_SIGNING_SECRET}`;
    const out = redact(text);
    expect(out).not.toContain(sig);
    expect(out).not.toContain(ingest.split("/").pop()!);
    expect(out).not.toContain("test-secret-value-123");
    expect(out).not.toContain(env.MULTISHOT_SIGNING_SECRET!);
    expect(out).toContain("/llm/run_abcdefghijklmnopqrst/1/2/[redacted]");
    expect(out).toContain("/ingest/run_abcdefghijklmnopqrst/1/2/[redacted]");
    expect(redact("nothing secret here /llm/ at all")).toBe("nothing secret here /llm/ at all");
  });
});
