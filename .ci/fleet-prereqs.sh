#!/usr/bin/env bash
# Prerequisites of the fleet tests (`tests/tests/fleet`, run by
# `cargo test --workspace`): the node's packages (containerd, runc, CNI
# plugins) and umoci for deploy/build-images.sh, all from Debian; the
# Kubernetes build (kubelet and scheduler included) comes from
# operator-prereqs.sh, which .ci/test runs first. A first chart-check of
# the single-tenant chart makes a broken chart fail early. Idempotent.
# The release build of the images happens inside the test
# (deploy/build-images.sh), so a test run always ships the code it tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_DIR:-$here/../shared}
need=()
command -v umoci >/dev/null || need+=(umoci)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
"$shared/k8s/build-k8s-control-plane.sh"
"$shared/k8s/chart-check.sh" "$here/charts/taskharbor"
echo "fleet prereqs ready: $(umoci --version), $(containerd --version | cut -d' ' -f1-3)"
