#!/usr/bin/env bash
# Screenshots HTML pages the tools write (report.html, reproduction.html, a gallery's
# index.html) with headless Chromium, to check them as a browser shows them.
#
#   scripts/screenshot_pages.sh OUT_DIR PAGE.html [PAGE.html ...]
#
# Writes OUT_DIR/<parent folder>-<page>.png per page. Needs Debian's chromium
# (`apt-get install chromium`). Exits non-zero when a page cannot be rendered.
set -euo pipefail
out="$1"
shift
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "error: no chromium found (apt-get install chromium)" >&2
    exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
for page in "$@"; do
    if [ ! -f "$page" ]; then
        echo "error: $page does not exist" >&2
        exit 1
    fi
    name="$(basename "$(dirname "$(realpath "$page")")")-$(basename "$page" .html).png"
    # The flags keep a headless browser from reaching for the network it does not have.
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --window-size=1280,2400 \
        --virtual-time-budget=3000 --screenshot="$out/$name" "file://$(realpath "$page")" \
        >/dev/null 2>&1
    test -s "$out/$name"
    echo "$out/$name"
done
