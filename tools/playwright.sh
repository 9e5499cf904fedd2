#!/usr/bin/env bash
# Installs playwright-core (the browser automation library without browsers) from npm
# into a cache outside the clone, for the browser test of the Temporal UI
# (integration/ui_approve_test.go drives Debian's chromium with it). Idempotent and
# quick when the pinned version is already there; it never downloads a browser.
#
# Prints the directory to hand to integration/ui/approve.mjs (--playwright DIR) on
# its last line of standard output.
set -euo pipefail
version=1.64.1
cache=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}
dir="$cache/node/playwright-core-$version"

installed() { [ -f "$dir/node_modules/playwright-core/package.json" ] &&
  grep -q "\"version\": \"$version\"" "$dir/node_modules/playwright-core/package.json"; }

if ! installed; then
  for cmd in node npm; do
    command -v "$cmd" >/dev/null || { echo "playwright: $cmd is not installed; install Node.js (20 or later) and npm" >&2; exit 1; }
  done
  mkdir -p "$cache/node"
  exec 9>"$cache/node/.playwright.lock"
  flock 9
  if ! installed; then
    echo "playwright: installing playwright-core@$version into $dir (first time only)" >&2
    tmp=$(mktemp -d "$cache/node/.playwright-core-$version.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    printf '{"name":"conveyor-browser-test","private":true}\n' > "$tmp/package.json"
    # playwright-core has no install script and downloads no browser; the variable
    # guards against a future version that would.
    if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$tmp" --no-audit --no-fund \
        --loglevel=error "playwright-core@$version" >&2; then
      echo "playwright: npm install playwright-core@$version failed (is the npm registry reachable?)" >&2
      exit 1
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir"
    trap - EXIT
  fi
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "playwright: /usr/bin/chromium is missing; \`make deps\` (tools/deps.sh) installs Debian's chromium" >&2
  exit 1
fi
echo "$dir"
