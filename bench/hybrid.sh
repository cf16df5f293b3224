#!/usr/bin/env bash
# Benchmark: cross vs hybrid vs emulate, side by side in one run, on three real C code bases
# nobody here wrote, each build from a fresh copy of its source:
#
#   zlib 1.2.11  its own ./configure, make (and, for hybrid and emulate, make test), from the
#                libz-sys 1.0.25 crate (the last that ships zlib's whole tree)
#   Lua 5.4.7    gcc -O2 -c *.c, then linked with a 10-line driver (lua-src crate)
#   SQLite       the amalgamation, gcc -O1 -c sqlite3.c (libsqlite3-sys crate)
#   SQLite/clang the same with clang-14 -O1 -c: cross = the host's clang-14
#                --target=aarch64-linux-gnu (the host's cross sysroot: /usr/aarch64-linux-gnu,
#                /usr/lib/gcc-cross), hybrid = the host's clang-14 injected in a rootfs with
#                clang-14, emulate = that rootfs's clang-14 under qemu
#   GNU hello    2.10: ./configure && make (Debian's hello_2.10.orig.tar.gz, cached in
#                /var/cache/binfmtctl-tests): autotools, hundreds of short sh/sed/grep/make
#                processes, where hybrid's native build tools count (docs/hybrid.md)
#
# cross = `binfmtctl build --strategy cross` (the host's aarch64-linux-gnu-gcc), hybrid =
# `--strategy hybrid` (the arm64 chroot, emulated, with the host's native cross gcc injected),
# emulate = `--strategy emulate` (the rootfs's own gcc under qemu-aarch64). Then it checks the
# results: the programs run and print the same, and the hybrid objects are byte-identical to the
# emulated ones once the .comment section (which names the compiler's exact Debian version) is
# removed. Finally, a probe of the one known code difference between the host's cross gcc and
# the rootfs's gcc (docs/hybrid.md). Not run by CI; took about 9 minutes here before hello (its emulated build alone is 1.5 minutes idle).
# The Rust row (ripgrep 13.0.0 with Debian's Rust 1.63) is bench/hybrid-rust.sh, which needs another rootfs.
#
#   [ROUNDS=3] [CLANG_ONLY=1] bench/hybrid.sh    (root; Linux >= 6.7 or an arm64 handler;
#   gcc- and g++-aarch64-linux-gnu; clang-14 for the clang row). CLANG_ONLY=1: the clang row only.
# The rootfs (bookworm arm64 with gcc, g++, libc6-dev and make) is made once by binfmtctl itself in
# target/bench/rootfs-arm64-gcc-make, or taken from $ROOTFS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
# BINFMTCTL=path uses that binary (it only sets the sandbox up; the compilers do the work).
if [ -n "${BINFMTCTL:-}" ]; then B=$(realpath "$BINFMTCTL"); else
  cargo build --release --quiet --locked; B=$PWD/target/release/binfmtctl; fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

# The sources, via cargo's own download of the crates.
mkdir -p "$W/fetch/src"; touch "$W/fetch/src/lib.rs"
cat > "$W/fetch/Cargo.toml" <<'TOML'
[package]
name = "fetch-sources"
version = "0.0.0"
edition = "2021"
[dependencies]
libz-sys = "=1.0.25"
lua-src = "=547.0.0"
libsqlite3-sys = { version = "=0.30.1", default-features = false }
TOML
cargo fetch --quiet --manifest-path "$W/fetch/Cargo.toml"
REG=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | sed -n 1p)
ZLIB=$REG/libz-sys-1.0.25/src/zlib
LUA=$REG/lua-src-547.0.0/lua-5.4.7
SQLITE=$REG/libsqlite3-sys-0.30.1/sqlite3
[ -x "$ZLIB/configure" ] && [ -f "$LUA/lua.h" ] && [ -f "$SQLITE/sqlite3.c" ]
HELLO_TGZ=/var/cache/binfmtctl-tests/hello_2.10.orig.tar.gz
if [ ! -f "$HELLO_TGZ" ]; then
  mkdir -p "$(dirname "$HELLO_TGZ")"
  curl -sSf -o "$HELLO_TGZ.part" http://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz
  mv "$HELLO_TGZ.part" "$HELLO_TGZ"
