#!/usr/bin/env bash
# Installs what `./build.sh pack` made, as a user would, from the local feed .build/packages:
#   1. the CLI as a dotnet tool (kedit-cli), run for its version and on the gpt2 fixture;
#   2. the engine as a library (Kedit.Engine) in a fresh console project that loads the fixture and decodes,
#      whose tokens must equal the tool's `generate`.
# Everything happens in a temporary folder, removed at the end. Needs the NuGet feed for the packages' own
# dependencies (as every `dotnet build` here does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo="$PWD"; feed="$repo/.build/packages"
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)"
[ -f "$feed/kedit-cli.$version.nupkg" ] || { echo "tests/pack: $feed/kedit-cli.$version.nupkg is missing; run ./build.sh pack" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# The packages' own dependencies come from the usual feed; ours from the local one. A rebuilt package keeps its
# version number, so drop any copy of ours an earlier run left in the global package folder.
cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
rm -rf "$cache"/kedit-cli "$cache"/kedit.engine "$cache"/kedit.kernels "$cache"/kedit.interop
cp "$HOME/.nuget/NuGet/NuGet.Config" "$tmp/NuGet.Config" 2>/dev/null || printf '<configuration><packageSources><add key="nuget.org" value="https://api.nuget.org/v3/index.json" /></packageSources></configuration>\n' > "$tmp/NuGet.Config"
dotnet nuget add source "$feed" --name kedit-local --configfile "$tmp/NuGet.Config" >/dev/null

dotnet tool install kedit-cli --version "$version" --tool-path "$tmp/tools" --configfile "$tmp/NuGet.Config" >/dev/null
v="$("$tmp/tools/kedit" --version)"
[[ "$v" == "kedit $version"* ]] || { echo "tests/pack: the installed tool says '$v', expected kedit $version" >&2; exit 1; }
model="$repo/models/factworld"
tool_out="$("$tmp/tools/kedit" generate --model "$model" --prompt "The capital of France is" --max-new-tokens 4)"

mkdir "$tmp/consumer"; cd "$tmp/consumer"
cat > consumer.csproj <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable><ImplicitUsings>enable</ImplicitUsings></PropertyGroup>
  <ItemGroup><PackageReference Include="Kedit.Engine" Version="$version" /></ItemGroup>
</Project>
XML
cat > Program.cs <<'CS'
using Kedit.Models;
using var m = Transformer.Load(args[0]);
var tok = m.RequireTokenizer();
var ids = tok.Encode(args[1]);
var outIds = Generator.Generate(m, ids, new GenerationOptions { MaxNewTokens = 4 });
Console.WriteLine(tok.Decode(ids.Concat(outIds).ToArray(), skipSpecialTokens: true));
CS
cp "$tmp/NuGet.Config" nuget.config
dotnet restore >/dev/null
lib_out="$(dotnet run --no-restore -c Release -- "$model" "The capital of France is")"
[ "$lib_out" == "$tool_out" ] || { echo "tests/pack: the library decoded '$lib_out', the tool '$tool_out'" >&2; exit 1; }
echo "tests/pack: kedit-cli $version installed as a dotnet tool and Kedit.Engine $version used as a library from the local feed agree: '$tool_out'"
