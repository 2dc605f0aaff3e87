// Programs that run inside sandboxes ship with the Worker as text (wrangler.toml's Text rule).
declare module "*.agent.mjs" {
  const source: string;
  export default source;
}

declare module "*.agent.sh" {
  const source: string;
  export default source;
}
