#!/usr/bin/env bash
# Prerequisites of the dashboard's end-to-end test (issue 5): Debian's
# chromium + chromium-driver, and playwright-core (driver library only, no
# bundled browsers) under the user cache. Idempotent: skips what exists.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

NODE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/node"
PLAYWRIGHT_VERSION="1.65.1"
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] \
    || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
    mkdir -p "$NODE_DIR"
    cd "$NODE_DIR"
    [ -f package.json ] || echo '{"name":"taskharbor-e2e","private":true}' > package.json
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --save-exact "playwright-core@$PLAYWRIGHT_VERSION"
fi
echo "web prereqs ready: $(/usr/bin/chromium --version 2>/dev/null || echo chromium?) playwright-core in $NODE_DIR"
