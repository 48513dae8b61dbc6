#!/usr/bin/env bash
# Prerequisites of the MCP client tests (issue 4): the official Python MCP SDK
# (`mcp` from PyPI) in a venv under the user cache. The Rust test
# `tests/api/mcp.rs` finds the interpreter at the same default path, or at
# $TASKHARBOR_MCP_PYTHON. Idempotent: skips the install when the pinned
# version is already there.
set -euo pipefail

MCP_VERSION="${TASKHARBOR_MCP_SDK_VERSION:-2.3.0}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/venv-mcp"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3 python3-venv
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi

installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true)"
if [ "$installed" != "$MCP_VERSION" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$MCP_VERSION"
fi
echo "mcp prereqs ready: $("$VENV/bin/python" --version) mcp $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))') in $VENV"
