# Thin twin of build.sh (the tested script): same steps, same arguments.
param([string]$What = "test")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = "1"; $env:DOTNET_NOLOGO = "1"
dotnet build Engine.sln -c Release -nologo -v minimal
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
# The packages, built from this build's outputs and installed from a local feed as users would (tests/pack/run.sh).
function Pack {
  Remove-Item -Recurse -Force .build/packages -ErrorAction SilentlyContinue
  dotnet pack Engine.sln -c Release --no-build -nologo -v quiet -o .build/packages
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
  bash tests/pack/run.sh
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
switch ($What) {
  "build" { }
  "test"  {
    # The fixtures are inputs: a run that writes into tests/fixtures fails, naming what changed.
    function Fixtures { Get-ChildItem tests/fixtures -Recurse -File -Force | Sort-Object FullName | ForEach-Object { "$((Get-FileHash $_.FullName).Hash) $($_.FullName)" } }
    $before = Fixtures
    dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo --logger "console;verbosity=normal"
    $code = $LASTEXITCODE
    $changed = Compare-Object $before (Fixtures)
    if ($changed) { Write-Error "the test run changed tests/fixtures: $($changed.InputObject -join '; ')"; exit 1 }
    if ($code -ne 0) { exit $code }
    Pack
  }
  "pack" { Pack }
  "bench" { dotnet bench/Kedit.Bench/bin/Release/net10.0/kedit-bench.dll @($args) }
  "mutate" {
    # Same mapping as build.sh: a folder (or a .csproj) to mutate, the tests of the same folder name unless a filter is given.
    $target = if ($args.Count -ge 1) { $args[0].TrimEnd('/') } else { "engine/Kedit.Engine/Editing" }
    $rel = ""
    if ($target.EndsWith(".csproj")) { $project = $target; $glob = "**/*.cs"; $name = [IO.Path]::GetFileNameWithoutExtension($target) }
    else {
      if (-not (Test-Path $target -PathType Container)) { Write-Error "./build.ps1 mutate: $target is not a folder or a .csproj"; exit 2 }
      $dir = $target
      while ($dir -and -not (Get-ChildItem "$dir/*.csproj" -ErrorAction SilentlyContinue)) { $dir = Split-Path $dir -Parent }
      if (-not $dir) { Write-Error "./build.ps1 mutate: no project above $target"; exit 2 }
      $project = (Get-ChildItem "$dir/*.csproj" | Select-Object -First 1).FullName
      $rel = $target.Substring($dir.Length).TrimStart('/')
      $glob = if ($rel) { "**/$rel/**/*.cs" } else { "**/*.cs" }
      $name = if ($rel) { $rel.Replace('/', '-') } else { Split-Path $dir -Leaf }
    }
    $top = ($rel -split '/')[0]
    $filter = if ($args.Count -ge 2) { $args[1] } else { "FullyQualifiedName~Kedit.Tests.$top&FullyQualifiedName!~Kedit.Tests.Device" }
    $out = Join-Path $PWD ".build/mutation/$name"
    $concurrency = if ($env:KEDIT_MUTATE_CONCURRENCY) { $env:KEDIT_MUTATE_CONCURRENCY } else { "1" }
    dotnet tool restore | Out-Null
    Set-Location tests/Kedit.Tests
    dotnet dotnet-stryker --project (Split-Path $project -Leaf) --mutate $glob --test-case-filter $filter `
      --concurrency $concurrency --configuration Release --output $out `
      --reporter Progress --reporter Html --reporter Json --reporter ClearText --skip-version-check
    Write-Output "report: $out/reports/mutation-report.html"
  }
  default { Write-Error "usage: ./build.ps1 [test|build|bench|pack|mutate]"; exit 2 }
}
exit $LASTEXITCODE