fi
echo "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b  $HELLO_TGZ" | sha256sum -c --quiet
mkdir -p "$W/hello-src"; tar -xzf "$HELLO_TGZ" -C "$W/hello-src"
HELLO=$W/hello-src/hello-2.10

ROOTFS=${ROOTFS:-target/bench/rootfs-arm64-gcc-make}
if [ -z "${CLANG_ONLY:-}" ] && [ ! -x "$ROOTFS/usr/bin/make" ]; then
  rm -rf "$ROOTFS"; mkdir -p "$(dirname "$ROOTFS")"
  $B rootfs create --arch arm64 --include gcc,g++,libc6-dev,make "$ROOTFS" >&2
fi
ROOTFS=$(realpath -m "$ROOTFS")
# The clang row's rootfs: the tests' cached one, else made once here.
CLANG_ROOTFS=${CLANG_ROOTFS:-/var/cache/binfmtctl-tests/bookworm-arm64-clang-rust}
if [ ! -e "$CLANG_ROOTFS/usr/bin/clang-14" ]; then
  CLANG_ROOTFS=target/bench/rootfs-arm64-clang
  if [ ! -e "$CLANG_ROOTFS/usr/bin/clang-14" ]; then
    rm -rf "$CLANG_ROOTFS"; mkdir -p "$(dirname "$CLANG_ROOTFS")"
    $B rootfs create --arch arm64 --include gcc,g++,libc6-dev,make,clang-14 "$CLANG_ROOTFS" >&2
  fi
fi
CLANG_ROOTFS=$(realpath "$CLANG_ROOTFS")

