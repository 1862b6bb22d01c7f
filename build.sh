#!/usr/bin/env bash
# Builds the solution in Release and runs the test suite.
#   ./build.sh          build + all tests
#   ./build.sh build    build only
#   ./build.sh bench    build + run the benchmarks
#   ./build.sh pack     NuGet packages (Kedit.Engine and its libraries; the CLI as the dotnet tool kedit-cli) into
#                       .build/packages, then installs and runs them from there (tests/pack/run.sh)
#   ./build.sh mutate [FOLDER|FILE.cs|PROJECT.csproj] [TEST-FILTER]
#                       Stryker.NET mutation testing of one engine folder or file (default engine/Kedit.Engine/Editing)
#                       against the tests named by TEST-FILTER (default: the test folder of the same name);
#                       HTML report under .build/mutation/. KEDIT_MUTATE_CONCURRENCY sets the test runners (default 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
what="${1:-test}"
# The packages, built from this build's outputs and installed from a local feed as users would.
pack() {
  rm -rf .build/packages
  dotnet pack Engine.sln -c Release --no-build -nologo -v quiet -o .build/packages
  tests/pack/run.sh
}
dotnet build Engine.sln -c Release -nologo -v minimal
case "$what" in
  build) ;;
  test)
    # The fixtures are inputs: a run that writes into tests/fixtures fails, naming what changed.
    fixtures() { find tests/fixtures -type f -print0 | sort -z | xargs -0 sha256sum; }
    before="$(fixtures)"
    dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo --logger "console;verbosity=normal"
    if ! changed="$(diff <(echo "$before") <(fixtures))"; then
      echo "the test run changed tests/fixtures:" >&2; echo "$changed" >&2; exit 1
    fi
    pack
    # deploy/slurm on a real one-node Slurm cluster (skipped, saying why, without slurm-wlm and munge or root).
    tests/slurm/run.sh ;;
  mutate)
    target="${2:-engine/Kedit.Engine/Editing}"
    target="${target%/}"
    if [[ "$target" == *.csproj ]]; then project="$target"; rel=""; glob="**/*.cs"; name="$(basename "$target" .csproj)"
    else
      [[ -d "$target" || ( -f "$target" && "$target" == *.cs ) ]] || { echo "./build.sh mutate: $target is not a folder, a .cs file or a .csproj" >&2; exit 2; }
      dir="$target"; while [[ "$dir" != "." && -z "$(ls "$dir"/*.csproj 2>/dev/null)" ]]; do dir="$(dirname "$dir")"; done
      [[ "$dir" != "." ]] || { echo "./build.sh mutate: no project above $target" >&2; exit 2; }
      project="$(ls "$dir"/*.csproj | head -1)"; rel="${target#"$dir"}"; rel="${rel#/}"
      if [[ -f "$target" ]]; then glob="**/$rel"; rel="${rel%.cs}"; else glob="**/${rel:+$rel/}**/*.cs"; fi
      name="$(echo "${rel:-$(basename "$dir")}" | tr / -)"
    fi
    # Tests of the same folder name (Editing/LinearAlgebra -> Kedit.Tests.Editing); device tests need an accelerator.
    top="${rel%%/*}"
    filter="${3:-FullyQualifiedName~Kedit.Tests.${top}&FullyQualifiedName!~Kedit.Tests.Device}"
    out="$PWD/.build/mutation/$name"
    dotnet tool restore >/dev/null
    # Stryker mutates every file of the project it is given and drops those outside --mutate only afterwards:
    # against the whole engine that is ~19,000 mutants compiled (7 min on 2 busy cores) whatever the target.
    # An engine folder that compiles with a few helper files of its own (listed here) is therefore mutated in a
    # project of just those files, with a test project of just its test folder (generated under .build/).
    # Keyed by the folder under engine/Kedit.Engine; the longest key above the target wins.
    # A helper ending in / is a whole folder. `without` names files of the folder that need the rest of the engine
    # (they are left out of its project and not scored).
    declare -A alone=([Tokenization]="KeditException.cs IO/AtomicOutput.cs IO/StrictJson.cs" [Editing/LinearAlgebra]="KeditException.cs"
                      [Editing/Inputs]="KeditException.cs IO/StrictJson.cs IO/Yaml.cs Models/ModelConfig.cs Editing/LinearAlgebra/")
    declare -A without=([Editing/Inputs]="RequestLengths.cs")
    declare -A kernels=([Editing/LinearAlgebra]=1 [Editing/Inputs]=1)   # folders that call the packed GEMM of kernels/
    mutate=(--mutate "$glob")
    key=""; for k in "${!alone[@]}"; do [[ "$rel" == "$k" || "$rel" == "$k"/* ]] && (( ${#k} > ${#key} )) && key="$k"; done
    if [[ "$dir" == engine/Kedit.Engine && -n "$key" ]]; then
      top="$key"; src="$PWD/.build/mutate-src/$(echo "$top" | tr / -)"; root="$PWD"; mkdir -p "$src/engine" "$src/tests"
      # Linked files: only exclusions are matched reliably, so a folder is everything but the helpers.
      if [[ -f "$target" ]]; then mutate=(--mutate "**/$(basename "$target")"); else mutate=(); fi
      helpers=""
      [[ -z "${kernels[$top]:-}" ]] || helpers="    <ProjectReference Include=\"$root/kernels/Kedit.Kernels/Kedit.Kernels.csproj\" />"$'\n'
      for h in ${alone[$top]}; do
        if [[ "$h" == */ ]]; then
          helpers+="    <Compile Include=\"$root/engine/Kedit.Engine/$h**/*.cs\" LinkBase=\"${h%/}\" />"$'\n'; mutate+=(--mutate "!**/$h**/*.cs")
        else
          helpers+="    <Compile Include=\"$root/engine/Kedit.Engine/$h\" Link=\"$h\" />"$'\n'; mutate+=(--mutate "!**/$h")
        fi
      done
      exclude=""; for w in ${without[$top]:-}; do exclude+="${exclude:+;}$root/engine/Kedit.Engine/$top/$w"; done
      cat > "$src/engine/Kedit.Engine.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><EnableDefaultCompileItems>false</EnableDefaultCompileItems></PropertyGroup>
  <ItemGroup>
    <Compile Include="$root/engine/Kedit.Engine/$top/**/*.cs" Exclude="$exclude" LinkBase="$top" />
$helpers    <InternalsVisibleTo Include="Kedit.Tests" />
  </ItemGroup>
</Project>
PROJ
      cat > "$src/tests/Kedit.Tests.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><IsTestProject>true</IsTestProject><EnableDefaultCompileItems>false</EnableDefaultCompileItems></PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Microsoft.NET.Test.Sdk" Version="18.0.1" />
    <PackageReference Include="xunit" Version="2.9.3" />
    <PackageReference Include="xunit.runner.visualstudio" Version="3.1.5" />
    <PackageReference Include="Xunit.SkippableFact" Version="1.4.13" />
    <PackageReference Include="MathNet.Numerics" Version="5.0.0" />
    <Compile Include="$root/tests/Kedit.Tests/$top/**/*.cs" LinkBase="$top" />
    <Compile Include="$root/tests/Kedit.Tests/TestPaths.cs" />
    <ProjectReference Include="../engine/Kedit.Engine.csproj" />
  </ItemGroup>
</Project>
PROJ
      cd "$src/tests"
    else
      cd tests/Kedit.Tests
    fi
    dotnet dotnet-stryker --project "$(basename "$project")" "${mutate[@]}" --test-case-filter "$filter" \
      --concurrency "${KEDIT_MUTATE_CONCURRENCY:-1}" --configuration Release --output "$out" \
      --reporter Progress --reporter Html --reporter Json --reporter ClearText --skip-version-check
    echo "report: $out/reports/mutation-report.html" ;;
  pack) pack ;;
  bench) shift || true; dotnet bench/Kedit.Bench/bin/Release/net10.0/kedit-bench.dll "$@" ;;
  *) echo "usage: ./build.sh [test|build|bench|pack|mutate]" >&2; exit 2 ;;
esac
