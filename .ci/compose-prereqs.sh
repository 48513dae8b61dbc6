#!/usr/bin/env bash
# Prerequisites of the compose test (tests/tests/compose.rs): Podman from
# Debian (runs deploy/compose.yaml; no Docker engine here) and
# runc as its runtime, podman-compose from PyPI in a venv under the user cache (Debian's 1.0.3
# turns an exec-form healthcheck into `/bin/sh -c …`, which a shell-less
# image cannot run). umoci comes from fleet-prereqs.sh. Idempotent.
set -euo pipefail
need=()
command -v podman >/dev/null || need+=(podman)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
# runc, not crun: crun refuses hosts with cgroups in hybrid mode.
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v umoci >/dev/null || need+=(umoci)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" uidmap fuse-overlayfs
fi
venv="${XDG_CACHE_HOME:-$HOME/.cache}/taskharbor/venv-compose"
if [ ! -x "$venv/bin/podman-compose" ] || ! "$venv/bin/podman-compose" --version 2>/dev/null | grep -q '1.6.0'; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'podman-compose==1.6.0'
fi
echo "compose prereqs ready: $(podman --version), podman-compose 1.6.0 in $venv"
