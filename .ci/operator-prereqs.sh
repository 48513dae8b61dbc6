#!/usr/bin/env bash
# Prerequisites of the operator's tests (`cargo test --workspace` runs them):
# - the Kubernetes 1.20 control plane binaries (built once from Debian's
#   sources, ~13 min; cached in ~/.cache/k8s-control-plane afterwards),
# - helm + kubernetes-validate for chart-check.sh (cached in ~/.cache/k8s-tools),
# - kubectl and openssl, which k8s-control-plane.sh calls.
# Idempotent: a second run returns in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_DIR:-$here/../shared}
if [ ! -d "$shared/k8s" ]; then
  echo "operator-prereqs: $shared/k8s not found (expected shared/ beside the repository)" >&2
  exit 1
fi
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v kubectl >/dev/null || need+=(kubernetes-client)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
"$shared/k8s/build-k8s-control-plane.sh"
# chart-check.sh installs helm and kubernetes-validate on first use; run it
# on the chart now so the tests find them (and a broken chart fails early).
"$shared/k8s/chart-check.sh" "$here/charts/taskharbor-operator"
