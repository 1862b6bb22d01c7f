#!/usr/bin/env bash
# Renders a kedit demo report in headless Chromium and saves a PNG screenshot.
#   bench/screenshot-report.sh kedit-demo/report.html report.png
# Needs Debian's chromium (apt-get install -y chromium).
set -euo pipefail
html="$(realpath "${1:-kedit-demo/report.html}")"; png="${2:-report.png}"
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install -y chromium)" >&2; exit 1; }
profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1240,${KEDIT_SHOT_HEIGHT:-3200} --screenshot="$(realpath -m "$png")" "file://$html" >/dev/null 2>&1
[ -s "$png" ] || { echo "no screenshot written" >&2; exit 1; }
# The report must hold one inline SVG chart per metric.
charts=$(grep -o '<svg' "$html" | wc -l)
echo "screenshot: $png ($(stat -c %s "$png") bytes); $charts charts in $html"
[ "$charts" -ge 8 ]