now() { date +%s%N; }
# run_one PROJECT STRATEGY SCRIPT: builds a fresh copy of the project's source; records seconds.
run_one() {
  local p=$1 s=$2 script=$3 dir="$W/$1-$2" t0 t1
  rm -rf "$dir"; mkdir -p "$dir"
  case $p in
    zlib) cp -a "$ZLIB/." "$dir/" ;;
    lua) cp "$LUA"/*.c "$LUA"/*.h "$W/main.c" "$W/bench.lua" "$dir/" ;;
    sqlite|sqlite-clang) cp "$SQLITE/sqlite3.c" "$SQLITE/sqlite3.h" "$dir/" ;;
    hello) cp -a "$HELLO/." "$dir/" ;;
  esac
  local args=(--arch arm64 --strategy "$s" --src "$dir") rootfs=$ROOTFS
  [ "$p" = sqlite-clang ] && rootfs=$CLANG_ROOTFS
  [ "$s" = cross ] || args+=(--rootfs "$rootfs")
  t0=$(now)
  $B build "${args[@]}" -- sh -c "$script" > "$dir.log" 2>&1 || { echo "$p $s failed:" >&2; tail -20 "$dir.log" >&2; exit 1; }
  t1=$(now)
  echo "$p $s $(( (t1 - t0) / 1000000 ))" >> "$W/times"
  echo "[bench] $p $s: $(( (t1 - t0) / 1000000 )) ms" >&2
}

# The Lua driver and script the Lua benchmarks share (bench/lua/).
cp bench/lua/main.c bench/lua/bench.lua "$W/"

# zlib: cross compiles only (its test programs are aarch64: they run in the chroot below).
ZCROSS='CHOST=aarch64-linux-gnu CC=$CC ./configure --static && make -j1'
ZNATIVE='./configure --static && make -j1'
LUAB='gcc -O2 -c *.c && gcc -o lua *.o -lm'
LUAC='$CC -O2 -c *.c && $CC -o lua *.o -lm'
SQLB='gcc -O1 -c sqlite3.c'
SQLC='$CC -O1 -c sqlite3.c'
SQLCL='clang-14 -O1 -c sqlite3.c'
SQLCLC='clang-14 --target=aarch64-linux-gnu -O1 -c sqlite3.c'
strip_comment() { aarch64-linux-gnu-objcopy --remove-section .comment "$1" "$2"; }
# The clang row: the same method (interleaved rounds, emulate once), its objects compared.
clang_row() {
  local c h e
  c=$(awk '$1=="sqlite-clang" && $2=="cross" {print $3}' "$W/times" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  h=$(awk '$1=="sqlite-clang" && $2=="hybrid" {print $3}' "$W/times" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
  e=$(awk '$1=="sqlite-clang" && $2=="emulate" {printf "%.1f", $3/1000}' "$W/times")
  local obj=()
  for s in hybrid cross; do
    strip_comment "$W/sqlite-clang-$s/sqlite3.o" "$W/a.o"; strip_comment "$W/sqlite-clang-emulate/sqlite3.o" "$W/b.o"
    cmp -s "$W/a.o" "$W/b.o" && obj+=("$s vs emulate identical") || obj+=("$s vs emulate DIFFERENT")
  done
  echo "| SQLite's amalgamation with clang (clang-14 -O1 -c) | $c s | $h s | $e s | $(echo "$h / $c" | bc -l | xargs printf '%.2f')x | $(echo "$e / $h" | bc -l | xargs printf '%.1f')x |"
  echo "clang objects without .comment: ${obj[*]}; host clang-14 $(dpkg-query -W -f='${Version}' clang-14), rootfs clang-14 $(sed -n '/^Package: clang-14$/,/^$/s/^Version: //p' "$CLANG_ROOTFS/var/lib/dpkg/status")"
}
if [ -n "${CLANG_ONLY:-}" ]; then
  for i in $(seq "$ROUNDS"); do
    run_one sqlite-clang cross "$SQLCLC"; run_one sqlite-clang hybrid "$SQLCL"
  done
  run_one sqlite-clang emulate "$SQLCL"
  echo "one run: cross and hybrid in $ROUNDS interleaved rounds (medians), emulate once"
  clang_row
  exit 0
fi
HELLOB='./configure && make'
HELLOC='./configure --host=aarch64-linux-gnu && make'
# cross and hybrid: ROUNDS interleaved rounds (medians); emulate once (it takes minutes).
for i in $(seq "$ROUNDS"); do
  for s in cross hybrid; do
    [ $s = cross ] && run_one zlib $s "$ZCROSS" || run_one zlib $s "$ZNATIVE"
    [ $s = cross ] && run_one lua $s "$LUAC" || run_one lua $s "$LUAB"
    [ $s = cross ] && run_one sqlite $s "$SQLC" || run_one sqlite $s "$SQLB"
    [ $s = cross ] && run_one sqlite-clang $s "$SQLCLC" || run_one sqlite-clang $s "$SQLCL"
    [ $s = cross ] && run_one hello $s "$HELLOC" || run_one hello $s "$HELLOB"
  done
done
run_one zlib emulate "$ZNATIVE"
run_one lua emulate "$LUAB"
run_one sqlite emulate "$SQLB"
run_one sqlite-clang emulate "$SQLCL"
run_one hello emulate "$HELLOB"

# zlib's own test suite, in the chroot, on the hybrid and the emulated build.
ztest() {
  $B run --rootfs "$ROOTFS" "${@:2}" --bind "$W/zlib-$1:/src" --workdir /src -- make test 2>&1 | grep -e 'test OK' -e FAIL | tr -d '\t' | paste -sd' '
}
ZT_H=$(ztest hybrid --accelerate); ZT_E=$(ztest emulate)
for z in "$ZT_H" "$ZT_E"; do
  grep -q 'zlib test OK' <<<"$z" && ! grep -q FAIL <<<"$z" || { echo "zlib make test failed: $z" >&2; exit 1; }
done
# Lua: all three interpreters print the same.
LOUT=$($B run --rootfs "$ROOTFS" --bind "$W:/w" -- sh -c 'for s in cross hybrid emulate; do /w/lua-$s/lua /w/bench.lua; done' 2>/dev/null)
[ "$(echo "$LOUT" | sort -u | wc -l)" = 1 ] && [ "$(echo "$LOUT" | wc -l)" = 3 ] || { echo "Lua outputs differ: $LOUT" >&2; exit 1; }

# Objects: hybrid vs emulate, and cross vs emulate, without .comment.
compare() { # compare PROJECT A B -> "identical/total [differing...]"
  local same=0 total=0 diff=()
  for o in "$W/$1-$2"/*.o; do
    local n; n=$(basename "$o"); total=$((total + 1))
    strip_comment "$o" "$W/a.o"; strip_comment "$W/$1-$3/$n" "$W/b.o"
    if cmp -s "$W/a.o" "$W/b.o"; then same=$((same + 1)); else diff+=("$n"); fi
    cmp -s "$o" "$W/$1-$3/$n" && echo "note: $1 $n identical even with .comment" >&2
  done
  echo "$same/$total${diff:+ (differ: ${diff[*]})}"
}
for p in zlib lua sqlite; do
  echo "$p $(compare $p hybrid emulate) $(compare $p cross emulate)" >> "$W/objects"
done
# hello: the program of each build, without .comment; its test suite under hybrid (native
# build tools, emulated hello) and what the hybrid build's config.guess says.
# The GNU build ID is ld's hash of the whole output, .comment included: dropped too.
strip_id() { aarch64-linux-gnu-objcopy --remove-section .comment --remove-section .note.gnu.build-id "$1" "$2"; }
prog_same() { strip_id "$W/hello-$1/hello" "$W/a.o"; strip_id "$W/hello-$2/hello" "$W/b.o"; cmp -s "$W/a.o" "$W/b.o" && echo identical || echo DIFFERENT; }
HELLO_ID="hybrid vs emulate $(prog_same hybrid emulate), cross vs emulate $(prog_same cross emulate)"
HELLO_CHECK=$($B run --accelerate --rootfs "$ROOTFS" --bind "$W/hello-hybrid:/src" --workdir /src -- sh -c 'make check >/dev/null 2>&1 && grep -h "^# [A-Z]*: *[1-9]" test-suite.log | tr -s " " | paste -sd" "; ./build-aux/config.guess; ./hello' 2>/dev/null | paste -sd'|')

# The known difference: Debian's security update of the target gcc (12.2.0-14+deb12u1,
# CVE-2023-4039: -fstack-protector did not guard dynamically sized stack objects on aarch64),
# which the cross gcc 12.2.0-14 of the same release lacks. Three functions, both ways: with a
# VLA, with a fixed array (both get a stack guard), and without (no guard).
mkdir -p "$W/probe-hybrid" "$W/probe-emulate"
cat > "$W/probe.c" <<'C'
#include <string.h>
int use(char *p, int n);
int vla(int n) { char buf[n]; memset(buf, 1, n); return use(buf, n); }
int fixed(int n) { char buf[64]; memset(buf, 1, sizeof buf); return use(buf, n); }
int plain(int n) { return use(0, n) + 1; }
C
cp "$W/probe.c" "$W/probe-hybrid/"; cp "$W/probe.c" "$W/probe-emulate/"
$B build --arch arm64 --strategy hybrid --rootfs "$ROOTFS" --src "$W/probe-hybrid" -- gcc -O2 -fstack-protector-strong -c probe.c 2>/dev/null
$B build --arch arm64 --strategy emulate --rootfs "$ROOTFS" --src "$W/probe-emulate" -- gcc -O2 -fstack-protector-strong -c probe.c 2>/dev/null
fn_diff() { # the functions whose disassembly differs
  for f in vla fixed plain; do
    a=$(aarch64-linux-gnu-objdump -d --no-show-raw-insn --no-addresses "$W/probe-hybrid/probe.o" | sed -n "/<$f>:/,/^$/p")
    b=$(aarch64-linux-gnu-objdump -d --no-show-raw-insn --no-addresses "$W/probe-emulate/probe.o" | sed -n "/<$f>:/,/^$/p")
    [ "$a" = "$b" ] || printf '%s ' "$f"
  done
}
PROBE=$(fn_diff)

# C++ (g++, cc1plus, libstdc++ from the rootfs): a small program both ways; objects compared.
mkdir -p "$W/cxx-hybrid" "$W/cxx-emulate"
cat > "$W/cxx-hybrid/p.cc" <<'CC'
#include <iostream>
#include <map>
#include <string>
int main() { std::map<std::string, int> m{{"a", 1}, {"b", 2}}; for (auto &[k, v] : m) std::cout << k << v; std::cout << "\n"; }
CC
cp "$W/cxx-hybrid/p.cc" "$W/cxx-emulate/"
for s in hybrid emulate; do
  $B build --arch arm64 --strategy $s --rootfs "$ROOTFS" --src "$W/cxx-$s" -- sh -c 'g++ -O2 -c p.cc && g++ -o p p.o && ./p' > "$W/cxx-$s.out" 2>/dev/null
done
strip_comment "$W/cxx-hybrid/p.o" "$W/a.o"; strip_comment "$W/cxx-emulate/p.o" "$W/b.o"
CXX="runs and prints $(cat "$W/cxx-hybrid.out") both ways; object $(cmp -s "$W/a.o" "$W/b.o" && echo identical || echo DIFFERENT) without .comment"
cmp -s "$W/cxx-hybrid.out" "$W/cxx-emulate.out" || CXX="outputs differ: $(cat "$W/cxx-hybrid.out") / $(cat "$W/cxx-emulate.out")"

HOSTV=$(dpkg-query -W -f='${Version}' gcc-12-aarch64-linux-gnu)
ROOTV=$(sed -n '/^Package: gcc-12$/,/^$/s/^Version: //p' "$ROOTFS/var/lib/dpkg/status")
python3 - "$W/times" "$W/objects" "$HOSTV" "$ROOTV" "$ZT_H" "$(echo "$LOUT" | sed -n 1p)" "${PROBE:-none}" "$CXX" "$HELLO_ID" "$HELLO_CHECK" <<'PY'
import sys
import statistics
runs = {}
for l in open(sys.argv[1]):
    p, s, ms = l.split()
    if p == "sqlite-clang":
        continue  # its own row, below
    runs.setdefault((p, s), []).append(int(ms) / 1000)
t = {k: statistics.median(v) for k, v in runs.items()}
rounds = len(runs[("zlib", "cross")])
objs = {l.split()[0]: l.split(None, 1)[1].strip() for l in open(sys.argv[2])}
names = {"zlib": "zlib 1.2.11 (configure + make)", "lua": "Lua 5.4.7 (-O2, 33 files)", "sqlite": "SQLite amalgamation (-O1 -c)", "hello": "GNU hello 2.10 (configure + make)"}
print(f"host cross gcc {sys.argv[3]}, rootfs gcc {sys.argv[4]}; one run: cross and hybrid in {rounds} interleaved rounds (medians), emulate once")
print()
print("| project | cross | hybrid | emulate | hybrid / cross | emulate / hybrid |")
print("|---|---|---|---|---|---|")
for p in ["zlib", "lua", "sqlite", "hello"]:
    c, h, e = t[(p, "cross")], t[(p, "hybrid")], t[(p, "emulate")]
    print(f"| {names[p]} | {c:.1f} s | {h:.1f} s | {e:.1f} s | {h / c:.2f}x | {e / h:.1f}x |")
print()
print("objects identical without .comment (hybrid vs emulate, then cross vs emulate):")
for p in ["zlib", "lua", "sqlite"]:
    print(f"- {p}: {objs[p]}")
print(f"zlib make test under hybrid: {sys.argv[5].strip()}")
print(f"Lua, all three builds: {sys.argv[6]}")
print(f"-fstack-protector-strong probe, functions that differ (hybrid vs emulate): {sys.argv[7]}")
print(f"C++ (g++ -O2, std::map and iostream): {sys.argv[8]}")
print(f"GNU hello program without .comment and build ID: {sys.argv[9]}")
print(f"GNU hello under hybrid: make check, config.guess, ./hello: {sys.argv[10]}")
PY
clang_row
