#!/usr/bin/env bash
# Prerequisites of the dashboard's end-to-end tests (issues 5 and 14):
# Debian's chromium + chromium-driver, playwright-core (driver library only,
# no bundled browsers) and axe-core (the accessibility checker injected
# into the pages) under the user cache. Idempotent: skips what exists.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

NODE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/node"
PLAYWRIGHT_VERSION="1.65.1"
AXE_VERSION="4.14.1"
has() { # package version
    [ -f "$NODE_DIR/node_modules/$1/package.json" ] \
        && grep -q "\"version\": \"$2\"" "$NODE_DIR/node_modules/$1/package.json"
}
if ! has playwright-core "$PLAYWRIGHT_VERSION" || ! has axe-core "$AXE_VERSION"; then
    mkdir -p "$NODE_DIR"
    cd "$NODE_DIR"
    [ -f package.json ] || echo '{"name":"taskharbor-e2e","private":true}' > package.json
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --save-exact \
        "playwright-core@$PLAYWRIGHT_VERSION" "axe-core@$AXE_VERSION"
fi
echo "web prereqs ready: $(/usr/bin/chromium --version 2>/dev/null || echo chromium?) playwright-core + axe-core in $NODE_DIR"
