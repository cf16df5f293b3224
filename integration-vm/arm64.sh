#!/usr/bin/env bash
# Boots Debian 12's linux-image-arm64 (6.1) under qemu-system-aarch64 (TCG) with an initramfs
# holding the static aarch64 binfmtctl (scripts/build-aarch64.sh), Debian's arm64
# qemu-user-static interpreters (x86_64, i386, riscv64, arm) and real foreign programs, runs
# integration-vm/arm64-init.sh there as /init, and reports its VM-TEST lines. Twice: with a CPU
# that runs AArch32 at EL0 (`max`) and with one that does not (`a64fx`, which needs GICv3).
#
#   integration-vm/arm64.sh [max|a64fx ...]   (root; packages: scripts/deps.sh)
# Exit 0 when every VM-TEST of every CPU passed.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${VM_CACHE:-target/vm-arm64}
ASSETS=${ASSETS:-target/test-assets}
CPUS=("$@"); [ ${#CPUS[@]} -gt 0 ] || CPUS=(max a64fx)
mkdir -p "$WORK"
log() { printf '[vm-arm64] %s\n' "$*" >&2; }
command -v qemu-system-aarch64 >/dev/null ||
  { log "qemu-system-aarch64 is missing: apt-get install qemu-system-arm (scripts/deps.sh)"; exit 3; }
# Captured first: dpkg writes one line at a time, and under pipefail a `grep -q` that stops at
# the first line would make dpkg's next write die of SIGPIPE and the test fail at random.
foreign=$(dpkg --print-foreign-architectures)
grep -qx arm64 <<<"$foreign" ||
  { log "apt does not know arm64: dpkg --add-architecture arm64 && apt-get update (scripts/deps.sh)"; exit 3; }

# download PKG:ARCH DIR: one package, unpacked (not installed).
download() {
  local tmp; tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$1" >/dev/null )
  dpkg-deb -x "$tmp"/*.deb "$2"
  rm -rf "$tmp"
}

# 1. The guest kernel and its binfmt_misc module, from Debian's arm64 package (cached).
if [ ! -f "$WORK/vmlinuz" ] || [ ! -f "$WORK/binfmt_misc.ko" ]; then
  pkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ && !n {print $2; n = 1}')
  x=$(mktemp -d)
  download "${pkg%:arm64}:arm64" "$x"
  cp "$x"/boot/vmlinuz-* "$WORK/vmlinuz"
  find "$x/lib/modules" -name 'binfmt_misc.ko*' -exec cp {} "$WORK/" \;
  for m in "$WORK"/*.ko.xz; do if [ -f "$m" ]; then xz -d -f "$m"; fi; done
  rm -rf "$x"
  log "kernel: $pkg"
fi

# 2. Debian's arm64 static QEMU (cached).
QEMU_CPUS=(x86_64 i386 riscv64 arm)
if [ ! -x "$WORK/qemu/qemu-arm-static" ]; then
  x=$(mktemp -d)
  download qemu-user-static:arm64 "$x"
  mkdir -p "$WORK/qemu"
  for c in "${QEMU_CPUS[@]}"; do install -m 0755 "$x/usr/bin/qemu-$c-static" "$WORK/qemu/"; done
  rm -rf "$x"
  log "interpreters: qemu-user-static:arm64 ${QEMU_CPUS[*]}"
fi

# 3. The static aarch64 binfmtctl (cached build system; incremental).
BIN=$(scripts/build-aarch64.sh)

# 4. The initramfs: busybox:arm64 as the guest's shell, the real foreign programs.
for a in arm64 i386 armhf; do
  [ -x "$ASSETS/busybox-$a" ] || scripts/deps.sh --busybox "$a" >&2
done
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,assets,lib/modules,proc,sys,dev,tmp}
install -m 0755 "$ASSETS/busybox-arm64" "$root/bin/busybox"
for a in sh mount umount insmod uname grep ls cat poweroff echo cut tr mkdir; do ln -s busybox "$root/bin/$a"; done
install -m 0755 integration-vm/arm64-init.sh "$root/init"
install -m 0755 "$BIN" "$root/usr/bin/binfmtctl"
install -m 0755 "$WORK"/qemu/qemu-*-static "$root/usr/bin/"
install -m 0755 /bin/busybox "$root/assets/busybox-amd64"
install -m 0755 "$ASSETS/busybox-i386" "$ASSETS/busybox-armhf" "$ASSETS/hello-riscv64" "$root/assets/"
cp "$WORK/binfmt_misc.ko" "$root/lib/modules/"
( cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$WORK/initrd.gz"

# 5. Boot each CPU model under TCG (no KVM for arm64 here). pauth-impdef: QEMU's cheap
# pointer-authentication algorithm (the architected one is about 4x slower to emulate).
fail=0
for cpu in "${CPUS[@]}"; do
  case $cpu in
    max) machine=virt; cpuopt=max,pauth-impdef=on ;;
    a64fx) machine=virt,gic-version=3; cpuopt=a64fx ;; # a64fx panics early with GICv2
    *) log "unknown CPU model $cpu (max or a64fx)"; exit 2 ;;
  esac
  console=$WORK/console-$cpu.log
  ( timeout 600 qemu-system-aarch64 -M "$machine" -cpu "$cpuopt" -m 1024 -smp 1 \
      -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" \
      -append "console=ttyAMA0 panic=-1 quiet binfmtctl.cpu=$cpu" \
      -nographic -no-reboot -nodefaults -serial stdio \
      < /dev/null > "$console" 2>&1 ) 2>/dev/null || true
  tr -d '\r' < "$console" | grep -oE 'VM-(START|TEST|DONE).*' | sed "s/^VM-TEST /VM-TEST $cpu-/" || true
  done_line=$(tr -d '\r' < "$console" | grep -oE 'VM-DONE.*' || true)
  if [ -z "$done_line" ]; then
    log "$cpu: the guest did not finish; console in $console"; fail=1; continue
  fi
  set -- $done_line
  { [ "$3" = 0 ] && [ "$2" -gt 0 ]; } || fail=1
done
exit $fail
