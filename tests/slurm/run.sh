#!/usr/bin/env bash
# A real one-node Slurm cluster in a temporary folder, running deploy/slurm's drivers with 4 shards on the gpt2
# fixture: statistics (one array task cancelled mid-run and resubmitted) compared with the unsharded run to relative
# 1e-12, and a MEMIT edit with sharded targets compared byte for byte with the unsharded edit's deltas. Every daemon
# it starts (munged, slurmctld, slurmd) is stopped by its pid on success and on failure.
# Needs root (slurmd, munged with the packaged key), sbatch/slurmctld/slurmd/munged, and a Release build (./build.sh).
# Skips, saying why, where those are missing. KEDIT_SLURM_KEEP=1 keeps the temporary folder.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
skip() { echo "tests/slurm/run.sh: skipped: $*"; exit 0; }
for c in sbatch squeue scancel sinfo slurmctld slurmd munged; do
  command -v "$c" > /dev/null || skip "$c is not installed (.ci/install-deps.sh installs slurm-wlm and munge)"
done
[[ "$(id -u)" -eq 0 ]] || skip "needs root to run slurmd and munged with the packaged key"
[[ -r /etc/munge/munge.key ]] || skip "/etc/munge/munge.key is missing (the munge package creates it)"
dll="$repo/engine/Kedit.Cli/bin/Release/net10.0/kedit.dll"
[[ -f "$dll" ]] || { echo "tests/slurm/run.sh: $dll is missing; run ./build.sh build first" >&2; exit 1; }

T="$(mktemp -d /tmp/kedit-slurm.XXXXXX)"
started=$SECONDS
log() { echo "tests/slurm/run.sh: [$((SECONDS - started))s] $*"; }
fail() { echo "tests/slurm/run.sh: FAILED: $*" >&2; exit 1; }

stop_daemons() {
  local rc=$? name pid
  set +e
  [[ -n "${canceller:-}" ]] && kill "$canceller" 2>/dev/null
  # Jobs first, so no slurmstepd outlives slurmd.
  if [[ -f "$T/slurmctld.pid" ]]; then scancel --full --signal=KILL $(squeue -h -o %i 2>/dev/null) 2>/dev/null; sleep 1; fi
  for name in slurmd slurmctld munged; do
    [[ -f "$T/$name.pid" ]] || continue
    pid="$(cat "$T/$name.pid")"
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null; sleep 0.5; fi
    if kill -0 "$pid" 2>/dev/null; then echo "tests/slurm/run.sh: $name (pid $pid) did not stop" >&2; rc=1
    else echo "tests/slurm/run.sh: stopped $name (pid $pid)"; fi
  done
  if [[ $rc -ne 0 ]]; then
    for f in slurmctld.log slurmd.log stats.safetensors.work/task-0.log stats.safetensors.work/final.log edit-sharded.work/final.log; do
      [[ -f "$T/$f" ]] && { echo "--- $f (last lines)"; tail -n 15 "$T/$f"; }
    done
  fi
  [[ "${KEDIT_SLURM_KEEP:-}" == 1 ]] && echo "kept $T" || rm -rf "$T"
  exit $rc
}
trap stop_daemons EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap stops the daemons on an interrupt too

host="$(hostname -s)"
port=$((20000 + RANDOM % 20000))
mkdir -p "$T/state" "$T/spool"
cat > "$T/slurm.conf" <<CONF
ClusterName=kedittest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
NodeName=$host CPUs=4 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$T/slurm.conf"
munged --force --socket="$T/munge.sock" --pid-file="$T/munged.pid" --log-file="$T/munged.log" --seed-file="$T/munged.seed"
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do [[ "$(sinfo -h -o %T 2>/dev/null)" == idle ]] && break; sleep 0.5; done
[[ "$(sinfo -h -o %T 2>/dev/null)" == idle ]] || fail "the node did not come up: $(sinfo 2>&1)"
log "cluster up: munged $(cat "$T/munged.pid"), slurmctld $(cat "$T/slurmctld.pid"), slurmd $(cat "$T/slurmd.pid")"

