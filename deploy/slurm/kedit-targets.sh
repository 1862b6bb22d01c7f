#!/usr/bin/env bash
# MEMIT's target vectors on a Slurm cluster: an array of N shard tasks (targets-array.sbatch), then the batch edit
# that uses them (targets-edit.sbatch) with --dependency=afterok, ending in the edited model directory OUT.
# Parts and logs live in WORK (default OUT.work, on a shared file system); rerunning resubmits the missing shards.
#   kedit-targets.sh --model DIR --method memit|alphaedit --hparams FILE --requests FILE --stats FILE --shards N --out OUTDIR
#                    [--limit N [--offset K]] [--template-seed S] [--work DIR] [--wait]
# Environment: KEDIT, KEDIT_SBATCH_ARGS, KEDIT_DEVICE as for kedit-stats.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL="" METHOD="" HPARAMS="" REQUESTS="" STATS="" SHARDS="" OUT="" WORK="" TEMPLATE_SEED="" LIMIT="" OFFSET="" wait=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;; --method) METHOD="$2"; shift 2 ;; --hparams) HPARAMS="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;; --stats) STATS="$2"; shift 2 ;; --shards) SHARDS="$2"; shift 2 ;;
    --template-seed) TEMPLATE_SEED="$2"; shift 2 ;; --limit) LIMIT="$2"; shift 2 ;; --offset) OFFSET="$2"; shift 2 ;; --out) OUT="$2"; shift 2 ;; --work) WORK="$2"; shift 2 ;;
    --wait) wait=1; shift ;;
    *) die "unknown option $1 (see the header of this script)" ;;
  esac
done
[[ -n "$MODEL" && -n "$METHOD" && -n "$HPARAMS" && -n "$REQUESTS" && -n "$STATS" && -n "$SHARDS" && -n "$OUT" ]] ||
  die "--model, --method, --hparams, --requests, --stats, --shards and --out are required"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got '$SHARDS'"
MODEL="$(abspath "$MODEL")"; HPARAMS="$(abspath "$HPARAMS")"; REQUESTS="$(abspath "$REQUESTS")"; STATS="$(abspath "$STATS")"; OUT="$(abspath "$OUT")"
WORK="$(abspath "${WORK:-$OUT.work}")"
export MODEL METHOD HPARAMS REQUESTS STATS SHARDS OUT WORK TEMPLATE_SEED LIMIT OFFSET
$KEDIT --help > /dev/null
prepare_work "$WORK" "targets $MODEL $METHOD $HPARAMS $REQUESTS offset ${OFFSET:-0} limit ${LIMIT:-all} seed ${TEMPLATE_SEED:-0} $SHARDS"
submit targets-array.sbatch targets-edit.sbatch "$WORK" "$SHARDS"
[[ $wait -eq 1 ]] && wait_and_report "$WORK" "$SHARDS" edit
exit 0
