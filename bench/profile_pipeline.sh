#!/usr/bin/env bash
# CPU profiles of the client process and the Prefect server during bench/pipeline.py, then where the time goes.
#
#   bench/profile_pipeline.sh                      # 200 questions, cap 128, 500 ms latency, into bench/profiles/<UTC time>
#   SIZE=100 CAP=64 LATENCY_MS=500 bench/profile_pipeline.sh /tmp/prof
#
# py-spy (pip install py-spy) samples both processes from outside at 100 Hz without pausing them
# (--nonblocking) and writes speedscope files (open them at https://www.speedscope.app); the plain-client
# baseline is skipped so the client profile holds the project's run only. The run's own figures (CPU ms per
# call of client, Prefect server and Postgres, by process accounting) are printed first; bench/profile_summary.py
# then splits each process's CPU by layer and package (shares from the samples, applied to the accounted ms).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/profiles/$(date -u +%Y%m%dT%H%M%S)}
size=${SIZE:-200}
mkdir -p "$out"
# The Prefect server with the settings deploy/README.md recommends (its task-run recorder and event persister
# batched), so the profile shows what is left.
python bench/pipeline.py --sizes "$size" --cap "${CAP:-128}" --latency-ms "${LATENCY_MS:-500}" --no-plain --profile "$out" \
  --setting PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE=200 --setting PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE=200 \
  | tee "$out/run.log"
figure() { sed -n 's/^JSON //p' "$out/run.log" | python -c "import json, sys; print(json.loads(sys.stdin.read())['$1'])"; }
{
  python bench/profile_summary.py --cpu-ms-per-call "$(figure client_cpu_ms_per_call)" "$out/client_$size.speedscope.json"
  python bench/profile_summary.py --cpu-ms-per-call "$(figure prefect_server_cpu_ms_per_call)" "$out/prefect_server.speedscope.json"
} | tee "$out/summary.txt"
