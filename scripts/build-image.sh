#!/usr/bin/env bash
# Builds the ferroserve container image from deploy/Dockerfile without a Docker daemon and
# without pulling anything from a container registry, writes it as an OCI archive, then
# boots it and checks that it gets ready and classifies tests/data/images/cat.jpg.
#
#   scripts/build-image.sh            # build, write target/image/ferroserve-0.1.0.oci.tar, boot
#   scripts/build-image.sh --no-boot  # build and write only
#
# The Dockerfile's two base images are stood in for by images made here from Debian 12
# packages with mmdebstrap:
#   RUNTIME_IMAGE (gcr.io/distroless/cc-debian12:nonroot): libc6, libgcc-s1, libstdc++6,
#     base-files and netbase, unpacked without a shell or package manager, plus
#     /etc/passwd and /etc/group naming nonroot = 65532 as distroless does.
#   RUST_IMAGE (rust:1.88-bookworm): Debian 12 with gcc and ca-certificates; the Rust
#     toolchain is this machine's rustup toolchain, mounted read-only at the paths the
#     rust image uses (/usr/local/rustup, /usr/local/cargo/bin), since Debian 12's own
#     rustc (1.63) is older than the workspace's rust-version.
# buildah then builds deploy/Dockerfile unchanged (vfs storage, chroot isolation, so it
# needs root but no daemon), in .cache/deploy/containers/. Crates come from crates.io
# during the build, as in a Docker build, trusting this machine's CA bundle (so that a
# TLS-inspecting proxy this machine trusts is trusted inside the build too). The first build compiles the workspace from
# scratch (about 15 minutes on 2 cores); later ones reuse the Dockerfile's cache mounts.
#
# Booting: the archive is unpacked with umoci and its entrypoint is run under
# `unshare` in its own mount and PID namespaces, chrooted into the image's root
# filesystem mounted read-only (as readOnlyRootFilesystem does in Kubernetes), as the
# image's user, with the image's environment. Ports: FERROSERVE_IMAGE_TEST_PORT (18000),
# +1, +2.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh

BOOT=1
[ "${1:-}" = "--no-boot" ] && BOOT=0
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TAG="localhost/ferroserve:$VERSION"
OUT_DIR=target/image
ARCHIVE="$OUT_DIR/ferroserve-$VERSION.oci.tar"
WORK=.cache/deploy/image
STORE=(--root "$PWD/.cache/deploy/containers/storage" --runroot "$PWD/.cache/deploy/containers/run"
       --storage-driver vfs)
MIRROR=http://deb.debian.org/debian
RUNTIME_BASE=localhost/ferroserve-runtime-base:bookworm
BUILD_BASE=localhost/ferroserve-build-base:bookworm
PORT=${FERROSERVE_IMAGE_TEST_PORT:-18000}

