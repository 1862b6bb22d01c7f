# Shared by kedit-stats.sh and kedit-targets.sh (sourced): submitting an array and its dependent job, and waiting.
# Everything goes through sbatch/squeue; the work folder must be on a file system every node sees.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The kedit command the tasks run (default: this checkout's launcher, built here once so tasks never build).
KEDIT="${KEDIT:-$here/../../kedit}"
export KEDIT

die() { echo "$(basename "$0"): $*" >&2; exit 2; }
abspath() { local d; d="$(cd "$(dirname "$1")" && pwd)" || die "$1: its folder does not exist"; echo "$d/$(basename "$1")"; }

# prepare_work WORK INPUTS: creates WORK, refusing one that holds another run's parts (other inputs).
prepare_work() {
  mkdir -p "$1"
  if [[ -f "$1/inputs" ]] && [[ "$(cat "$1/inputs")" != "$2" ]]; then
    die "$1 holds the parts of another run ($(cat "$1/inputs")); remove it or give another --work"
  fi
  printf '%s' "$2" > "$1/inputs"
  rm -f "$1/done"
}

# pending_tasks WORK N: the array indices without a finished part (all of them on a first run), as 0,3,5
pending_tasks() {
  local i list=()
  for ((i = 0; i < $2; i++)); do [[ -f "$1/ok-$i" ]] || list+=("$i"); done
  (IFS=,; echo "${list[*]}")
}

# submit ARRAY_SCRIPT FINAL_SCRIPT WORK N: submits the pending array tasks and the final job after them;
# sets ARRAY_JOB (empty when no task was pending) and FINAL_JOB.
submit() {
  local tasks dep=()
  tasks="$(pending_tasks "$3" "$4")"
  ARRAY_JOB=""
  # shellcheck disable=SC2086 # KEDIT_SBATCH_ARGS is a list of sbatch options
  if [[ -n "$tasks" ]]; then
    ARRAY_JOB="$(sbatch --parsable --array="$tasks" --output="$3/task-%a.log" ${KEDIT_SBATCH_ARGS:-} "$here/$1")"
    ARRAY_JOB="${ARRAY_JOB%%;*}"
    dep=(--dependency="afterok:$ARRAY_JOB" --kill-on-invalid-dep=yes)
  fi
  # shellcheck disable=SC2086
  FINAL_JOB="$(sbatch --parsable "${dep[@]}" --output="$3/final.log" ${KEDIT_SBATCH_ARGS:-} "$here/$2")"
  FINAL_JOB="${FINAL_JOB%%;*}"
  echo "submitted: array job ${ARRAY_JOB:-(none: every shard is done)} tasks ${tasks:-none}, then job $FINAL_JOB; logs in $3"
}

# wait_and_report WORK N WHAT: blocks until both jobs left the queue; exits 1 naming failed array tasks or the final job.
wait_and_report() {
  local ids="${ARRAY_JOB:+$ARRAY_JOB,}$FINAL_JOB"
  while [[ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]]; do sleep 2; done
  local failed
  failed="$(pending_tasks "$1" "$2")"
  if [[ -n "$failed" ]]; then
    echo "$(basename "$0"): array tasks failed: $failed of job $ARRAY_JOB (logs: $1/task-<i>.log); rerun the same command to resubmit them" >&2
    exit 1
  fi
  if [[ ! -f "$1/done" ]]; then
    echo "$(basename "$0"): the $3 job $FINAL_JOB failed (log: $1/final.log)" >&2
    exit 1
  fi
  echo "done: $3 finished"
}
