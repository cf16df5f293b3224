#!/usr/bin/env bash
# The one command to get going on Debian 12 (as root): installs Debian's static QEMU, builds
# and installs binfmtctl to /usr/local/bin, registers arm64 and riscv64 with the kernel, and
# runs a real foreign binary (Debian's busybox-static for arm64) to show it works.
#
# Undo with: binfmtctl uninstall all
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (it installs packages and registers emulators)" >&2; exit 3; }

# rustup's toolchain first: Debian's own cargo (1.65, installed for the hybrid Rust tests) is
# too old to build binfmtctl.
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
# The crate's rust-version, from Cargo.toml.
need=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
cargo_new_enough() {
  command -v cargo >/dev/null 2>&1 || return 1
  printf '%s\n%s\n' "$need" "$(cargo --version | awk '{print $2}')" | sort -V -C
}
if ! cargo_new_enough; then
  # Debian 12's own cargo (1.65) is too old for this crate; rustup is the supported way.
  echo "quickstart: installing the Rust toolchain with rustup" >&2
  command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl ca-certificates >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
  export PATH="$HOME/.cargo/bin:$PATH"
fi

scripts/deps.sh --runtime
scripts/deps.sh --busybox arm64
cargo build --release --locked --quiet
install -m 0755 target/release/binfmtctl /usr/local/bin/binfmtctl

binfmtctl install arm64,riscv64
echo
echo "\$ target/test-assets/busybox-arm64 uname -m    # Debian's busybox-static:arm64"
target/test-assets/busybox-arm64 uname -m
binfmtctl status
