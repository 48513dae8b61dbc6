#!/usr/bin/env bash
# Prerequisites of the GitHub/GitLab sync tests (issue 10), from npm into the
# user cache: GitHub's published OpenAPI description (@octokit/openapi) and a
# JSON-schema validator (ajv) to check the GitHub stand-in's answers, real
# webhook bodies (@octokit/webhooks-examples), GitHub's reference webhook
# signer (@octokit/webhooks-methods) and recorded API scenarios
# (@octokit/fixtures). Idempotent: skips when the pinned set is installed.
set -euo pipefail
NODE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/node-sync"
PACKAGES=(
  "@octokit/openapi@23.0.2"
  "@octokit/webhooks-examples@7.6.1"
  "@octokit/webhooks-methods@6.0.0"
  "@octokit/fixtures@23.1.2"
  "ajv@8.20.0"
  "ajv-formats@3.0.1"
)
stamp="$NODE_DIR/.installed-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if ! command -v node >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
  fi
  mkdir -p "$NODE_DIR"
  cd "$NODE_DIR"
  [ -f package.json ] || echo '{"name":"taskharbor-sync-tests","private":true}' > package.json
  npm install --no-audit --no-fund --save-exact "${PACKAGES[@]}"
  rm -f "$NODE_DIR"/.installed-*
  touch "$stamp"
fi
echo "sync test prereqs ready in $NODE_DIR"
