#!/usr/bin/env bash
# Builds the mqtt-sentinel container image without Docker and without any registry, the way
# the Dockerfile does: the release binary from scripts/build-release.sh (the build stage's
# `cargo build --release --locked --features vendored-ssl`), on `buildah from scratch` with
# exactly what the runtime stage's base (gcr.io/distroless/cc-debian12:nonroot) gives it:
# the Debian 12 libraries the binary links (ldd), the CA bundle, /etc/passwd and /etc/group
# with nonroot:65532, /etc/nsswitch.conf, /etc/os-release, /tmp (1777) and /home/nonroot.
# USER, EXPOSE, HEALTHCHECK, ENTRYPOINT and the org.opencontainers.image.* labels are the
# runtime stage's: tests/it/container.rs reads both files and fails when they disagree.
#
# Output: target/image/mqtt-sentinel.tar, a docker-archive (`docker load -i`, `podman load -i`)
# of `localhost/mqtt-sentinel:latest`. Docker's image format, not OCI: the OCI image config
# has no HEALTHCHECK (buildah and podman drop it), and the image's own healthcheck is part of
# what this builds. Rebuilt only when an input changed (target/image/inputs.sha256).
#
# buildah and podman state stays under target/image/: storage (storage.conf, given by
# CONTAINERS_STORAGE_CONF) and containers.conf (CONTAINERS_CONF) with what these VMs need:
# runc with cgroupfs (crun refuses hybrid cgroups) and no default ulimits (runc fails on
# RLIMIT_NPROC otherwise). The machine's /etc/containers is not touched. Runs as root, or
# re-executes itself under `buildah unshare`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/image
out=$work/mqtt-sentinel.tar
name=localhost/mqtt-sentinel:latest

. /etc/os-release
if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
    echo "build-image.sh copies the host's libraries into the image: it needs Debian 12 (the" >&2
    echo "runtime stage's distroless/cc-debian12), this is ${PRETTY_NAME:-unknown}; use the Dockerfile" >&2
    exit 1
fi
for cmd in buildah podman runc; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "$cmd is missing (Debian package $cmd; scripts/install-deps.sh installs it)" >&2
        exit 1
    }
done

mkdir -p "$work"
cat >"$work/containers.conf" <<'EOF'
# Written by scripts/build-image.sh; used through CONTAINERS_CONF.
[containers]
# runc fails on RLIMIT_NPROC with the default ulimits on these VMs
default_ulimits = []
[engine]
# crun refuses: "cgroups in hybrid mode not supported"
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$work/storage.conf" <<EOF
# Written by scripts/build-image.sh; used through CONTAINERS_STORAGE_CONF.
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
export BUILDAH_FORMAT=docker

if [ "$(id -u)" != 0 ] && [ -z "${_BUILD_IMAGE_UNSHARED:-}" ]; then
    bash scripts/build-release.sh
    _BUILD_IMAGE_UNSHARED=1 exec buildah unshare bash "$0" "$@"
fi
[ -n "${_BUILD_IMAGE_UNSHARED:-}" ] || bash scripts/build-release.sh

bin=target/release/mqtt-sentinel
# ldd's resolved paths: libc, libm, libgcc_s and the loader (build-release.sh has checked
# there is no libssl/libcrypto: OpenSSL is linked statically)
mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
ca=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca" ] || { echo "$ca is missing (Debian package ca-certificates)" >&2; exit 1; }
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%ct 2>/dev/null || echo 0)

stamp=$(
    {
        sha256sum "$bin" "$ca" /etc/os-release "$0" Dockerfile
        for l in "${libs[@]}"; do sha256sum "$(readlink -f "$l")"; done
        echo "$revision $created"
    } | sha256sum | cut -d' ' -f1
)
if [ -s "$out" ] && [ "$(cat "$work/inputs.sha256" 2>/dev/null)" = "$stamp" ] &&
    podman image exists "$name"; then
    echo "image up to date: $out ($(du -k "$out" | cut -f1) KiB)"
    exit 0
fi

ctr=$(buildah from --name "mqtt-sentinel-build-$$" scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$(buildah mount "$ctr")

# distroless/cc-debian12:nonroot's contents
install -D -m 0755 "$bin" "$mnt/usr/local/bin/mqtt-sentinel"
for l in "${libs[@]}"; do
    install -D -m 0755 "$(readlink -f "$l")" "$mnt$l"
done
install -D -m 0644 "$ca" "$mnt$ca"
install -D -m 0644 /etc/os-release "$mnt/etc/os-release"
install -d -m 1777 "$mnt/tmp"
install -d -m 0700 -o 65532 -g 65532 "$mnt/home/nonroot"
install -d -m 0700 "$mnt/root"
printf '%s\n' \
    'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$mnt/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$mnt/etc/group"
printf '%s\n' 'hosts: files dns' >"$mnt/etc/nsswitch.conf"
chmod 0644 "$mnt/etc/passwd" "$mnt/etc/group" "$mnt/etc/nsswitch.conf"
buildah umount "$ctr" >/dev/null

# The runtime stage's settings (tests/it/container.rs compares them with the Dockerfile's).
buildah config \
    --user nonroot:nonroot \
    --port 10883/tcp \
    --healthcheck "CMD /usr/local/bin/mqtt-sentinel healthcheck" \
    --healthcheck-interval 30s \
    --healthcheck-timeout 5s \
    --healthcheck-retries 3 \
    --entrypoint '["/usr/local/bin/mqtt-sentinel"]' \
    --label org.opencontainers.image.title="mqtt-sentinel" \
    --label org.opencontainers.image.description="Watches MQTT brokers and exports their health as Prometheus metrics" \
    --label org.opencontainers.image.licenses="Apache-2.0" \
    --label org.opencontainers.image.revision="$revision" \
    "$ctr"

buildah commit --quiet --format docker --squash --identity-label=false --omit-history \
    --timestamp "$created" "$ctr" "$name" >/dev/null
rm -f "$out"
podman save --quiet --format docker-archive -o "$out" "$name"
echo "$stamp" >"$work/inputs.sha256"
size=$(podman image inspect --format '{{.Size}}' "$name")
echo "image $name: $(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }') uncompressed; archive $out: $(du -k "$out" | cut -f1) KiB"
