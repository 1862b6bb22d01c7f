#!/usr/bin/env bash
# Installs what the test suite needs beyond the .NET SDK:
#   - a C compiler: the C ABI tests build libkedit and its sample programs (without one they fail);
#   - Slurm and munge: tests/slurm/run.sh starts a one-node cluster with them (without them it skips, saying so).
set -euo pipefail
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 || need+=(slurm-wlm munge)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
