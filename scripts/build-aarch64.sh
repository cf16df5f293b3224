#!/usr/bin/env bash
# Builds binfmtctl as a static aarch64-unknown-linux-gnu executable on this x86_64 machine,
# natively (no emulation): inside a Debian forky amd64 root file system that has Debian's
# rustc/cargo (forky's are new enough for our rust-version; trixie's 1.85 is not), the arm64
# std (libstd-rust-dev:arm64) and the aarch64 cross gcc as linker. rustup is not needed.
#
#   scripts/build-aarch64.sh            (root; mmdebstrap: scripts/deps.sh installs it)
#       -> target/aarch64-unknown-linux-gnu/release/binfmtctl
#
# The build system is made once with mmdebstrap and cached in $BUILD_ROOT_CACHE (default
# /var/cache/binfmtctl-build/forky-amd64-arm64; CI keeps it); it is remade when this script's
# package list changes. The crates are vendored on the host (`cargo vendor --locked`, from
# crates.io or cargo's cache) so the build inside is offline and locked. The source tree is
# bind-mounted at /src; the build's own target directory stays in the cache (target-aarch64/),
# so rebuilds are incremental, and the result is copied out.
#
# Variables: BUILD_ROOT_CACHE (the cached system), MIRROR (default: apt's deb.debian.org
# mirror), SUITE (default forky). forky is Debian testing: its InRelease on a dated snapshot
# mirror is past Valid-Until, so mmdebstrap is told not to check it (as apt is here).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
SUITE=${SUITE:-forky}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${BUILD_ROOT_CACHE:-/var/cache/binfmtctl-build/$SUITE-amd64-arm64}
TARGET=aarch64-unknown-linux-gnu
PACKAGES=rustc,cargo,libstd-rust-dev:arm64,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross,ca-certificates
# rustup's toolchain first: Debian's own cargo (1.65, installed for the hybrid Rust tests) is
# too old to build binfmtctl.
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
log() { printf '[aarch64] %s\n' "$*" >&2; }
die() { printf '[aarch64] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap and chroot): run it with sudo"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap (scripts/deps.sh)"

# 1. The build system (cached; one at a time: flock).
mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
flock 9
stamp="$SUITE $MIRROR $PACKAGES"
if [ ! -f "$CACHE/.binfmtctl-build" ] || [ "$(cat "$CACHE/.binfmtctl-build")" != "$stamp" ]; then
  log "making the $SUITE amd64+arm64 build system in $CACHE (once; about a minute)"
  rm -rf "$CACHE" "$CACHE.new"
  mmdebstrap --quiet --variant=apt --architectures=amd64,arm64 --include="$PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    "$SUITE" "$CACHE.new" "deb $MIRROR $SUITE main"
  printf '%s' "$stamp" > "$CACHE.new/.binfmtctl-build"
  mv "$CACHE.new" "$CACHE"
fi
log "build system: $(chroot "$CACHE" rustc --version), $(chroot "$CACHE" aarch64-linux-gnu-gcc --version | sed -n 1p)"

# 2. The crates, vendored on the host (the chroot has no network).
VENDOR=$CACHE/vendor
if [ ! -f "$VENDOR/.lock-sha256" ] || [ "$(cat "$VENDOR/.lock-sha256")" != "$(sha256sum < Cargo.lock)" ]; then
  log "vendoring the crates of Cargo.lock"
  rm -rf "$VENDOR"
  cargo vendor --locked --quiet "$VENDOR" > /dev/null
  sha256sum < Cargo.lock > "$VENDOR/.lock-sha256"
fi

# 3. The build, inside, offline. Only /proc is mounted (mmdebstrap made /dev); the source is
# bind-mounted read-only in a private mount namespace, so nothing outlives this script.
mkdir -p "$CACHE/src" "$CACHE/target-aarch64" "$CACHE/cargo-home"
cat > "$CACHE/cargo-home/config.toml" <<'EOF'
[source.crates-io]
replace-with = "vendored"
[source.vendored]
directory = "/vendor"
EOF
log "cargo build --release --target $TARGET (static)"
unshare --mount --propagation private sh -euc '
  mount --bind -o ro "$1" "$2/src"
  mount -t proc proc "$2/proc"
  exec chroot "$2" env -i PATH=/usr/bin:/bin HOME=/root CARGO_HOME=/cargo-home \
    CARGO_TARGET_DIR=/target-aarch64 \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    RUSTFLAGS="-C target-feature=+crt-static" \
    sh -c "cd /src && cargo build --offline --locked --release --quiet --target $3"
' sh "$SRC" "$CACHE" "$TARGET"
OUT=target/$TARGET/release
mkdir -p "$OUT"
install -m 0755 "$CACHE/target-aarch64/$TARGET/release/binfmtctl" "$OUT/binfmtctl"
grep -Eq 'ARM aarch64.*(statically|static-pie) linked' <<<"$(file "$OUT/binfmtctl")" ||
  die "$OUT/binfmtctl is not a static aarch64 executable: $(file "$OUT/binfmtctl")"
log "done: $OUT/binfmtctl"
echo "$OUT/binfmtctl"
