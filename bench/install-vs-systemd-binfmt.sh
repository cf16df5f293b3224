#!/usr/bin/env bash
# Benchmark: `binfmtctl install all` + `binfmtctl uninstall all` against systemd-binfmt applying
# Debian's /usr/lib/binfmt.d/qemu-*.conf + `systemd-binfmt --unregister`, side by side in one
# run (interleaved, so machine noise hits both alike), in a private binfmt_misc instance (the
# host's stays untouched).
#
#   bench/install-vs-systemd-binfmt.sh [ROUNDS]      (default 30; needs Linux >= 6.7, root)
#
# Prints per-round medians of install alone and of install + uninstall, and their ratios to
# systemd-binfmt, as a Markdown table. BINFMTCTL=path measures that build instead of a fresh
# release build; BEFORE=path adds a second build to the same rounds (before/after a change).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-30}
SYSTEMD_BINFMT=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
[ -x "$SYSTEMD_BINFMT" ] || { echo "systemd-binfmt not found" >&2; exit 3; }
ls /usr/lib/binfmt.d/qemu-*.conf >/dev/null 2>&1 || { echo "install qemu-user-static first (scripts/deps.sh)" >&2; exit 3; }
if [ -n "${BINFMTCTL:-}" ]; then B=$(realpath "$BINFMTCTL"); else
  cargo build --release --quiet --locked; B=$PWD/target/release/binfmtctl; fi
# BEFORE=path adds another binfmtctl (an older build) to the same interleaved rounds.
BEFORE=${BEFORE:+$(realpath "$BEFORE")}
export B BEFORE SB=$SYSTEMD_BINFMT ROUNDS

unshare --user --map-root-user --mount bash -c '
set -euo pipefail
R=/proc/sys/fs/binfmt_misc
mount -t binfmt_misc binfmt_misc $R
count() { ls $R | grep -v -x -e register -e status | wc -l; }
now() { date +%s%N; }
median() { sort -n | awk "{a[NR]=\$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf \"%.2f\", m/1e6}"; }
T=$(mktemp -d)
# one NAME INSTALL UNINSTALL: times both, checks entries appear and are all gone after.
one() {
  local t0 t1 t2
  t0=$(now); eval "$2"; t1=$(now); count > $T/$1.n; eval "$3"; t2=$(now)
  [ "$(count)" = 0 ] || { echo "$1 left entries" >&2; exit 1; }
  echo $((t1 - t0)) >> $T/$1.i; echo $((t2 - t0)) >> $T/$1.t
}
for i in $(seq "$ROUNDS"); do
  one binfmtctl "$B -q install all" "$B -q uninstall all"
  [ -z "$BEFORE" ] || one before "$BEFORE -q install all" "$BEFORE -q uninstall all"
  one systemd "$SB /usr/lib/binfmt.d/qemu-*.conf" "$SB --unregister"
done
ms_i=$(median < $T/systemd.i); ms_t=$(median < $T/systemd.t)
echo "| tool | entries | median ms, install | median ms, install + uninstall | ratio to systemd-binfmt (install / both) |"
echo "|---|---|---|---|---|"
row() {
  local mi mt; mi=$(median < $T/$1.i); mt=$(median < $T/$1.t)
  awk -v n="$2" -v e="$(cat $T/$1.n)" -v mi=$mi -v mt=$mt -v si=$ms_i -v st=$ms_t \
    "BEGIN { printf \"| %s | %d | %.2f | %.2f | %.2f / %.2f |\n\", n, e, mi, mt, mi/si, mt/st }"
}
row binfmtctl "binfmtctl install all (+ uninstall all)"
[ -z "$BEFORE" ] || row before "binfmtctl, BEFORE build"
row systemd "systemd-binfmt qemu-*.conf (+ --unregister)"
echo
echo "medians of $ROUNDS interleaved rounds"
rm -rf $T
'
