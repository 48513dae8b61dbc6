# syntax=docker/dockerfile:1
# The tenant server image for people with Docker or Podman:
#   docker build -t taskharbor:0.1.0 .        (or: podman build -t taskharbor:0.1.0 .)
#   docker run -d -p 127.0.0.1:8080:8080 -v taskharbor-data:/data taskharbor:0.1.0
# Same contents as deploy/build-images.sh builds without an engine: the
# release binary, the libraries ldd lists, CA certificates and /etc/passwd
# (deploy/stage-rootfs.sh, shared by both), user 65532, no shell.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tenant-server --bin taskharbor \
 && install -m 0755 target/release/taskharbor /taskharbor
RUN deploy/stage-rootfs.sh /taskharbor /rootfs

FROM scratch
COPY --from=build /rootfs /
# COPY may record files as root: the data directory must belong to the user.
COPY --from=build --chown=65532:65532 /rootfs/data /data
USER 65532:65532
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    TASKHARBOR_LISTEN=0.0.0.0:8080 \
    TASKHARBOR_DATA_DIR=/data
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/taskharbor", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/taskharbor"]
CMD ["serve"]
LABEL org.opencontainers.image.title=taskharbor \
      org.opencontainers.image.version=0.1.0 \
      org.opencontainers.image.source=https://github.com/taskharbor/taskharbor \
      org.opencontainers.image.licenses=Apache-2.0
