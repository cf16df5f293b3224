#!/usr/bin/env bash
# Benchmark: start-up overhead of `binfmtctl run --rootfs R -- /bin/true` against the floor,
# `chroot R /bin/true`, and `unshare -m chroot R /bin/true`, side by side (interleaved rounds),
# all with the same arm64 /bin/true under the same qemu-aarch64 handler. Runs in a private
# binfmt_misc instance, so the host's stays untouched.
#
#   bench/run-overhead.sh [ROUNDS]    (default 50; Linux >= 6.7)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-50}
cargo build --release --quiet
export B=$PWD/target/release/binfmtctl ROUNDS
export R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R/bin" "$R/etc"
cp target/test-assets/busybox-arm64 "$R/bin/busybox"
ln -s busybox "$R/bin/true"; ln -s busybox "$R/bin/sh"

unshare --user --map-root-user --mount bash -c '
set -euo pipefail
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
$B -q install arm64
now() { date +%s%N; }
for i in $(seq "$ROUNDS"); do
  t0=$(now); chroot "$R" /bin/true; t1=$(now)
  unshare -m chroot "$R" /bin/true; t2=$(now)
  $B run --rootfs "$R" -- /bin/true; t3=$(now)
  echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2))"
done' > "$R.times"
python3 - "$R.times" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
med = [statistics.median(r[i] for r in rows) / 1e6 for i in range(3)]
names = ["chroot R /bin/true (the floor)", "unshare -m chroot R /bin/true", "binfmtctl run --rootfs R -- /bin/true"]
print(f"{len(rows)} interleaved rounds, arm64 busybox /bin/true under qemu-aarch64")
print()
print("| command | median ms | ratio to chroot |")
print("|---|---|---|")
for n, m in zip(names, med):
    print(f"| {n} | {m:.1f} | {m / med[0]:.2f} |")
PY
rm -f "$R.times"
