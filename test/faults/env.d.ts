// Bindings only the fault suite's pool has (the rest: test/worker/env.d.ts).
declare global {
  namespace Cloudflare {
    interface Env {
      /** runs of 4 attempts the load scenario starts at once */
      FAULTS_RUNS: string;
      /** only these cases, comma-separated (all when empty) */
      FAULTS_ONLY: string;
      /** the machine's CPUs (os.availableParallelism()) */
      FAULTS_CORES: string;
    }
  }
}
export {};
