// Where a run's bytes live in R2. The object writes them; routes read them; both name them here.
//   runs/<run>/rounds/<n>/winner.tar.gz                  a round's winner workspace
//   runs/<run>/rounds/<n>/attempts/<a>/diff.patch         an attempt's patch against its round's base
//   runs/<run>/rounds/<n>/attempts/<a>/agent.log          the agent's stream-json output

export type AttemptArtifact = "diff.patch" | "agent.log";

export const tarballKey = (runId: string, round: number) => `runs/${runId}/rounds/${round}/winner.tar.gz`;

export const attemptArtifactKey = (runId: string, round: number, attempt: number, artifact: AttemptArtifact) =>
  `runs/${runId}/rounds/${round}/attempts/${attempt}/${artifact}`;
