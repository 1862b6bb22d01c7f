#!/usr/bin/env bash
# Load test of `kedit serve` on loopback (issue #6): wrk drives POST /generate on the default model,
# first alone, then while a loop applies edits (POST /edits) and rolls them back (DELETE /edits/{id}).
# Prints both latency distributions (p50/p90/p99), requests/s, the non-2xx count and the edits applied;
# exits non-zero when any generation failed, an edit failed, or the rolled-back model generates
# differently from the original.
#   bench/serve-load.sh [seconds per phase (default 10)]
# Needs wrk and curl; ./kedit builds the CLI when its sources changed.
set -euo pipefail
secs="${1:-10}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/serve-load.sh [seconds per phase]" >&2; exit 2; }
for tool in wrk curl; do command -v "$tool" >/dev/null || { echo "serve-load: $tool is not installed" >&2; exit 1; }; done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
model=models/factworld
tmp="$(mktemp -d)"
server_pid="" loop_pid=""
cleanup() {
  [[ -n "$loop_pid" ]] && kill "$loop_pid" 2>/dev/null || true
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Statistics as the demo gets them (layers and sample count from hparams.json, cached next to the
# model); this first ./kedit call also does any build, so the server's start below is quick.
hp="$(tr -d ' \n' < "$model/hparams.json")"
layers="$(sed -E 's/.*"layers":\[([0-9,]*)\].*/\1/' <<<"$hp")"
samples="$(sed -nE 's/.*"mom2_n_samples":([0-9]+).*/\1/p' <<<"$hp")"
./kedit stats --model "$model" --layers "$layers" --corpus "$model/data/train.txt" --samples "${samples:-3000}" \
  --out "$tmp/stats.safetensors" >/dev/null 2>"$tmp/stats.log" || { cat "$tmp/stats.log" >&2; exit 1; }

# Port 0: the server binds a free loopback port and prints the URL it listens on.
./kedit serve --model "$model" --method d4s --hparams "$model/hparams.json" --stats "$tmp/stats.safetensors" --port 0 \
  >"$tmp/serve.out" 2>"$tmp/serve.log" &
server_pid=$!
url=""
for _ in $(seq 1 600); do   # 60 s at most
  url="$(sed -nE 's/.*listening on (http:[^ ]+).*/\1/p' "$tmp/serve.out")"
  [[ -n "$url" ]] && curl -sf "$url/health" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "serve-load: the server exited:" >&2; tail -5 "$tmp/serve.log" >&2; exit 1; }
  url=""; sleep 0.1
done
[[ -n "$url" ]] || { echo "serve-load: no /health answer within 60 s" >&2; exit 1; }
echo "server: $url (pid $server_pid, d4s on $model); $secs s per phase; wrk -t1 -c4"

generate() { curl -sf --max-time 60 -X POST "$url/generate" -H 'Content-Type: application/json' --data-binary "{\"prompt\": \"$1\", \"max_new_tokens\": 8}"; }
original="$(generate "The capital of France is")" || { echo "serve-load: POST /generate failed" >&2; exit 1; }

run_wrk() {  # $1 = phase name; prints the summary, returns non-zero on failed requests
  wrk -t1 -c4 -d"${secs}s" --latency -s bench/wrk-generate.lua "$url" >"$tmp/wrk-$1.txt"
  local r; r="$(grep '^RESULT' "$tmp/wrk-$1.txt")" || { cat "$tmp/wrk-$1.txt" >&2; return 1; }
  printf '%-22s %s\n' "$1:" "${r#RESULT }"
  [[ "$r" == *" non2xx=0 socket_errors=0" ]]
}

# Warm-up (JIT tiering, first allocations), not reported: otherwise the first phase pays for it.
wrk -t1 -c4 -d3s -s bench/wrk-generate.lua "$url" >/dev/null
status=0
run_wrk "generate alone" || status=1

# Edits in a loop until told to stop: apply one request, roll it back; counts in files.
edit_loop() {
  local i=0 body id
  local requests=('{"prompt": "The capital of {} is", "subject": "France", "target_new": "Belgrade"}'
                  '{"prompt": "{} is located in", "subject": "Germany", "target_new": "Asia"}')
  while [[ ! -e "$tmp/stop" ]]; do
    body="{\"requests\": [${requests[$((i % ${#requests[@]}))]}]}"
    id="$(curl -sf --max-time 120 -X POST "$url/edits" -H 'Content-Type: application/json' --data-binary "$body" | sed -nE 's/.*"id":"([^"]+)".*/\1/p')" || id=""
    if [[ -z "$id" ]] || ! curl -sf --max-time 120 -X DELETE "$url/edits/$id" >/dev/null; then echo x >>"$tmp/edit-failures"; fi
    i=$((i + 1)); echo "$i" >"$tmp/edits"
  done
}
edit_loop &
loop_pid=$!
run_wrk "generate during edits" || status=1
touch "$tmp/stop"
wait "$loop_pid" || status=1; loop_pid=""
edits="$(cat "$tmp/edits" 2>/dev/null || echo 0)"
failures=0; [[ -f "$tmp/edit-failures" ]] && failures="$(wc -l <"$tmp/edit-failures")"
# The server logs each edit's compute-and-publish time (one JSON object per line).
edit_secs="$(sed -nE 's/.*"event":"edit_applied".*"seconds":([0-9.]+).*/\1/p' "$tmp/serve.log" | sort -n | tr '\n' ' ')"
echo "edits applied and rolled back during the second phase: $edits (failed: $failures); server-side edit seconds: ${edit_secs:-none}"
[[ "$failures" -eq 0 && "$edits" -gt 0 ]] || status=1

left="$(curl -sf --max-time 60 "$url/edits")" || left="(GET /edits failed)"
after="$(generate "The capital of France is")" || after="(POST /generate failed)"
if [[ "$left" != '{"edits":[]}' || "$after" != "$original" ]]; then
  echo "serve-load: after the rollbacks: edits $left, generation $after (originally $original)" >&2; status=1
else
  echo "after the rollbacks: no edits left, generation identical to the original ($original)"
fi
for phase in "generate alone" "generate during edits"; do
  echo; echo "wrk, $phase:"; sed -n '/Latency Distribution/,/Requests\/sec/p' "$tmp/wrk-$phase.txt"
done
exit "$status"
