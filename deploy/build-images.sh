#!/usr/bin/env bash
# Builds the three TaskHarbor container images WITHOUT a Docker engine, as
# OCI image-layout archives whose reference name is the workspace version:
#   OUT_DIR/taskharbor.tar                 tenant server (0.0.0.0:8080, /data)
#   OUT_DIR/taskharbor-operator.tar        operator (cmd: run)
#   OUT_DIR/taskharbor-control-plane.tar   control plane (0.0.0.0:8080, /data)
# Each holds only the release binary, its shared libraries (ldd), CA
# certificates and /etc/passwd (deploy/stage-rootfs.sh, shared with the
# Dockerfile); user 65532; entrypoint = the binary. Import them with
#   ctr -n k8s.io images import --base-name localhost/taskharbor OUT_DIR/taskharbor.tar
#   podman load -i OUT_DIR/taskharbor.tar     (or skopeo copy oci-archive:… docker-daemon:…)
# Usage: deploy/build-images.sh OUT_DIR
# Env: TAG (default: the workspace version), RELEASE_DIR (use prebuilt
# binaries from there instead of running cargo build --release).
# Needs: cargo, umoci (Debian: apt-get install umoci), ldd, root (file
# ownership in the layers).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-images.sh OUT_DIR}
mkdir -p "$out"; out=$(cd "$out" && pwd)
command -v umoci >/dev/null || { echo "build-images: umoci not found (apt-get install umoci)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "build-images: run as root (layers record uid 0 and 65532)" >&2; exit 1; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$here/Cargo.toml")
tag=${TAG:-$version}

if [ -z "${RELEASE_DIR:-}" ]; then
  t0=$(date +%s)
  (cd "$here" && cargo build --release --locked -p tenant-server -p taskharbor-operator -p taskharbor-control-plane --bins)
  target=$(cd "$here" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  RELEASE_DIR=$target/release
  echo "build-images: release binaries ready after $(( $(date +%s) - t0 )) s" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/th-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# image NAME BINARY [umoci config flags...]
image() {
  local name=$1 bin=$2; shift 2
  local layout=$work/$name-oci rootfs=$work/$name-rootfs
  "$here/deploy/stage-rootfs.sh" "$RELEASE_DIR/$bin" "$rootfs"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci insert --image "$layout:$tag" "$rootfs" /
  umoci config --image "$layout:$tag" \
    --config.entrypoint "/usr/local/bin/$bin" \
    --config.user 65532:65532 --config.workingdir / \
    --config.env PATH=/usr/local/bin --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.source=https://github.com/taskharbor/taskharbor" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0" \
    --history.created_by "deploy/build-images.sh" \
    "$@"
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$out/$name.tar" .
  printf 'build-images: %-36s %6s KiB archive, %6s KiB root filesystem\n' "$out/$name.tar" \
    "$(( $(stat -c %s "$out/$name.tar") / 1024 ))" "$(du -sk "$rootfs" | cut -f1)" >&2
}

image taskharbor taskharbor \
  --config.env TASKHARBOR_LISTEN=0.0.0.0:8080 --config.env TASKHARBOR_DATA_DIR=/data \
  --config.exposedports 8080/tcp --config.volume /data
image taskharbor-operator taskharbor-operator --config.cmd run
image taskharbor-control-plane taskharbor-control-plane \
  --config.env TASKHARBOR_CP_DATA_DIR=/data --config.exposedports 8080/tcp --config.volume /data
