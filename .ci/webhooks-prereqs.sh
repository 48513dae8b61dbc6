#!/usr/bin/env bash
# The Standard Webhooks reference verifier (PyPI `standardwebhooks`), used by
# the webhook tests to check our signatures with code nobody here wrote.
set -euo pipefail
venv="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/venv-webhooks"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'standardwebhooks==1.1.0'
fi
echo "webhook verifier ready: $venv/bin/python"
