#!/usr/bin/env bash
# Benchmark: cross vs hybrid vs emulate for a real Rust program, ripgrep 13.0.0 (its own
# Cargo.lock; ~11k lines of its own, ~45k with BurntSushi's grep-*/ignore/globset crates), with
# Debian's Rust 1.63 on both sides (docs/hybrid.md, "Rust"):
#
#   cross    the host's Debian cargo: cargo build --release --target aarch64-unknown-linux-gnu,
#            linked by aarch64-linux-gnu-gcc; the aarch64 std is the rootfs's (the host has
#            Debian's x86_64 libstd-rust-dev only), given with --sysroot in RUSTFLAGS
#   hybrid   binfmtctl run --accelerate: cargo build --release in the arm64 chroot
#   emulate  binfmtctl run: the same, the rootfs's own cargo and rustc under qemu-aarch64
#
# The crates are vendored once (cargo vendor --locked, with the cargo on PATH) under $CACHE;
# the chroot builds see the project at /src and the crates at /vendor, so hybrid and emulate
# compile the same paths. Each build starts from a fresh copy. Then the three programs run on
# a fixed input (ripgrep's own source tree) and must print the same; the hybrid and emulated
# programs are compared byte for byte.
#
#   [EMULATE=0] bench/hybrid-rust.sh    (root; Linux >= 6.7 or an arm64 handler;
#                                        Debian's rustc, cargo, libstd-rust-dev 1.63 and
#                                        gcc-aarch64-linux-gnu on the host)
# The rootfs (bookworm arm64 with rustc, cargo, libstd-rust-dev, gcc) is $ROOTFS, by default
# the tests' /var/cache/binfmtctl-tests/bookworm-arm64-clang-rust.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BINFMTCTL:-}" ]; then B=$(realpath "$BINFMTCTL"); else
  cargo build --release --quiet --locked; B=$PWD/target/release/binfmtctl; fi
ROOTFS=$(realpath "${ROOTFS:-/var/cache/binfmtctl-tests/bookworm-arm64-clang-rust}")
CACHE=${CACHE:-/var/cache/binfmtctl-bench}
EMULATE=${EMULATE:-1}
V=13.0.0
SRC=$CACHE/ripgrep-$V VENDOR=$CACHE/ripgrep-$V-vendor
mkdir -p "$CACHE"
if [ ! -f "$SRC/Cargo.lock" ]; then
  curl -sSfL -o "$CACHE/ripgrep-$V.crate" "https://static.crates.io/crates/ripgrep/ripgrep-$V.crate"
  echo "f37c9d2c2bc7e00bd2653e13771397b94e452583da9b9494eabef627618d64bf  $CACHE/ripgrep-$V.crate" | sha256sum -c --quiet
  tar -xzf "$CACHE/ripgrep-$V.crate" -C "$CACHE"
fi
if [ ! -f "$VENDOR.complete" ]; then
  rm -rf "$VENDOR"; (cd "$SRC" && cargo vendor --locked --quiet "$VENDOR" >/dev/null); touch "$VENDOR.complete"
fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fresh() { # fresh DIR: the source and a config replacing crates.io with the vendored crates at $2
  rm -rf "$1"; cp -a "$SRC" "$1"; mkdir -p "$1/.cargo"
  printf '[source.crates-io]\nreplace-with = "v"\n[source.v]\ndirectory = "%s"\n' "$2" > "$1/.cargo/config.toml"
}
now() { date +%s%N; }
secs() { echo "scale=1; ($2 - $1) / 1000000000" | bc; }
T=aarch64-unknown-linux-gnu

# cross: the host's Debian cargo; a sysroot with the host's std and the rootfs's aarch64 std.
mkdir -p "$W/sysroot/lib/rustlib"
ln -s /usr/lib/rustlib/x86_64-unknown-linux-gnu "$W/sysroot/lib/rustlib/"
ln -s "$ROOTFS/usr/lib/rustlib/$T" "$W/sysroot/lib/rustlib/"
fresh "$W/cross" "$VENDOR"
t0=$(now)
(cd "$W/cross" && RUSTC=/usr/bin/rustc RUSTFLAGS="--sysroot $W/sysroot" /usr/bin/cargo build --release --offline --quiet \
  --target $T --config "target.$T.linker=\"aarch64-linux-gnu-gcc\"")
t1=$(now); CROSS=$(secs "$t0" "$t1")
echo "cross:   ${CROSS}s"

chroot_build() { # chroot_build NAME [--accelerate]
  fresh "$W/$1" /vendor
  local t0 t1
  t0=$(now)
  "$B" run "${@:2}" --rootfs "$ROOTFS" --bind "$W/$1:/src" --bind "$VENDOR:/vendor:ro" \
    --workdir /src -- cargo build --release --offline --quiet 2> "$W/$1.err" || { cat "$W/$1.err"; exit 1; }
  t1=$(now); secs "$t0" "$t1"
}
HYBRID=$(chroot_build hybrid --accelerate)
echo "hybrid:  ${HYBRID}s"
grep accelerate: "$W/hybrid.err" | sed 's/^/  /'

# The programs on a fixed input: ripgrep's own tree searched for a fixed pattern, hashed.
digest() { # digest DIR PROGRAM-INSIDE
  "$B" run --rootfs "$ROOTFS" --bind "$1:/src" --bind "$SRC:/data:ro" -- "$2" -n --sort path 'fn search' /data/crates 2>/dev/null | sha256sum | cut -c1-16
}
echo "output (sha256 of rg -n --sort path 'fn search' crates/): cross $(digest "$W/cross" /src/target/$T/release/rg), hybrid $(digest "$W/hybrid" /src/target/$T/release/rg)"
"$B" run --rootfs "$ROOTFS" --bind "$W/hybrid:/src" --bind "$SRC:/data:ro" -- /src/target/$T/release/rg -c 'fn search' /data/crates 2>/dev/null | wc -l | sed 's/^/  files matching: /'
if cmp -s "$W/cross/target/$T/release/rg" "$W/hybrid/target/$T/release/rg"; then echo "cross vs hybrid: byte-identical"
else echo "cross vs hybrid: differ (built at other paths, linked with the host's cross libc)"; fi

if [ "$EMULATE" = 1 ]; then
  EMU=$(chroot_build emulate)
  echo "emulate: ${EMU}s"
  echo "output: emulate $(digest "$W/emulate" /src/target/release/rg)"
  if cmp -s "$W/hybrid/target/$T/release/rg" "$W/emulate/target/release/rg"; then
    echo "hybrid vs emulate: byte-identical"
  else
    echo "hybrid vs emulate: differ; sections that differ:"
    for f in hybrid/target/$T/release/rg emulate/target/release/rg; do
      aarch64-linux-gnu-objdump -h "$W/$f" | awk '/^ *[0-9]+ /{print $2}' | while read -r s; do
        printf '%s %s\n' "$s" "$(aarch64-linux-gnu-objcopy -O binary --only-section="$s" "$W/$f" /dev/stdout 2>/dev/null | sha256sum | cut -c1-12)"; done > "$W/${f%%/*}.sections"
    done
    diff "$W/hybrid.sections" "$W/emulate.sections" | sed 's/^/  /' || true
  fi
  echo "hybrid/cross $(echo "scale=2; $HYBRID / $CROSS" | bc)x, emulate/hybrid $(echo "scale=1; $EMU / $HYBRID" | bc)x"
else
  echo "hybrid/cross $(echo "scale=2; $HYBRID / $CROSS" | bc)x (emulate skipped: EMULATE=0)"
fi
