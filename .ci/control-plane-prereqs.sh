#!/usr/bin/env bash
# Prerequisites of the control plane's tests (`cargo test --workspace` runs
# them): the same Kubernetes 1.20 control plane and helm tools as the
# operator's (see operator-prereqs.sh, which installs kubectl/openssl/venv;
# both are idempotent and cached), and a first chart-check of our chart so a
# broken chart fails early. The e2e test builds the tenant server itself
# (`cargo build -p tenant-server --bin taskharbor`).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_DIR:-$here/../shared}
if [ ! -d "$shared/k8s" ]; then
  echo "control-plane-prereqs: $shared/k8s not found (expected shared/ beside the repository)" >&2
  exit 1
fi
"$shared/k8s/build-k8s-control-plane.sh"
"$shared/k8s/chart-check.sh" "$here/charts/taskharbor-control-plane"
