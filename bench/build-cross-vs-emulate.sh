#!/usr/bin/env bash
# Benchmark: build the same real C code base for aarch64 both ways — native cross-compilation
# (`binfmtctl build --strategy cross`) and inside an emulated arm64 chroot (`--strategy
# emulate`) — interleaved in one run, then check both results run and print the same.
#
# Code base: the Lua 5.4.7 interpreter library (32 files, ~23k lines of C), taken from the
# `lua-src` crate on crates.io (the only source registry reachable here), plus a 10-line driver.
#
#   bench/build-cross-vs-emulate.sh [ROUNDS]   (default 2; root; Linux >= 6.7 or an arm64 handler)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
cargo build --release --quiet
B=$PWD/target/release/binfmtctl
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

# The source, via cargo's own download of the crate.
mkdir -p "$W/fetch/src"; touch "$W/fetch/src/lib.rs"
printf '[package]\nname = "fetch-lua"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlua-src = "=547.0.0"\n' > "$W/fetch/Cargo.toml"
cargo fetch --quiet --manifest-path "$W/fetch/Cargo.toml"
LUA=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/lua-src-547.0.0/lua-5.4.7 | sed -n 1p)
mkdir -p "$W/src"; cp "$LUA"/*.c "$LUA"/*.h "$W/src/"
cp bench/lua/main.c bench/lua/bench.lua "$W/src/"

# The arm64 rootfs with a compiler (made once, by binfmtctl itself).
ROOTFS=${ROOTFS:-/var/cache/binfmtctl-tests/bookworm-arm64-gxx-make}
if [ ! -x "$ROOTFS/usr/bin/gcc" ]; then
  ROOTFS=target/bench/rootfs-arm64-gcc
  [ -x "$ROOTFS/usr/bin/gcc" ] || { rm -rf "$ROOTFS"; $B rootfs create --arch arm64 --include gcc,libc6-dev "$ROOTFS" >&2; }
fi

now() { date +%s%N; }
CMD='gcc -O2 -o $OUT *.c -lm'
for i in $(seq "$ROUNDS"); do
  rm -f "$W/src/lua-cross" "$W/src/lua-emul"
  t0=$(now)
  $B build --arch arm64 --strategy cross --src "$W/src" -- sh -c '$CC -O2 -o lua-cross *.c -lm' 2>/dev/null
  t1=$(now)
  $B build --arch arm64 --strategy emulate --rootfs "$ROOTFS" --src "$W/src" -- sh -c 'gcc -O2 -o lua-emul *.c -lm' 2>/dev/null
  t2=$(now)
  echo "$(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))" >> "$W/times"
done
[ "$($B inspect "$W/src/lua-cross" "$W/src/lua-emul" | grep -c 'machine 183 = aarch64')" = 2 ]
out=$($B run --rootfs "$ROOTFS" --bind "$W/src:/src" -- sh -c '/src/lua-cross /src/bench.lua; /src/lua-emul /src/bench.lua' 2>/dev/null)
[ "$(echo "$out" | sed -n 1p)" = "$(echo "$out" | sed -n 2p)" ] || { echo "outputs differ: $out" >&2; exit 1; }

python3 - "$W/times" "$(ls "$W"/src/*.c | wc -l)" "$(cat "$W"/src/*.c | wc -l)" "$(echo "$out" | sed -n 1p)" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
c = statistics.median(r[0] for r in rows) / 1000
e = statistics.median(r[1] for r in rows) / 1000
print(f"Lua 5.4.7 + driver: {sys.argv[2]} C files, {sys.argv[3]} lines, gcc -O2, one gcc process, {len(rows)} interleaved rounds")
print()
print("| strategy | median wall time | ratio |")
print("|---|---|---|")
print(f"| cross (aarch64-linux-gnu-gcc on the host) | {c:.1f} s | 1.0 |")
print(f"| emulate (gcc inside the arm64 rootfs under qemu-aarch64) | {e:.1f} s | {e / c:.1f}x |")
print()
print(f"both binaries are aarch64 and print: {sys.argv[4]}")
PY
