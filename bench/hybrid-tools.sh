#!/usr/bin/env bash
# Benchmark: what hybrid's native build tools (docs/hybrid.md, "Native build tools") save on an
# autotools build. GNU hello 2.10 (Debian's hello_2.10.orig.tar.gz, cached in
# /var/cache/binfmtctl-tests), `./configure && make`, each build from a fresh copy:
#
#   cross   `build --strategy cross`, ./configure --host=aarch64-linux-gnu && make
#   hybrid  `build --strategy hybrid` with this binfmtctl (native compiler and build tools)
#   before  `build --strategy hybrid` with $BEFORE, an older binfmtctl (native compiler only);
#           left out when BEFORE is unset
#
# in ROUNDS interleaved rounds; wall time and CPU time (user + sys of the whole build, the
# sandbox's processes included: they are all reaped up the chain) per build, medians and the
# ratio of each round's pair. CPU time moves less than wall time when other work shares the
# machine. bench/hybrid.sh has the same row among the others, with emulate and the
# byte-for-byte comparison.
#
#   [ROUNDS=3] [BEFORE=path] [BINFMTCTL=path] bench/hybrid-tools.sh   (root; as bench/hybrid.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
if [ -n "${BINFMTCTL:-}" ]; then B=$(realpath "$BINFMTCTL"); else
  cargo build --release --quiet --locked; B=$PWD/target/release/binfmtctl; fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
ROOTFS=$(realpath "${ROOTFS:-target/bench/rootfs-arm64-gcc-make}")
[ -x "$ROOTFS/usr/bin/make" ] || { echo "no rootfs at $ROOTFS (bench/hybrid.sh makes it; or set ROOTFS)" >&2; exit 1; }
TGZ=/var/cache/binfmtctl-tests/hello_2.10.orig.tar.gz
if [ ! -f "$TGZ" ]; then
  mkdir -p "$(dirname "$TGZ")"
  curl -sSf -o "$TGZ.part" http://deb.debian.org/debian/pool/main/h/hello/hello_2.10.orig.tar.gz
  mv "$TGZ.part" "$TGZ"
fi
echo "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b  $TGZ" | sha256sum -c --quiet
mkdir -p "$W/src"; tar -xzf "$TGZ" -C "$W/src"

# one LABEL BINARY STRATEGY SCRIPT: a fresh copy built; records wall and CPU milliseconds.
one() {
  local label=$1 bin=$2 s=$3 script=$4 dir="$W/$1" t0 t1 cpu
  rm -rf "$dir"; cp -a "$W/src/hello-2.10" "$dir"
  local args=(--arch arm64 --strategy "$s" --src "$dir")
  [ "$s" = cross ] || args+=(--rootfs "$ROOTFS")
  t0=$(date +%s%N)
  cpu=$( { TIMEFORMAT='%U %S'; time "$bin" build "${args[@]}" -- sh -c "$script" > "$dir.log" 2>&1; } 2>&1 ) \
    || { echo "$label failed:" >&2; tail -20 "$dir.log" >&2; exit 1; }
  t1=$(date +%s%N)
  cpu=$(echo "$cpu" | awk '{ printf "%d", ($1 + $2) * 1000 }')
  echo "$label $(( (t1 - t0) / 1000000 )) $cpu" >> "$W/times"
  echo "[bench] hello $label: $(( (t1 - t0) / 1000000 )) ms wall, $cpu ms CPU" >&2
}
for i in $(seq "$ROUNDS"); do
  one cross "$B" cross './configure --host=aarch64-linux-gnu && make'
  one hybrid "$B" hybrid './configure && make'
  [ -z "${BEFORE:-}" ] || one before "$(realpath "$BEFORE")" hybrid './configure && make'
done
grep -q 'native build tools from the host' "$W/hybrid.log" || { echo "hybrid ran without the native build tools" >&2; exit 1; }
uptime >&2
python3 - "$W/times" <<'PY'
import sys
import statistics
runs = {}
for l in open(sys.argv[1]):
    k, wall, cpu = l.split()
    runs.setdefault(k, []).append((int(wall) / 1000, int(cpu) / 1000))
n = len(runs["cross"])
print(f"GNU hello 2.10, ./configure && make; {n} interleaved rounds, medians (wall, CPU user+sys)")
print()
print("| build | wall | CPU | wall / cross (per round) | CPU / cross (per round) |")
print("|---|---|---|---|---|")
for k in [k for k in ["cross", "hybrid", "before"] if k in runs]:
    w = statistics.median(r[0] for r in runs[k])
    c = statistics.median(r[1] for r in runs[k])
    rw = ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in zip(runs[k], runs["cross"]))
    rc = ", ".join(f"{a[1] / b[1]:.2f}x" for a, b in zip(runs[k], runs["cross"]))
    print(f"| {k} | {w:.1f} s | {c:.1f} s | {rw} | {rc} |")
PY
