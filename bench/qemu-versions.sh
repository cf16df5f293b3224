#!/usr/bin/env bash
# Benchmark: Debian's QEMU versions side by side in one run — 7.2 (bookworm), 10.0 (trixie) and
# 11.1 (forky, testing) by default:
#  1. per-exec start-up: arm64 busybox `true` run by each version's qemu-aarch64 directly
#     (the binfmt_misc dispatch is the same for all, so it is left out), interleaved;
#  2. the emulated Lua build of bench/build-cross-vs-emulate.sh (gcc -O2 inside the bookworm
#     arm64 rootfs), with `binfmtctl qemu use` switching the handler between rounds
#     (BUILD_ROUNDS=0 leaves it out);
#  3. which arches each version has interpreters for.
# Every version comes from `binfmtctl qemu fetch SUITE` (signature-checked) into a scratch store;
# a private binfmt_misc instance is used, the host's stays untouched. forky's InRelease on a
# dated snapshot mirror is past its Valid-Until: apt's own Acquire::Check-Valid-Until "false"
# (or a source's check-valid-until=no) lets binfmtctl read it, as it lets apt (docs/qemu.md).
#
#   bench/qemu-versions.sh [EXEC_ROUNDS] [BUILD_ROUNDS]   (default 200 1; root; Linux >= 6.7)
#   SUITES="bookworm trixie forky" to choose; QEMU_MIRROR=URL for a mirror other than apt's;
#   CACHE=DIR for the .deb cache; B=PATH to use that binfmtctl instead of a release build
#   (binfmtctl's own speed is not measured here)
set -euo pipefail
cd "$(dirname "$0")/.."
EXEC_ROUNDS=${1:-200}
BUILD_ROUNDS=${2:-1}
SUITES=${SUITES:-bookworm trixie forky}
if [ -z "${B:-}" ]; then
  cargo build --release --quiet
  B=$PWD/target/release/binfmtctl
fi
export B
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export S=$W/store
CACHE=${CACHE:-/var/cache/binfmtctl-tests/qemu-store}
ASSETS=${ASSETS:-target/test-assets}
mkdir -p "$CACHE"
VERS=()
for s in $SUITES; do
  $B -q qemu fetch "$s" --qemu-store "$S" --cache "$CACHE" ${QEMU_MIRROR:+--mirror "$QEMU_MIRROR"} >&2
  VERS+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$(grep -l "\"suite\": \"$s\"" "$S"/*/manifest.json | sed -n 1p)")")
done
export VERSIONS="${VERS[*]}"

# 1. start-up
R=$W/root; mkdir -p "$R"; cp "$ASSETS/busybox-arm64" "$R/busybox"
now() { date +%s%N; }
for i in $(seq "$EXEC_ROUNDS"); do
  line=""
  for v in "${VERS[@]}"; do
    t0=$(now); "$S/$v/bin/qemu-aarch64" "$R/busybox" true; t1=$(now)
    line="$line $((t1 - t0))"
  done
  echo "$line"
done > "$W/exec"

# 2. the emulated Lua build (sources as in build-cross-vs-emulate.sh)
: > "$W/build"
if [ "$BUILD_ROUNDS" -gt 0 ]; then
mkdir -p "$W/fetch/src"; touch "$W/fetch/src/lib.rs"
printf '[package]\nname = "fetch-lua"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlua-src = "=547.0.0"\n' > "$W/fetch/Cargo.toml"
cargo fetch --quiet --manifest-path "$W/fetch/Cargo.toml"
LUA=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/lua-src-547.0.0/lua-5.4.7 | sed -n 1p)
export SRC=$W/src; mkdir -p "$SRC"; cp "$LUA"/*.c "$LUA"/*.h "$SRC/"
cp bench/lua/main.c bench/lua/bench.lua "$SRC/"
export ROOTFS=${ROOTFS:-/var/cache/binfmtctl-tests/bookworm-arm64-gxx-make}
[ -x "$ROOTFS/usr/bin/gcc" ] || { echo "no arm64 gcc rootfs at $ROOTFS: run tests/emulate.rs once or set ROOTFS" >&2; exit 3; }
export BUILD_ROUNDS
unshare --user --map-root-user --mount bash -c '
set -euo pipefail
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
first=${VERSIONS%% *}
$B -q install arm64 --qemu "$first" --qemu-store "$S"
now() { date +%s%N; }
for i in $(seq "$BUILD_ROUNDS"); do
  for v in $VERSIONS; do
    $B -q qemu use "$v" --qemu-store "$S" >/dev/null
    rm -f "$SRC/lua"
    t0=$(now)
    $B build --arch arm64 --strategy emulate --rootfs "$ROOTFS" --src "$SRC" -- sh -c "gcc -O2 -o lua *.c -lm" 2>/dev/null
    t1=$(now)
    out=$($B run --rootfs "$ROOTFS" --bind "$SRC:/src" -- /src/lua /src/bench.lua 2>/dev/null)
    echo "$v $(( (t1 - t0) / 1000000 )) $out"
  done
done' > "$W/build"
fi

python3 - "$W/exec" "$W/build" "$S" "${VERS[@]}" <<'PY'
import json, statistics, sys
exec_file, build_file, store, *vers = sys.argv[1:]
ms = [json.load(open(f"{store}/{v}/manifest.json")) for v in vers]
ex = [list(map(int, l.split())) for l in open(exec_file)]
print(" vs ".join(f"QEMU {m['debian_version']} ({m['suite']}{', InRelease past Valid-Until' if m.get('expired') else ''})" for m in ms))
print()
print(f"per-exec start-up, arm64 busybox true run by qemu-aarch64 directly, {len(ex)} interleaved rounds:")
print()
print("| QEMU | median ms | ratio |")
print("|---|---|---|")
med = [statistics.median(r[i] for r in ex) / 1e6 for i in range(len(vers))]
for m, t in zip(ms, med):
    print(f"| {m['version']} | {t:.1f} | {t / med[0]:.2f} |")
rows = [l.split(maxsplit=2) for l in open(build_file)]
if rows:
    print()
    b = {v: statistics.median(int(r[1]) for r in rows if r[0] == v) / 1000 for v in vers}
    outs = {r[2].strip() for r in rows}
    print(f"emulated Lua build (gcc -O2, arm64 bookworm rootfs), {len(rows) // len(vers)} interleaved round(s):")
    print()
    print("| QEMU | median wall time | ratio |")
    print("|---|---|---|")
    for v in vers:
        print(f"| {v} | {b[v]:.1f} s | {b[v] / b[vers[0]]:.2f} |")
    print()
    print(f"the built interpreters print: {' / '.join(sorted(outs))}")
cpus = [{f['cpu'] for f in m['files']} for m in ms]
print()
for m, c, prev in zip(ms[1:], cpus[1:], cpus):
    print(f"interpreters: {len(c)} in {m['version']} (before: {len(prev)}); "
          f"added: {', '.join(sorted(c - prev)) or 'none'}; dropped: {', '.join(sorted(prev - c)) or 'none'}")
PY
