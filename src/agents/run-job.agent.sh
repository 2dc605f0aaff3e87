#!/usr/bin/env bash
# multishot's runner for setup jobs (install, seed, collect), copied into every sandbox: plain bash and
# curl, so a job costs no extra process start-up beyond its own. Runs one job script with its output kept
# beside it, records the exit code, and reports it to the Worker's signed ingest URL (best effort: the
# Worker also polls the session command).
# usage: run-job.sh <jobsDir> <job> <try> <reportUrl|->
dir=$1 job=$2 try=$3 url=$4
bash "$dir/$job.sh" > "$dir/$job.out" 2> "$dir/$job.err" < /dev/null &
pid=$!
echo "$pid" > "$dir/$job.pid"
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
wait "$pid"
code=$?
echo "$code" > "$dir/$job.exit"
# The exit line on stderr: a Worker following this command's logs learns the exit from it at once.
printf '\nmultishot-exit:%s:%s:%s\n' "$job" "$try" "$code" >&2
if [ "$url" != "-" ]; then
  body="{\"job\":\"$job\",\"try\":$try,\"kind\":\"exit\",\"exitCode\":$code}"
  for delay in 0.2 0.4 0.8 0; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H 'content-type: application/json' -d "$body" "$url")
    case "$status" in 2??|4??) break ;; esac
    [ "$delay" = 0 ] || sleep "$delay"
  done
fi
exit "$code"
