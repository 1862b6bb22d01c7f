#!/usr/bin/env bash
# For a machine with an NVIDIA GPU (none has run this yet): builds, runs the CUDA device tests (ILGPU's CUDA
# accelerator: every *OnCuda test class, plus the PTX compile test) and the device bench on cuda, within
# 8 minutes in all, and prints ONE summary line:
#   gpu-check: PASS|FAIL gpu=<name> tests passed=P failed=F skipped=S; bench <ok|failed|timed out> (<first gemm row>); logs <dir>; <s> s
# Exit status 0 only on PASS (every CUDA test ran and passed, the bench finished). Usage: bench/gpu-check.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
start=$(date +%s)
logs="$(mktemp -d -t kedit-gpu-check.XXXXXX)"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
gpu="${gpu:-none}"
summary() { echo "gpu-check: $1 gpu=${gpu// /_} $2; logs $logs; $(( $(date +%s) - start )) s"; }

# Budget (seconds): build 120 + tests 240 + bench 100 = 460 < 480.
if ! timeout 120 dotnet build Engine.sln -c Release -nologo -v minimal >"$logs/build.txt" 2>&1; then
  summary FAIL "build failed or timed out (build.txt)"; exit 1
fi
timeout 240 dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo \
  --filter "FullyQualifiedName~OnCuda|FullyQualifiedName~IlgpuPtxTests" --logger "console;verbosity=normal" >"$logs/tests.txt" 2>&1
trc=$?
line="$(grep -E '(Passed|Failed)!' "$logs/tests.txt" | tail -1)"
num() { echo "$line" | sed -nE "s/.*$1: *([0-9]+).*/\1/p"; }
passed="$(num Passed)"; failed="$(num Failed)"; skipped="$(num Skipped)"
passed="${passed:-0}"; failed="${failed:-0}"; skipped="${skipped:-0}"
[[ $trc -eq 124 ]] && failed="$failed+timeout"

timeout 100 dotnet bench/Kedit.Bench/bin/Release/net10.0/kedit-bench.dll device quick --devices cuda >"$logs/bench.txt" 2>&1
brc=$?
bench="ok"; [[ $brc -eq 124 ]] && bench="timed out"; [[ $brc -ne 0 && $brc -ne 124 ]] && bench="failed"
grep -q "could not run: cuda" "$logs/bench.txt" && bench="failed (cuda could not run)"
gemm="$(grep -m1 'gemm_nt' "$logs/bench.txt" | tr -s ' ' | sed -E 's/ *$//')"

verdict=FAIL
[[ $trc -eq 0 && "$failed" == "0" && "$skipped" == "0" && "$passed" -gt 0 && "$bench" == "ok" ]] && verdict=PASS
summary "$verdict" "tests passed=$passed failed=$failed skipped=$skipped; bench $bench (${gemm:-no gemm row})"
[[ $verdict == PASS ]]
