#!/usr/bin/env bash
# Builds the solution in Release and runs the test suite.
#   ./build.sh          build + all tests
#   ./build.sh build    build only
#   ./build.sh bench    build + run the benchmarks
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
what="${1:-test}"
dotnet build Engine.sln -c Release -nologo -v minimal
case "$what" in
  build) ;;
  test) dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo --logger "console;verbosity=normal" ;;
  bench) shift || true; dotnet bench/Kedit.Bench/bin/Release/net10.0/kedit-bench.dll "$@" ;;
  *) echo "usage: ./build.sh [test|build|bench]" >&2; exit 2 ;;
esac
