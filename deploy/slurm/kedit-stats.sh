#!/usr/bin/env bash
# Key statistics on a Slurm cluster: an array of N shard tasks (stats-array.sbatch), then a merge (stats-merge.sbatch)
# with --dependency=afterok. Parts, logs and checkpoints live in WORK (default OUT.work), which must be on a shared
# file system. Rerunning the same command resubmits only the shards without a finished part (they resume their
# checkpoints) and the merge.
#   kedit-stats.sh --model DIR --layers L --corpus FILE [--samples N] [--mom2-dtype float32|float64] --shards N --out FILE
#                  [--work DIR] [--wait]
# Environment: KEDIT (the kedit command; default this checkout's ./kedit), KEDIT_SBATCH_ARGS (extra sbatch options,
# e.g. "--partition=gpu --account=lab"), KEDIT_DEVICE (kedit --device for the tasks).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL="" LAYERS="" CORPUS="" SAMPLES="" MOM2_DTYPE="" SHARDS="" OUT="" WORK="" wait=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;; --layers) LAYERS="$2"; shift 2 ;; --corpus) CORPUS="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;; --mom2-dtype) MOM2_DTYPE="$2"; shift 2 ;; --shards) SHARDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;; --work) WORK="$2"; shift 2 ;; --wait) wait=1; shift ;;
    *) die "unknown option $1 (see the header of this script)" ;;
  esac
done
[[ -n "$MODEL" && -n "$LAYERS" && -n "$CORPUS" && -n "$SHARDS" && -n "$OUT" ]] || die "--model, --layers, --corpus, --shards and --out are required"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got '$SHARDS'"
MODEL="$(abspath "$MODEL")"; CORPUS="$(abspath "$CORPUS")"; OUT="$(abspath "$OUT")"
WORK="$(abspath "${WORK:-$OUT.work}")"
export MODEL LAYERS CORPUS SAMPLES MOM2_DTYPE SHARDS OUT WORK
$KEDIT --help > /dev/null   # builds the launcher's CLI once, here, not in every task
prepare_work "$WORK" "stats $MODEL $LAYERS $CORPUS ${SAMPLES:-all} ${MOM2_DTYPE:-float32} $SHARDS"
submit stats-array.sbatch stats-merge.sbatch "$WORK" "$SHARDS"
[[ $wait -eq 1 ]] && wait_and_report "$WORK" "$SHARDS" merge
exit 0
