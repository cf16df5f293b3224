#!/usr/bin/env bash
# Installs everything binfmtctl's build and tests need on Debian 12 (run as root), and fetches
# the real foreign binaries the tests execute into $ASSETS (default: target/test-assets).
#
#   scripts/deps.sh            packages + test assets
#   scripts/deps.sh --runtime  only what `binfmtctl install` needs (qemu-user-static)
#   scripts/deps.sh --busybox ARCH   also fetch busybox-static:ARCH into $ASSETS
#
# Idempotent: installed packages and fetched assets are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_PKGS=(qemu-user-static)
TEST_PKGS=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
  util-linux time binutils file tar mmdebstrap arch-test libpipeline1 systemd podman runc
  qemu-system-x86 qemu-system-arm cpio busybox-static kmod python3-minimal
  dpkg-dev lintian man-db nix-bin openssh-client curl
  # Hybrid builds beyond gcc (tests/hybrid_clang.rs, tests/hybrid_rust.rs): the host's clang and
  # Debian's own Rust, of the versions the bookworm test rootfs has (never used to build binfmtctl).
  clang-14 rustc cargo libstd-rust-dev)
# Debian architectures whose busybox-static the integration tests run (i386 runs natively).
FOREIGN_ARCHES=(arm64 armhf armel mips64el mipsel ppc64el s390x i386)
ASSETS=${ASSETS:-target/test-assets}

log() { printf '[deps] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "run as root: it installs Debian packages"; exit 3
  fi
}

apt_update_done=
apt_update() {
  [ -n "$apt_update_done" ] && return 0
  # A mirror in the middle of a sync can fail one index; the others are still usable.
  apt-get update -q >/dev/null 2>&1 || apt-get update -q >/dev/null 2>&1 || log "apt-get update reported errors; continuing with what was fetched"
  apt_update_done=1
}

install_pkgs() {
  local missing=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# Foreign packages are only downloaded (never installed), but apt needs their architectures
# enabled to know them.
enable_arches() {
  local added= foreign
  for a in "$@"; do
    [ "$a" = "$(dpkg --print-architecture)" ] && continue
    # Captured, not piped: dpkg writes a line at a time, and a `grep -q` that stops early
    # would kill it with SIGPIPE, which pipefail reports as "not enabled".
    foreign=$(dpkg --print-foreign-architectures)
    grep -qx "$a" <<<"$foreign" || { dpkg --add-architecture "$a"; added=1; }
  done
  [ -n "$added" ] && apt_update_done=
  return 0
}

# fetch_member PKG:ARCH MEMBER OUT: one file out of a Debian package, without installing it.
fetch_member() {
  local pkg=$1 member=$2 out=$3
  [ -x "$out" ] && return 0
  apt_update
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null )
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  install -m 0755 "$tmp/root/$member" "$out"
  rm -rf "$tmp"
  log "fetched $member from $pkg"
}

fetch_busybox() { fetch_member "busybox-static:$1" bin/busybox "$ASSETS/busybox-$1"; }

build_riscv64() {
  local out="$ASSETS/hello-riscv64"
  [ -x "$out" ] && return 0
  cat > "$ASSETS/hello.c" <<'C'
#include <stdio.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("hello from %s argv0=%s\n", u.machine, argv[0]);
    return argc > 1 ? 7 : 0;
}
C
  riscv64-linux-gnu-gcc -static -O2 -o "$out" "$ASSETS/hello.c"
  log "built $out with riscv64-linux-gnu-gcc -static"
}

# A Nix builder for riscv64-linux (tests/nix.rs): writes `uname -m` into $out.
build_nix_builder() {
  local out="$ASSETS/nix-builder-riscv64"
  [ -x "$out" ] && return 0
  cat > "$ASSETS/nix-builder.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
int main(void) {
    struct utsname u;
    const char *out = getenv("out");
    if (!out || uname(&u) != 0) return 2;
    FILE *f = fopen(out, "w");
    if (!f) return 3;
    fprintf(f, "%s\n", u.machine);
    return fclose(f) == 0 ? 0 : 4;
}
C
  riscv64-linux-gnu-gcc -static -O2 -o "$out" "$ASSETS/nix-builder.c"
  log "built $out with riscv64-linux-gnu-gcc -static"
}

# openssh-server (the remote-builder test runs its own sshd on 127.0.0.1): its maintainer
# scripts enable and start the system's sshd. A policy-rc.d that refuses service starts is put
# in place for the install (unless one exists), and on systemd the units are disabled and
# stopped again, so the machine runs no sshd that it did not run before.
install_sshd_quietly() {
  [ "$(dpkg-query -W -f='${Status}' openssh-server 2>/dev/null)" = "install ok installed" ] && return 0
  local policy=/usr/sbin/policy-rc.d ours=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    ours=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  install_pkgs openssh-server
  if [ -n "$ours" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  if [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
  log "installed openssh-server without starting or enabling its service"
}

# podman works here only with runc, cgroupfs and no default ulimits (see docs/deploy.md).
containers_conf() {
  local f=/etc/containers/containers.conf
  if [ ! -f "$f" ]; then
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n' > "$f"
    log "wrote $f"
  elif ! grep -q 'default_ulimits' "$f"; then
    log "warning: $f has no 'default_ulimits = []' under [containers]; podman may fail here"
  fi
}

main() {
  need_root
  install_pkgs "${RUNTIME_PKGS[@]}"
  if [ "${1:-}" = --runtime ]; then return 0; fi
  if [ "${1:-}" = --busybox ]; then
    mkdir -p "$ASSETS"; enable_arches "$2"; fetch_busybox "$2"; return 0
  fi
  install_pkgs "${TEST_PKGS[@]}"
  install_sshd_quietly
  containers_conf
  mkdir -p "$ASSETS"
  enable_arches "${FOREIGN_ARCHES[@]}"
  for a in "${FOREIGN_ARCHES[@]}"; do fetch_busybox "$a"; done
  # A dynamically linked foreign program (its loader is not on this host).
  fetch_member hello:arm64 usr/bin/hello "$ASSETS/hello-arm64-dynamic"
  # binfmt-support's update-binfmts, to check our export against it; extracted, not installed
  # (its maintainer scripts would register formats on this machine).
  fetch_member binfmt-support usr/sbin/update-binfmts "$ASSETS/update-binfmts"
  build_riscv64
  build_nix_builder
}

main "$@"
