#!/usr/bin/env bash
# The release artifacts: static binfmtctl executables for x86_64 and aarch64, and their
# checksums, from this source tree.
#
#   packaging/release.sh [OUTDIR]      (root, for the aarch64 build system; default
#                                       target/release-artifacts)
#   -> OUTDIR/binfmtctl-<version>-x86_64-linux
#      OUTDIR/binfmtctl-<version>-aarch64-linux
#      OUTDIR/SHA256SUMS                (sha256sum -c SHA256SUMS checks them)
#
# x86_64 is built by the host's cargo (the flags of container/, packaging/deb and
# integration-vm/, so they share one build); aarch64 by scripts/build-aarch64.sh, natively in a
# cached Debian forky amd64 system with the arm64 std and the aarch64 cross linker (no
# emulation, no rustup). Both are checked to be static executables of their arch.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
OUT=${1:-target/release-artifacts}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | sed -n 1p)
log() { printf '[release] %s\n' "$*" >&2; }
die() { printf '[release] error: %s\n' "$*" >&2; exit 1; }

log "x86_64: cargo build --release (static)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
X86=target/x86_64-unknown-linux-gnu/release/binfmtctl
log "aarch64: scripts/build-aarch64.sh"
ARM=$(scripts/build-aarch64.sh)

mkdir -p "$OUT"
rm -f "$OUT"/binfmtctl-*-linux "$OUT/SHA256SUMS"
for pair in "x86_64:$X86:x86-64" "aarch64:$ARM:ARM aarch64"; do
  IFS=: read -r arch bin machine <<< "$pair"
  grep -Eq "ELF 64-bit LSB .*$machine.*(statically|static-pie) linked" <<<"$(file "$bin")" ||
    die "$bin is not a static $arch executable: $(file "$bin")"
  install -m 0755 "$bin" "$OUT/binfmtctl-$VERSION-$arch-linux"
done
( cd "$OUT" && sha256sum binfmtctl-"$VERSION"-*-linux > SHA256SUMS && sha256sum -c --quiet SHA256SUMS )
log "done: $OUT"
cat "$OUT/SHA256SUMS"
