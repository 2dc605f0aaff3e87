// Starts one real local sandbox server (its own process) for the worker tests and hands its URL to the
// pool's bindings.
import type { TestProject } from "vitest/node";
import { startLocalSandbox } from "../support/processes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    localSandboxUrl: string;
    localSandboxApiUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const server = await startLocalSandbox();
  project.provide("localSandboxUrl", server.url);
  project.provide("localSandboxApiUrl", server.apiUrl);
  return () => server.stop();
}