export KEDIT="dotnet $dll" KEDIT_CACHE_DIR="$T/cache" KEDIT_SBATCH_ARGS="--cpus-per-task=1"
model="$repo/tests/fixtures/gpt2"
# 3,600 documents: shard 0 of 4 holds 1,000 (blocks 0, 4, 8, 12, 16), long enough to be cancelled after its first checkpoint.
for _ in 1 2 3 4; do cat "$repo/tests/data/scale/corpus.jsonl"; done > "$T/corpus.jsonl"

$KEDIT stats --model "$model" --layers 1,2 --corpus "$T/corpus.jsonl" --out "$T/stats-whole.safetensors" > /dev/null 2>&1
log "unsharded statistics done"

# Statistics: cancel array task 0 once its first checkpoint is written, then resubmit by rerunning the driver.
work="$T/stats.safetensors.work"
(
  for _ in $(seq 600); do
    if [[ -f "$work/part-0.safetensors.partial" ]]; then
      task="$(squeue -h -r -n kedit-stats -o %i | grep '_0$' || true)"
      [[ -n "$task" ]] && scancel "$task" && echo "cancelled $task" > "$T/cancelled"
      exit 0
    fi
    sleep 0.1
  done
) &
canceller=$!
stats=("$repo/deploy/slurm/kedit-stats.sh" --model "$model" --layers 1,2 --corpus "$T/corpus.jsonl" --shards 4 --out "$T/stats.safetensors" --wait)
if "${stats[@]}" > "$T/first.out" 2> "$T/first.err"; then fail "the statistics run with a cancelled task succeeded: $(cat "$T/first.out")"; fi
wait "$canceller"
[[ -f "$T/cancelled" ]] || fail "task 0 was not cancelled mid-run: $(cat "$T/first.err")"
grep -q "array tasks failed: 0 of job" "$T/first.err" || fail "the driver did not name failed task 0: $(cat "$T/first.err")"
log "$(cat "$T/cancelled"); the driver said: $(cat "$T/first.err")"
[[ ! -f "$T/stats.safetensors" ]] || fail "a merge ran although a task failed"
"${stats[@]}" > "$T/second.out" || fail "the resubmitted statistics run failed"
grep -q "tasks 0," "$T/second.out" || fail "the rerun resubmitted other tasks than 0: $(cat "$T/second.out")"
grep -q "resuming after 200 documents" "$work/task-0.log" || fail "the resubmitted task did not resume its checkpoint: $(tail -n 5 "$work/task-0.log")"
log "resubmitted task 0 resumed its checkpoint and the merge ran"
# The fixture's float32 product blocks add exactly in float64 (few, short-mantissa terms), so the merge must give the
# unsharded run's tensors byte for byte (the C# tests hold merges to 1e-12 in general): compare the safetensors data
# sections, past each file's 8-byte header length and JSON header (the metadata differs: merged_shards).
data() { tail -c +$((9 + $(od -An -tu8 -N8 "$1"))) "$1"; }
cmp <(data "$T/stats-whole.safetensors") <(data "$T/stats.safetensors") || fail "merged statistics differ from the unsharded run"
log "merged statistics equal the unsharded run's (mom2, counts and float64 sums byte for byte)"

# Targets: 4 shards of MEMIT's z, then the edit; its deltas equal the unsharded edit's byte for byte.
edit=(--model "$model" --method memit --hparams "$repo/tests/data/gpt2-edit/memit.json" --requests "$repo/tests/data/scale/requests.json" --stats "$T/stats.safetensors")
$KEDIT edit "${edit[@]}" --out "$T/edit-whole" > /dev/null 2>&1 || fail "the unsharded edit failed"
"$repo/deploy/slurm/kedit-targets.sh" "${edit[@]}" --shards 4 --out "$T/edit-sharded" --wait > "$T/targets.out" || fail "the targets run failed: $(cat "$T/targets.out")"
cmp "$T/edit-whole/deltas.safetensors" "$T/edit-sharded/deltas.safetensors" || fail "the edit with sharded targets wrote other deltas"
log "the edit with 4 target shards wrote the unsharded deltas"
log "passed in $((SECONDS - started))s"
