#!/usr/bin/env bash
# Boots Debian 12's linux-image-amd64 (6.1) under qemu-system-x86_64 with an initramfs holding
# the static binfmtctl, Debian's static QEMU, real foreign binaries and the guest kernel's own
# binfmt_misc.ko, runs integration-vm/init.sh there, and reports its VM-TEST lines.
# KVM is used when a guest actually boots with it; otherwise TCG (a KVM guest hangs on some
# machines after the firmware).
#
#   integration-vm/run.sh        (root; packages: scripts/deps.sh)
# Exit 0 when every VM-TEST passed.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${VM_CACHE:-target/vm}
ASSETS=${ASSETS:-target/test-assets}
mkdir -p "$WORK"
log() { printf '[vm] %s\n' "$*" >&2; }

# 1. The guest kernel and its binfmt_misc module, from Debian's package (cached).
if [ ! -f "$WORK/vmlinuz" ] || [ ! -f "$WORK/binfmt_misc.ko" ] || [ ! -f "$WORK/autofs4.ko" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ && !n {print $2; n = 1}')
  tmp=$(mktemp -d)
  ( cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null )
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  cp "$tmp"/x/boot/vmlinuz-* "$WORK/vmlinuz"
  # binfmt_misc, and autofs4 for systemd's binfmt_misc automount (systemd.sh).
  find "$tmp/x/lib/modules" \( -name 'binfmt_misc.ko*' -o -name 'autofs4.ko*' \) -exec cp {} "$WORK/" \;
  for m in "$WORK"/*.ko.xz; do if [ -f "$m" ]; then xz -d -f "$m"; fi; done
  rm -rf "$tmp"
  log "kernel: $pkg"
fi

# 2. The static binfmtctl.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
BIN=target/x86_64-unknown-linux-gnu/release/binfmtctl

# 3. The initramfs.
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,assets,lib/modules,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
for a in sh mount insmod uname grep ls cp ln mkdir cat poweroff echo; do ln -s busybox "$root/bin/$a"; done
install -m 0755 integration-vm/init.sh "$root/init"
install -m 0755 "$BIN" "$root/usr/bin/binfmtctl"
install -m 0755 /usr/bin/qemu-aarch64-static /usr/bin/qemu-riscv64-static "$root/usr/bin/"
install -m 0755 "$ASSETS/busybox-arm64" "$ASSETS/hello-riscv64" "$root/assets/"
cp "$WORK/binfmt_misc.ko" "$root/lib/modules/"
( cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$WORK/initrd.gz"

# 4. Boot: KVM if it works, else TCG.
boot() { # accel, timeout
  # In a subshell, so a guest that aborts or times out is reported by us, not by bash.
  ( timeout "$2" qemu-system-x86_64 -machine q35,accel="$1" -cpu max -m 1024 -smp 1 \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet" -nographic -no-reboot -nodefaults -serial stdio \
    < /dev/null > "$WORK/console.log" 2>&1 ) 2>/dev/null || true
}
accel=tcg
if [ -w /dev/kvm ]; then
  boot kvm 60
  grep -q 'VM-DONE' "$WORK/console.log" && accel=kvm
fi
if [ "$accel" = tcg ]; then
  boot tcg 600
fi
tr -d '\r' < "$WORK/console.log" | grep -oE 'VM-(START|TEST|DONE).*' || true
done_line=$(tr -d '\r' < "$WORK/console.log" | grep -oE 'VM-DONE.*' || true)
[ -n "$done_line" ] || { log "the guest did not finish; console in $WORK/console.log"; exit 1; }
log "booted with $accel"
set -- $done_line
[ "$3" = 0 ] && [ "$2" -gt 0 ]
