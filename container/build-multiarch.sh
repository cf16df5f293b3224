#!/usr/bin/env bash
# Builds the binfmtctl container image for linux/amd64 and linux/arm64 as one manifest list
# (an OCI image index), FROM scratch (container/Containerfile.multiarch):
#   linux/amd64: the static x86_64 binfmtctl and the host's qemu-user-static interpreters
#                (as container/build.sh);
#   linux/arm64: the static aarch64 binfmtctl of scripts/build-aarch64.sh (its cached forky
#                build system) and the interpreters of Debian's qemu-user-static:arm64,
#                without qemu-aarch64-static (arm64 is native there).
#
#   container/build-multiarch.sh [IMAGE] [OCI]   (root, podman + runc; default
#       IMAGE localhost/binfmtctl:multiarch). With OCI, the index and both images are also
#       written there: a path ending in .tar as an OCI archive, anything else as an OCI layout
#       directory (podman manifest push --all).
#
# The arm64 .deb is fetched with `apt-get download qemu-user-static:arm64` (arm64 must be a
# dpkg foreign architecture, as scripts/deps.sh sets it) and checked against the SHA256 of
# apt's signed Packages index, so apt's signature chain covers it; it is kept in QEMU_DEB_CACHE
# (default /var/cache/binfmtctl-build/qemu-user-static-arm64) and reused while apt's candidate
# version is the same. Copying files into a scratch image runs nothing of the foreign arch,
# so no emulation is needed to build; no image is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-localhost/binfmtctl:multiarch}
OCI=${2:-}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
DEB_CACHE=${QEMU_DEB_CACHE:-/var/cache/binfmtctl-build/qemu-user-static-arm64}
log() { printf '[multiarch] %s\n' "$*" >&2; }
die() { printf '[multiarch] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (podman as root, scripts/build-aarch64.sh)"
# Captured, not piped: under pipefail, dpkg killed by SIGPIPE once grep -q has its line
# would read as "arm64 is not there".
foreign=$(dpkg --print-foreign-architectures)
grep -qx arm64 <<<"$foreign" ||
  die "arm64 is not a dpkg foreign architecture: dpkg --add-architecture arm64 && apt-get update (scripts/deps.sh)"
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# 1. The two static binfmtctl.
log "x86_64 binfmtctl (static)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
AMD=target/x86_64-unknown-linux-gnu/release/binfmtctl
"$AMD" inspect "$AMD" | grep '; static;' >/dev/null || die "$AMD is not static"
log "aarch64 binfmtctl (scripts/build-aarch64.sh)"
ARM=$(scripts/build-aarch64.sh)
# The ELF check of the aarch64 build runs on the x86_64 binfmtctl (inspect reads, runs nothing).
"$AMD" inspect "$ARM" | grep -E 'machine [0-9]+ = aarch64 ' >/dev/null || die "$ARM is not an aarch64 ELF"
"$AMD" inspect "$ARM" | grep '; static;' >/dev/null || die "$ARM is not static"

# 2. Debian's arm64 static QEMU, verified against apt's signed index.
mkdir -p "$DEB_CACHE"
exec 8>"$DEB_CACHE.lock"
flock 8
show=$(apt-cache show --no-all-versions qemu-user-static:arm64)
version=$(sed -n 's/^Version: //p' <<<"$show" | sed -n 1p)
sha=$(sed -n 's/^SHA256: //p' <<<"$show" | sed -n 1p)
[ -n "$version" ] && [ -n "$sha" ] || die "apt knows no qemu-user-static:arm64 (apt-get update?)"
DEB=$DEB_CACHE/qemu-user-static_${version#*:}_arm64.deb
if [ ! -f "$DEB" ] || [ "$(sha256sum < "$DEB" | cut -d' ' -f1)" != "$sha" ]; then
  log "apt-get download qemu-user-static:arm64 ($version)"
  tmp=$(mktemp -d "$DEB_CACHE/dl.XXXXXX")
  (cd "$tmp" && apt-get download -q=2 "qemu-user-static:arm64=$version" 2>/dev/null) ||
    { rm -rf "$tmp"; die "apt-get download qemu-user-static:arm64=$version failed"; }
  mv "$tmp"/*.deb "$DEB.part" && rm -rf "$tmp"
  [ "$(sha256sum < "$DEB.part" | cut -d' ' -f1)" = "$sha" ] ||
    { rm -f "$DEB.part"; die "qemu-user-static:arm64 $version does not match the SHA256 of apt's signed index"; }
  mv "$DEB.part" "$DEB"
fi
log "qemu-user-static:arm64 $version, sha256 $sha (apt's signed index)"

# 3. The build context: one directory per arch.
CTX=$(mktemp -d); trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/amd64/qemu" "$CTX/arm64/qemu" "$CTX/deb"
install -m 0755 "$AMD" "$CTX/amd64/binfmtctl"
for q in /usr/bin/qemu-*-static; do install -m 0755 "$q" "$CTX/amd64/qemu/"; done
install -m 0755 "$ARM" "$CTX/arm64/binfmtctl"
dpkg-deb -x "$DEB" "$CTX/deb"
for q in "$CTX"/deb/usr/bin/qemu-*-static; do
  [ "$(basename "$q")" = qemu-aarch64-static ] && continue
  install -m 0755 "$q" "$CTX/arm64/qemu/"
done
rm -rf "$CTX/deb"
[ -x "$CTX/arm64/qemu/qemu-x86_64-static" ] || die "qemu-user-static:arm64 has no qemu-x86_64-static"

# 4. The images and the manifest list (a fresh list each time: `--manifest` adds to one).
if "${PODMAN[@]}" manifest exists "$IMAGE" 2>/dev/null; then "${PODMAN[@]}" manifest rm "$IMAGE" >/dev/null; fi
log "podman build --platform linux/amd64,linux/arm64 --manifest $IMAGE"
"${PODMAN[@]}" build --quiet --platform linux/amd64,linux/arm64 --manifest "$IMAGE" \
  -f container/Containerfile.multiarch "$CTX" >/dev/null
if [ -n "$OCI" ]; then
  case "$OCI" in *.tar) dest=oci-archive:$OCI; rm -f "$OCI" ;; *) dest=oci:$OCI; rm -rf "$OCI" ;; esac
  log "podman manifest push --all $IMAGE $dest"
  "${PODMAN[@]}" manifest push --quiet --all --format oci "$IMAGE" "$dest"
fi
echo "$IMAGE"
