#!/usr/bin/env bash
# Tests the Debian package for real (as root):
#   1. builds it (packaging/deb/build.sh) unless a .deb is given;
#   2. lintian: fails on any error or warning not overridden in packaging/deb/lintian-overrides,
#      on an override without a comment saying why, and on an override that no longer applies;
#   3. installs it with dpkg into a fresh Debian 12 system, runs `binfmtctl --help`, renders the
#      man pages, `systemd-analyze verify`s the unit, exercises the bash, zsh and fish
#      completions, enables the unit, purges the package and checks that nothing of it remains
#      (packaging/deb/check-in-rootfs.sh).
#
#   packaging/deb/test.sh [DEB]
#
# The Debian system (minbase + man-db, systemd, zsh, fish) is made once with
# `binfmtctl rootfs create --arch amd64` and cached in $CACHE (default
# /var/cache/binfmtctl-tests). Each run works on an overlay of it inside a private mount and pid
# namespace: the cache is never written, and every mount and process ends with the run.
# No service is started (policy-rc.d, and no systemd runs in there).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
HERE=packaging/deb
CACHE=${CACHE:-/var/cache/binfmtctl-tests}
BASE=$CACHE/bookworm-amd64-deb
INCLUDE=man-db,systemd,zsh,fish
BIN=target/x86_64-unknown-linux-gnu/release/binfmtctl

log() { printf '[deb-test] %s\n' "$*" >&2; }
die() { printf '[deb-test] FAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { log "run as root: it installs the package into a chroot"; exit 3; }

# 1. The package.
if [ $# -ge 1 ]; then DEB=$1; else DEB=$("$HERE/build.sh"); fi
[ -f "$DEB" ] || die "no package at $DEB"
VERSION=$(dpkg-deb -f "$DEB" Version)
log "testing $DEB"

# 2. lintian.
awk '/^#/ { c = 1; next } /^[[:space:]]*$/ { c = 0; next }
     { if (!c) { print FILENAME ":" NR ": override without a comment above it: " $0; bad = 1 } }
     END { exit bad }' "$HERE/lintian-overrides" || die "explain every lintian override"
lint=$(lintian --fail-on error,warning --display-info "$DEB" 2>&1) || { echo "$lint" >&2; die "lintian"; }
if grep -E '^[EW]: |unused-override|mismatched-override' <<<"$lint" >&2; then die "lintian"; fi
log "lintian: no error or warning ($(grep -c '^I: ' <<<"$lint" || true) info tags)"
# The install test runs the packaged binary in an amd64 system: a package for another arch
# (DEB_ARCH=arm64 packaging/deb/build.sh) is checked up to here, its binary by the arm64 VM
# test (integration-vm/arm64.sh).
deb_arch=$(dpkg-deb -f "$DEB" Architecture)
if [ "$deb_arch" != amd64 ]; then
  file_of=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/bin/binfmtctl | file -)
  case $deb_arch in
    arm64) grep -Eq 'ARM aarch64.*(statically|static-pie) linked' <<<"$file_of" || die "not a static aarch64 binary: $file_of" ;;
  esac
  log "$deb_arch: lintian-clean, /usr/bin/binfmtctl is a static $deb_arch executable; install test is amd64-only"
  exit 0
fi

# 3. The cached Debian system: made once, under the cache's lock, complete or not at all.
have_base() {
  [ -x "$BASE/usr/bin/man" ] && [ -x "$BASE/usr/bin/systemd-analyze" ] &&
    [ -x "$BASE/usr/bin/zsh" ] && [ -x "$BASE/usr/bin/fish" ]
}
if ! have_base; then
  mkdir -p "$CACHE"
  exec {lock}>"$CACHE/lock"
  flock "$lock"
  if ! have_base; then
    [ -x "$BIN" ] || RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
    tmp=$BASE.tmp
    rm -rf --one-file-system "$tmp" "$BASE"
    log "creating the Debian system in $BASE (once)"
    "$BIN" rootfs create --arch amd64 --include "$INCLUDE" "$tmp" >&2
    mv "$tmp" "$BASE"
  fi
  flock -u "$lock"
  exec {lock}>&-
fi

# 4. Install, use, purge, inside an overlay of it.
WORK=$(mktemp -d /var/tmp/binfmtctl-deb-test.XXXXXX)
trap 'rm -rf --one-file-system "$WORK"' EXIT
mkdir "$WORK/upper" "$WORK/work" "$WORK/root"
install -m 0644 "$DEB" "$WORK/pkg.deb"
install -m 0755 "$HERE/check-in-rootfs.sh" "$WORK/check.sh"
rc=0
unshare --mount --propagation private --pid --fork --kill-child -- \
  env WORK="$WORK" BASE="$BASE" VERSION="$VERSION" bash -euc '
    R=$WORK/root
    mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/work" "$R"
    mount -t proc proc "$R/proc"
    # The cached system has no device nodes (rootfs create skips mknod): bind the few needed.
    mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
    for d in null zero full random urandom; do
      touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
    done
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
    cp "$WORK/pkg.deb" "$WORK/check.sh" "$R/tmp/"
    chroot "$R" /usr/bin/env -i VERSION="$VERSION" /bin/bash /tmp/check.sh
  ' || rc=$?
if findmnt -rn -o TARGET | grep -F "$WORK" >/dev/null; then die "mounts left behind under $WORK"; fi
[ "$rc" = 0 ] || die "the package failed in the Debian system (exit $rc)"
log "ok: $DEB built, lintian-clean, installed, used and purged without a trace"
