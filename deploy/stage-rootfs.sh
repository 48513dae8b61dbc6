#!/bin/sh
# Lays out a minimal root filesystem for one TaskHarbor program: the binary,
# the shared libraries it links (from ldd, with the dynamic loader), CA
# certificates, and /etc/passwd + /etc/group naming the non-root user 65532.
# Nothing else: no shell, no package manager. Used by deploy/build-images.sh
# (umoci, no Docker engine) and by the Dockerfile (COPY into `scratch`), so
# both produce the same image contents.
# Usage: stage-rootfs.sh BINARY DEST   (DEST must not exist; run as root so
#        ownership is recorded as 0 and 65532)
set -eu
bin=$1; dest=$2
[ -x "$bin" ] || { echo "stage-rootfs: $bin is not an executable" >&2; exit 1; }
[ ! -e "$dest" ] || { echo "stage-rootfs: $dest exists" >&2; exit 1; }
mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/tmp" "$dest/data" "$dest/home/nonroot"
install -m 0755 "$bin" "$dest/usr/local/bin/$(basename "$bin")"
# Every absolute path ldd prints (libraries and the loader), dereferenced and
# kept at the same path, which is where the loader and the binary look.
ldd "$bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$dest$(dirname "$lib")"
  cp -L "$lib" "$dest$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
cat > "$dest/etc/passwd" <<'P'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
P
cat > "$dest/etc/group" <<'G'
root:x:0:
nonroot:x:65532:
G
chmod 1777 "$dest/tmp"
# /data is where the programs keep SQLite; a fresh named volume (Docker,
# Podman) copies this directory's ownership, so the non-root user can write.
chown 65532:65532 "$dest/data" "$dest/home/nonroot"
chmod 0750 "$dest/data"
