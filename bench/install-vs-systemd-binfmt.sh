#!/usr/bin/env bash
# Benchmark: `binfmtctl install all` + `binfmtctl uninstall all` against systemd-binfmt applying
# Debian's /usr/lib/binfmt.d/qemu-*.conf + `systemd-binfmt --unregister`, side by side in one
# run (interleaved, so machine noise hits both alike), in a private binfmt_misc instance (the
# host's stays untouched).
#
#   bench/install-vs-systemd-binfmt.sh [ROUNDS]      (default 30; needs Linux >= 6.7, root)
#
# Prints per-round medians and the ratio as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-30}
SYSTEMD_BINFMT=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
[ -x "$SYSTEMD_BINFMT" ] || { echo "systemd-binfmt not found" >&2; exit 3; }
ls /usr/lib/binfmt.d/qemu-*.conf >/dev/null 2>&1 || { echo "install qemu-user-static first (scripts/deps.sh)" >&2; exit 3; }
cargo build --release --quiet
export B=$PWD/target/release/binfmtctl SB=$SYSTEMD_BINFMT ROUNDS

unshare --user --map-root-user --mount bash -c '
set -euo pipefail
R=/proc/sys/fs/binfmt_misc
mount -t binfmt_misc binfmt_misc $R
count() { ls $R | grep -v -x -e register -e status | wc -l; }
now() { date +%s%N; }
median() { sort -n | awk "{a[NR]=\$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf \"%.2f\", m/1e6}"; }
: > /tmp/bench.b.$$; : > /tmp/bench.s.$$
for i in $(seq "$ROUNDS"); do
  t0=$(now); $B -q install all; nb=$(count); $B -q uninstall all; t1=$(now)
  [ "$(count)" = 0 ] || { echo "binfmtctl left entries" >&2; exit 1; }
  t2=$(now); $SB /usr/lib/binfmt.d/qemu-*.conf; ns=$(count); $SB --unregister; t3=$(now)
  [ "$(count)" = 0 ] || { echo "systemd-binfmt left entries" >&2; exit 1; }
  echo $((t1 - t0)) >> /tmp/bench.b.$$; echo $((t3 - t2)) >> /tmp/bench.s.$$
done
mb=$(median < /tmp/bench.b.$$); ms=$(median < /tmp/bench.s.$$)
rm -f /tmp/bench.b.$$ /tmp/bench.s.$$
echo "| tool | entries | median ms (install + uninstall) | ms per entry |"
echo "|---|---|---|---|"
awk -v mb=$mb -v nb=$nb -v ms=$ms -v ns=$ns "BEGIN {
  printf \"| binfmtctl install all + uninstall all | %d | %.2f | %.3f |\n\", nb, mb, mb/nb;
  printf \"| systemd-binfmt qemu-*.conf + --unregister | %d | %.2f | %.3f |\n\", ns, ms, ms/ns;
  printf \"\nratio binfmtctl / systemd-binfmt (median, %d interleaved rounds): %.2f\n\", ENVIRON[\"ROUNDS\"], mb/ms }"
'
