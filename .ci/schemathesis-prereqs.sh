#!/usr/bin/env bash
# Schemathesis (PyPI, pinned) in a venv under the user cache: the property
# based API fuzzer that `tests/api/contract.rs` runs against the real server
# and its own /api/openapi.json. Idempotent: skips the install when the
# pinned version is already there.
set -euo pipefail

ST_VERSION="${TASKHARBOR_SCHEMATHESIS_VERSION:-4.32.5}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/venv-schemathesis"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3 python3-venv
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi

installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)"
if [ "$installed" != "$ST_VERSION" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
echo "schemathesis ready: $("$VENV/bin/st" --version) in $VENV"
