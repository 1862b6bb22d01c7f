#!/usr/bin/env bash
# The whole ILGPU CPU-accelerator slice, end-to-end cases included (compute_z, ROME / MEMIT / D4S / PRUNE edits,
# `kedit edit --device ilgpu-cpu`): ./build.sh skips those (KEDIT_ILGPU_FULL unset) because they take minutes
# per case on the CPU accelerator. Expects a Release build (./build.sh build). Usage: bench/ilgpu-cpu-check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KEDIT_ILGPU_FULL=1 dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo \
  --filter "FullyQualifiedName~OnIlgpuCpu|FullyQualifiedName~IlgpuPtxTests|FullyQualifiedName~IlgpuTiledGemmTests" --logger "console;verbosity=normal"
