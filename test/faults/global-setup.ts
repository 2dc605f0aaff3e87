// The fault suite's own local sandbox server (its own process: its fault injection and its sandbox
// counts belong to this project alone), and the relay that lets runner reports reach the Worker in
// the pool (./ingest-relay.ts). Their URLs, and the suite's size, go to the pool's bindings.
import { availableParallelism } from "node:os";
import type { TestProject } from "vitest/node";
import { startLocalSandbox } from "../support/processes.ts";
import { startIngestRelay } from "./ingest-relay.ts";

declare module "vitest" {
  export interface ProvidedContext {
    ingestRelayUrl: string;
    faultsRuns: string;
    faultsOnly: string;
    faultsCores: string;
  }
}

export default async function setup(project: TestProject) {
  // Open egress (as on Daytona's Tier 3): the cases lose, delay and drop the runners' reports through
  // the ingest relay, which restricted sandboxes could not reach. test/faults/daytona.test.ts switches
  // this server to the 'daytona' profile for its own runs.
  const server = await startLocalSandbox(["--profile", "lenient"]);
  const relay = await startIngestRelay();
  project.provide("localSandboxUrl", server.url);
  project.provide("localSandboxApiUrl", server.apiUrl);
  project.provide("ingestRelayUrl", relay.url);
  // Runs of 4 attempts the load scenario starts at once: the 50 unless MULTISHOT_FAULTS_RUNS says.
  project.provide("faultsRuns", process.env.MULTISHOT_FAULTS_RUNS ?? "50");
  // Only these cases (comma-separated names), e.g. to look at one while changing it.
  project.provide("faultsOnly", process.env.MULTISHOT_FAULTS_ONLY ?? "");
  // The load's billing bound depends on how much CPU the machine has (see load.test.ts).
  project.provide("faultsCores", String(availableParallelism()));
  return async () => {
    await relay.close();
    await server.stop();
  };
}
