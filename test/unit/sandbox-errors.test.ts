// Which Daytona failures are worth another try, with the SDK's own error classes.
import {
  DaytonaAuthenticationError,
  DaytonaConnectionError,
  DaytonaError,
  DaytonaInvalidArgumentError,
  DaytonaNotFoundError,
  DaytonaRateLimitError,
  DaytonaServiceUnavailableError,
} from "@daytonaio/sdk";
import { describe, expect, it } from "vitest";
import { classifySandboxError, describeSandboxError, isQuotaRefusal } from "../../src/sandbox/errors.ts";

describe("a Daytona failure", () => {
  it("is gone for 404 and 410, retryable for transport trouble, timeouts, 429 and 5xx, final otherwise", () => {
    expect(classifySandboxError(new DaytonaNotFoundError("no such sandbox", 404))).toBe("gone");
    expect(classifySandboxError(new DaytonaError("gone", 410))).toBe("gone");
    expect(classifySandboxError(new DaytonaConnectionError("connect ECONNREFUSED"))).toBe("retryable");
    expect(classifySandboxError(new DaytonaRateLimitError("slow down", 429))).toBe("retryable");
    expect(classifySandboxError(new DaytonaServiceUnavailableError("busy", 503))).toBe("retryable");
    expect(classifySandboxError(new DaytonaError("request timed out"))).toBe("retryable");
    expect(classifySandboxError(new TypeError("fetch failed: network"))).toBe("retryable");
    expect(classifySandboxError(new Error("socket hang up"))).toBe("retryable");
    expect(classifySandboxError(new DaytonaAuthenticationError("bad key", 401))).toBe("final");
    expect(classifySandboxError(new DaytonaInvalidArgumentError("bad argument"))).toBe("final");
    expect(classifySandboxError(new Error("the sandbox gave no usable home directory"))).toBe("final");
  });

  it("tells a missing session (404, or 500 from the v0.190 daemon) and a stopped sandbox from a gone one", () => {
    // A started-again sandbox has lost its sessions: not the sandbox gone, but a job to start again.
    expect(classifySandboxError(new DaytonaNotFoundError("session not found", 404))).toBe("stopped");
    expect(classifySandboxError(new DaytonaError("session not found", 500))).toBe("stopped");
    expect(classifySandboxError(new DaytonaNotFoundError("Sandbox with ID abc not found", 404))).toBe("gone");
    // Any other 500 is still a transient failure.
    expect(classifySandboxError(new DaytonaError("internal error", 500))).toBe("retryable");
    expect(
      classifySandboxError(new DaytonaError("bad request: failed to resolve container IP after 3 attempts: no IP address found. Is the Sandbox started?", 400)),
    ).toBe("stopped");
    expect(isQuotaRefusal(new DaytonaError("Total CPU limit exceeded. Maximum allowed: 10", 400))).toBe(true);
    expect(isQuotaRefusal(new DaytonaError("Total memory limit exceeded. Maximum allowed: 10GiB", 403))).toBe(true);
    expect(isQuotaRefusal(new DaytonaError("bad snapshot", 400))).toBe(false);
  });

  it("is described by its message and status, kept short", () => {
    expect(describeSandboxError(new DaytonaServiceUnavailableError("busy", 503))).toBe("busy (HTTP 503)");
    expect(describeSandboxError(new Error("x".repeat(900)))).toHaveLength(500);
  });
});
