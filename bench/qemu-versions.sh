#!/usr/bin/env bash
# Benchmark: Debian's QEMU 7.2 (bookworm) against 10.x (trixie), side by side in one run:
#  1. per-exec start-up: arm64 busybox `true` run by each version's qemu-aarch64 directly
#     (the binfmt_misc dispatch is the same for both, so it is left out), interleaved;
#  2. the emulated Lua build of bench/build-cross-vs-emulate.sh (gcc -O2 inside the bookworm
#     arm64 rootfs), with `binfmtctl qemu use` switching the handler between rounds;
#  3. which arches each version has interpreters for.
# Both versions come from `binfmtctl qemu fetch` (signature-checked) into a scratch store; a
# private binfmt_misc instance is used, the host's stays untouched.
#
#   bench/qemu-versions.sh [EXEC_ROUNDS] [BUILD_ROUNDS]   (default 200 1; root; Linux >= 6.7)
#   QEMU_MIRROR=URL for a mirror other than apt's; CACHE=DIR for the .deb cache
set -euo pipefail
cd "$(dirname "$0")/.."
EXEC_ROUNDS=${1:-200}
BUILD_ROUNDS=${2:-1}
cargo build --release --quiet
export B=$PWD/target/release/binfmtctl
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export S=$W/store
CACHE=${CACHE:-/var/cache/binfmtctl-tests/qemu-store}
mkdir -p "$CACHE"
for v in bookworm trixie; do
  $B -q qemu fetch "$v" --qemu-store "$S" --cache "$CACHE" ${QEMU_MIRROR:+--mirror "$QEMU_MIRROR"} >&2
done
OLD=$(ls "$S" | grep '^7\.'); NEW=$(ls "$S" | grep '^10\.')
export OLD NEW

# 1. start-up
R=$W/root; mkdir -p "$R"; cp target/test-assets/busybox-arm64 "$R/busybox"
now() { date +%s%N; }
for i in $(seq "$EXEC_ROUNDS"); do
  t0=$(now); "$S/$OLD/bin/qemu-aarch64" "$R/busybox" true; t1=$(now)
  "$S/$NEW/bin/qemu-aarch64" "$R/busybox" true; t2=$(now)
  echo "$((t1 - t0)) $((t2 - t1))"
done > "$W/exec"

# 2. the emulated Lua build (sources as in build-cross-vs-emulate.sh)
mkdir -p "$W/fetch/src"; touch "$W/fetch/src/lib.rs"
printf '[package]\nname = "fetch-lua"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlua-src = "=547.0.0"\n' > "$W/fetch/Cargo.toml"
cargo fetch --quiet --manifest-path "$W/fetch/Cargo.toml"
LUA=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/lua-src-547.0.0/lua-5.4.7 | head -1)
export SRC=$W/src; mkdir -p "$SRC"; cp "$LUA"/*.c "$LUA"/*.h "$SRC/"
cp bench/lua/main.c bench/lua/bench.lua "$SRC/"
export ROOTFS=${ROOTFS:-/var/cache/binfmtctl-tests/bookworm-arm64-gxx-make}
[ -x "$ROOTFS/usr/bin/gcc" ] || { echo "no arm64 gcc rootfs at $ROOTFS: run tests/emulate.rs once or set ROOTFS" >&2; exit 3; }
export BUILD_ROUNDS
unshare --user --map-root-user --mount bash -c '
set -euo pipefail
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
$B -q install arm64 --qemu "$OLD" --qemu-store "$S"
now() { date +%s%N; }
for i in $(seq "$BUILD_ROUNDS"); do
  for v in "$OLD" "$NEW"; do
    $B -q qemu use "$v" --qemu-store "$S" >/dev/null
    rm -f "$SRC/lua"
    t0=$(now)
    $B build --arch arm64 --strategy emulate --rootfs "$ROOTFS" --src "$SRC" -- sh -c "gcc -O2 -o lua *.c -lm" 2>/dev/null
    t1=$(now)
    out=$($B run --rootfs "$ROOTFS" --bind "$SRC:/src" -- /src/lua /src/bench.lua 2>/dev/null)
    echo "$v $(( (t1 - t0) / 1000000 )) $out"
  done
done' > "$W/build"

python3 - "$W/exec" "$W/build" "$S/$OLD/manifest.json" "$S/$NEW/manifest.json" <<'PY'
import json, statistics, sys
ex = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
old, new = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
o = statistics.median(r[0] for r in ex) / 1e6
n = statistics.median(r[1] for r in ex) / 1e6
print(f"QEMU {old['debian_version']} ({old['suite']}) vs {new['debian_version']} ({new['suite']})")
print()
print(f"per-exec start-up, arm64 busybox true run by qemu-aarch64 directly, {len(ex)} interleaved rounds:")
print()
print("| QEMU | median ms | ratio |")
print("|---|---|---|")
print(f"| {old['version']} | {o:.1f} | 1.00 |")
print(f"| {new['version']} | {n:.1f} | {n / o:.2f} |")
print()
rows = [l.split(maxsplit=2) for l in open(sys.argv[2])]
b = {v: statistics.median(int(r[1]) for r in rows if r[0] == v) / 1000 for v in (old['version'], new['version'])}
outs = {r[2].strip() for r in rows}
print(f"emulated Lua build (gcc -O2, arm64 bookworm rootfs), {len(rows) // 2} interleaved round(s):")
print()
print("| QEMU | median wall time | ratio |")
print("|---|---|---|")
bo, bn = b[old['version']], b[new['version']]
print(f"| {old['version']} | {bo:.1f} s | 1.00 |")
print(f"| {new['version']} | {bn:.1f} s | {bn / bo:.2f} |")
print()
print(f"the built interpreters print: {' / '.join(sorted(outs))}")
co = {f['cpu'] for f in old['files']}; cn = {f['cpu'] for f in new['files']}
print()
print(f"interpreters: {len(co)} in {old['version']}, {len(cn)} in {new['version']}; "
      f"added: {', '.join(sorted(cn - co)) or 'none'}; dropped: {', '.join(sorted(co - cn)) or 'none'}")
PY