log() { echo "build-image: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "run as root: buildah with vfs storage and chroot isolation, and the boot's chroot, need it"
    exit 1
fi
missing=()
for tool in mmdebstrap:mmdebstrap buildah:buildah umoci:umoci curl:curl python3:python3; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
RUSTUP_DIR=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
if [ ! -x "$CARGO_BIN/cargo" ] || [ ! -d "$RUSTUP_DIR/toolchains" ]; then
    log "no rustup toolchain found at $RUSTUP_DIR with proxies in $CARGO_BIN (install rustup)"
    exit 1
fi
CA_BUNDLE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
scripts/setup-onnxruntime.sh
scripts/setup-openvino.sh
mkdir -p "$WORK" "$OUT_DIR"

# Writes /etc/passwd and /etc/group into the root filesystem $1: root, nonroot (65532)
# and nobody, with the home folders distroless has.
write_users() {
    local root=$1
    mkdir -p "$root/etc" "$root/root" "$root/home/nonroot" "$root/tmp"
    cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat > "$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
    chown 65532:65532 "$root/home/nonroot"
    chmod 1777 "$root/tmp"
}

# Makes image $1 from the tarball $2, then runs command $3 on its root filesystem, then
# sets the config options that follow.
import_rootfs() {
    local image=$1 tarball=$2 prepare=$3
    shift 3
    local ctr mnt
    ctr=$(buildah "${STORE[@]}" from scratch)
    mnt=$(buildah "${STORE[@]}" mount "$ctr")
    tar -xf "$tarball" -C "$mnt"
    "$prepare" "$mnt"
    buildah "${STORE[@]}" umount "$ctr" >/dev/null
    buildah "${STORE[@]}" config "$@" "$ctr"
    buildah "${STORE[@]}" commit -q --rm "$ctr" "$image" >/dev/null
}

have_image() { buildah "${STORE[@]}" inspect --type image "$1" >/dev/null 2>&1; }

if ! have_image "$RUNTIME_BASE"; then
    log "making $RUNTIME_BASE from Debian 12 packages (mmdebstrap)"
    mmdebstrap --quiet --variant=extract \
        --include=libc6,libgcc-s1,libstdc++6,base-files,netbase \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/etc/apt "$1"/var/cache/apt "$1"/var/lib/apt' \
        bookworm "$WORK/runtime-base.tar" "$MIRROR" </dev/null
    import_rootfs "$RUNTIME_BASE" "$WORK/runtime-base.tar" write_users \
        --env PATH=/usr/local/bin:/usr/bin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --user 65532:65532 --workingdir /home/nonroot
fi
if ! have_image "$BUILD_BASE"; then
    log "making $BUILD_BASE from Debian 12 packages (mmdebstrap)"
    mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        bookworm "$WORK/build-base.tar" "$MIRROR" </dev/null
    import_rootfs "$BUILD_BASE" "$WORK/build-base.tar" true \
        --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fi

log "building $TAG from deploy/Dockerfile (buildah, vfs)"
start=$(date +%s)
buildah "${STORE[@]}" build --isolation chroot --pull=never \
    --build-arg RUST_IMAGE="$BUILD_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
    --volume "$RUSTUP_DIR:/usr/local/rustup:ro" --volume "$CARGO_BIN:/usr/local/cargo/bin:ro" \
    --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
    --file deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore \
    --tag "$TAG" .
log "built in $(($(date +%s) - start)) s"
rm -f "$ARCHIVE"
buildah "${STORE[@]}" push --quiet "$TAG" "oci-archive:$ARCHIVE:ferroserve:$VERSION"
user=$(buildah "${STORE[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$TAG")
entrypoint=$(buildah "${STORE[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$TAG")
echo "image: $ARCHIVE, $(du -m "$ARCHIVE" | cut -f1) MiB ($(stat -c %s "$ARCHIVE") bytes), user $user, entrypoint $entrypoint"

[ "$BOOT" = 1 ] || exit 0

# Boot: unpack the archive (as an OCI runtime bundle) and run the image's entrypoint.
BUNDLE="$WORK/bundle"
rm -rf "$WORK/layout" "$BUNDLE"
mkdir -p "$WORK/layout"
tar -xf "$ARCHIVE" -C "$WORK/layout"
umoci unpack --image "$WORK/layout:ferroserve:$VERSION" "$BUNDLE" >/dev/null
# The image's user, environment and entrypoint, from the bundle's config.json (the
# environment and arguments NUL-separated, in files, since shell variables cannot hold NUL).
userspec=$(python3 - "$BUNDLE/config.json" "$WORK/boot-env" "$WORK/boot-args" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["process"]
open(sys.argv[2], "w").write("".join(e + "\0" for e in p["env"]))
open(sys.argv[3], "w").write("".join(a + "\0" for a in p["args"]))
print(f'{p["user"]["uid"]}:{p["user"]["gid"]}')
PY
)
mapfile -d '' -t env_vars < "$WORK/boot-env"
mapfile -d '' -t args < "$WORK/boot-args"
args+=(--http-port "$PORT" --grpc-port "$((PORT + 1))" --metrics-port "$((PORT + 2))")
log "booting: ${args[*]} as $userspec, root filesystem read-only"
rootfs="$PWD/$BUNDLE/rootfs"
# In new mount and PID namespaces: the root filesystem bind-mounted read-only, a tmpfs
# on /tmp (an emptyDir in Kubernetes) and /proc, then chroot as the image's user with
# only the image's environment. (The image has no shell: everything before the chroot
# runs with this machine's tools.)
unshare --mount --pid --fork --kill-child -- sh -c '
    set -e
    rootfs=$1; userspec=$2; shift 2
    mount --bind "$rootfs" "$rootfs"
    mount -o remount,bind,ro "$rootfs"
    mount -t tmpfs -o mode=1777 tmpfs "$rootfs/tmp"
    mount -t proc proc "$rootfs/proc"
    exec env -i "$@"
' boot "$rootfs" "$userspec" "${env_vars[@]}" "$(command -v chroot)" --userspec="$userspec" "$rootfs" "${args[@]}" \
    > "$WORK/boot.log" 2>&1 &
boot_pid=$!
server_pid() { pgrep -P "$boot_pid" | head -1; }
stop() {
    local pid
    pid=$(server_pid || true)
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    wait "$boot_pid" 2>/dev/null || true
}
trap stop EXIT

if ! wait_ready "http://127.0.0.1:$PORT/v2/health/ready" 120 "$boot_pid"; then
    log "the image did not get ready; its log:"
    cat "$WORK/boot.log" >&2
    exit 1
fi
log "ready: $(grep -m1 'ferroserve ready' "$WORK/boot.log" || true)"
answer=$(curl -fsS --data-binary @tests/data/images/cat.jpg \
    "http://127.0.0.1:$PORT/v2/models/efficientnet-lite0/classify?top_k=1")
echo "cat.jpg: $answer"
label=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0]["label"])' "$answer")
if [ "$label" != "tiger cat" ]; then
    log "expected \"tiger cat\", got \"$label\""
    exit 1
fi
uid=$(ps -o uid= -p "$(server_pid)" | tr -d ' ')
if [ "$uid" != "${userspec%%:*}" ]; then
    log "the server ran as uid $uid, not the image's user $userspec"
    exit 1
fi
echo "boot: ready, cat.jpg is \"tiger cat\"; the server ran as uid $uid on a read-only root filesystem"
