# Thin twin of build.sh (the tested script): same steps, same arguments.
param([string]$What = "test")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = "1"; $env:DOTNET_NOLOGO = "1"
dotnet build Engine.sln -c Release -nologo -v minimal
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
switch ($What) {
  "build" { }
  "test"  { dotnet test tests/Kedit.Tests/Kedit.Tests.csproj -c Release --no-build -nologo --logger "console;verbosity=normal" }
  "bench" { dotnet bench/Kedit.Bench/bin/Release/net10.0/kedit-bench.dll @($args) }
  default { Write-Error "usage: ./build.ps1 [test|build|bench]"; exit 2 }
}
exit $LASTEXITCODE
