#!/usr/bin/env bash
# Builds libkedit.so (nethost linked statically) and the sample program into OUTDIR.
#   interop/libkedit/build.sh [OUTDIR]      default OUTDIR: interop/libkedit/out
# Needs gcc and a .NET SDK (for the nethost pack: nethost.h, hostfxr.h, libnethost.a).
# At run time libkedit.so also needs Kedit.Native's build output (dotnet build interop/Kedit.Native):
# beside libkedit.so, or in the directory $KEDIT_HOME names.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/out}"
CC="${CC:-gcc}"
command -v "$CC" >/dev/null || { echo "build.sh: C compiler '$CC' not found (install gcc or set CC)" >&2; exit 1; }

# The dotnet root: $DOTNET_ROOT, else where the dotnet on PATH really lives.
root="${DOTNET_ROOT:-}"
if [ -z "$root" ]; then
  dotnet_bin="$(command -v dotnet || true)"
  [ -n "$dotnet_bin" ] || { echo "build.sh: dotnet not found on PATH and DOTNET_ROOT unset" >&2; exit 1; }
  root="$(dirname "$(readlink -f "$dotnet_bin")")"
fi
case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64|arm64) rid=linux-arm64 ;;
  *) echo "build.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
# The newest installed apphost pack holds nethost.
nethost="$(ls -d "$root/packs/Microsoft.NETCore.App.Host.$rid"/*/runtimes/"$rid"/native 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$nethost" ] || [ ! -f "$nethost/libnethost.a" ] || [ ! -f "$nethost/nethost.h" ]; then
  echo "build.sh: no nethost in $root/packs/Microsoft.NETCore.App.Host.$rid/*/runtimes/$rid/native (a .NET SDK install provides it)" >&2
  exit 1
fi

mkdir -p "$out"
flags=(-std=c11 -O2 -Wall -Wextra -Werror)
# libnethost.a is C++: link its runtime by soname (present wherever .NET runs; the libstdc++ dev package
# that provides plain -lstdc++ comes with g++, not gcc). Keep every symbol but the kedit_* API hidden.
"$CC" "${flags[@]}" -fPIC -shared -fvisibility=hidden -I"$nethost" \
  "$here/kedit.c" "$nethost/libnethost.a" -l:libstdc++.so.6 -ldl -lpthread -Wl,--exclude-libs,ALL -o "$out/libkedit.so"
"$CC" "${flags[@]}" -I"$here" "$here/sample/kedit_sample.c" -L"$out" -lkedit -Wl,-rpath,'$ORIGIN' -o "$out/kedit_sample"
echo "built $out/libkedit.so and $out/kedit_sample (nethost from $nethost)"
