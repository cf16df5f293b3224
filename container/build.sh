#!/usr/bin/env bash
# Builds the binfmtctl container image (FROM scratch): a static binfmtctl
# (-C target-feature=+crt-static) and the static QEMU interpreters of qemu-user-static.
#
#   container/build.sh [IMAGE]      (default localhost/binfmtctl:latest; root, podman + runc)
#   QEMU_VERSION=10.0 container/build.sh   bake in that QEMU version instead of the host's:
#       fetched with `binfmtctl qemu fetch` from Debian's archive (signature-checked; the
#       mirror is apt's, or QEMU_MIRROR=URL; QEMU_CACHE=DIR keeps the .deb) into a scratch
#       store, verified, then copied in
#
# podman runs here as `podman --runtime runc --cgroup-manager cgroupfs` (see docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-localhost/binfmtctl:latest}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)

RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
BIN=target/x86_64-unknown-linux-gnu/release/binfmtctl
# Refuse to ship a binary that is not static: it would not run FROM scratch. (grep reads it
# all: `grep -q` stops at the first match, and the writer's next write then fails on the closed
# pipe, which pipefail reports as a failed pipeline.)
"$BIN" inspect "$BIN" | grep '; static;' >/dev/null || { echo "build.sh: $BIN is not static" >&2; exit 1; }

CTX=$(mktemp -d); trap 'rm -rf "$CTX"' EXIT
install -m 0755 "$BIN" "$CTX/binfmtctl"
mkdir "$CTX/qemu"
if [ -n "${QEMU_VERSION:-}" ]; then
    "$BIN" qemu fetch "$QEMU_VERSION" --qemu-store "$CTX/store" ${QEMU_MIRROR:+--mirror "$QEMU_MIRROR"} ${QEMU_CACHE:+--cache "$QEMU_CACHE"} >&2
    "$BIN" qemu verify --qemu-store "$CTX/store" >&2
    for q in "$CTX"/store/*/bin/qemu-*; do install -m 0755 "$q" "$CTX/qemu/"; done
    rm -rf "$CTX/store"
else
    for q in /usr/bin/qemu-*-static; do install -m 0755 "$q" "$CTX/qemu/"; done
fi
"${PODMAN[@]}" build --quiet -t "$IMAGE" -f container/Containerfile "$CTX" >/dev/null
echo "$IMAGE"
