#!/usr/bin/env bash
# Benchmark: `binfmtctl scan` against `find DIR -type f -exec file {} +` on a real Debian arm64
# root file system (the minbase package set, unpacked with `mmdebstrap --variant=extract`: no
# emulation needed to build it), side by side in one run, interleaved rounds, warm caches.
# Also checks that both give the same architecture for every ELF file.
#
#   bench/scan-vs-file.sh [ROUNDS]     (default 5; root; builds the rootfs once into target/bench)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
. bench/minbase-arm64.sh
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

now() { date +%s%N; }
# Warm the page cache for both.
$B scan "$ROOTFS" >/dev/null; find "$ROOTFS" -type f -exec file {} + >/dev/null
for i in $(seq "$ROUNDS"); do
  t0=$(now); $B scan "$ROOTFS" --json --files > "$T/scan.json"; t1=$(now)
  find "$ROOTFS" -type f -exec file {} + > "$T/file.txt"; t2=$(now)
  echo $((t1 - t0)) >> "$T/b"; echo $((t2 - t1)) >> "$T/f"
done

python3 - "$T" "$ROOTFS" <<'PY'
import json, statistics, sys, os
T, root = sys.argv[1], sys.argv[2]
b = [int(x) / 1e9 for x in open(f"{T}/b")]
f = [int(x) / 1e9 for x in open(f"{T}/f")]
scan = json.load(open(f"{T}/scan.json"))
ours = {e["path"]: e["arch"] for e in scan["elf"]}

def arch_from_file(d):
    b64, lsb = "64-bit" in d, "LSB" in d
    if "ARM aarch64" in d: return "aarch64"
    if "ARM," in d: return "arm"
    if "UCB RISC-V" in d: return "riscv64" if b64 else "riscv32"
    if "PowerPC" in d: return ("ppc64le" if lsb else "ppc64") if b64 else "ppc"
    if "IBM S/390" in d: return "s390x"
    if "MIPS" in d:
        if b64: return "mips64el" if lsb else "mips64"
        n32 = "N32" in d
        return ("mipsn32el" if lsb else "mipsn32") if n32 else ("mipsel" if lsb else "mips")
    if "Intel 80386" in d: return "i386"
    if "x86-64" in d: return "x86_64"
    return "unknown:" + d[:40]

theirs = {}
for line in open(f"{T}/file.txt", errors="replace"):
    path, _, desc = line.rstrip("\n").partition(": ")
    # "ELF 64-bit ...", also "setuid ELF ..." / "setgid ELF ..."
    if " ELF " in " " + desc.split(",")[0] + " ":
        theirs["/" + os.path.relpath(path, root)] = arch_from_file(desc)
agree = sum(1 for p in theirs if ours.get(p) == theirs[p])
only_file = sorted(set(theirs) - set(ours))
only_ours = sorted(set(ours) - set(theirs))
wrong = sorted(p for p in theirs if p in ours and ours[p] != theirs[p])
n = scan["files"]
mb, mf = statistics.median(b), statistics.median(f)
print(f"| tool | files | median s | files/s |")
print(f"|---|---|---|---|")
print(f"| binfmtctl scan | {n} | {mb:.3f} | {n / mb:,.0f} |")
print(f"| find -type f -exec file {{}} + | {n} | {mf:.3f} | {n / mf:,.0f} |")
print()
print(f"speed-up (median, {len(b)} interleaved rounds, warm cache): {mf / mb:.1f}x")
print(f"ELF files: file {len(theirs)}, binfmtctl {len(ours)}; same arch for {agree}; "
      f"only file: {len(only_file)}; only binfmtctl: {len(only_ours)}; different arch: {len(wrong)}")
for p in (only_file + only_ours + wrong)[:10]:
    print("  mismatch:", p, theirs.get(p), ours.get(p))
sys.exit(0 if not (only_file or only_ours or wrong) else 1)
PY
