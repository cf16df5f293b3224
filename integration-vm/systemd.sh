#!/usr/bin/env bash
# Boots a small Debian 12 system with systemd (made by `binfmtctl rootfs create --arch amd64`,
# i.e. mmdebstrap in a private mount namespace) under qemu-system-x86_64 on Debian's 6.1 kernel,
# with systemd/binfmtctl.service enabled and a config listing arm64 with `[nix] enabled = true`
# (Debian's nix-bin installed: the unit must be able to write /etc/nix). systemd-binfmt registers
# Debian-style qemu-aarch64 and qemu-riscv64 records first; binfmtctl.service must replace the
# duplicate, emulation must work, and `systemctl stop` must remove only ours. Results come from
# integration-vm/vm-check.sh over the serial console.
#
#   integration-vm/systemd.sh     (root; run.sh's kernel cache; packages: scripts/deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${VM_CACHE:-target/vm}
ASSETS=${ASSETS:-target/test-assets}
log() { printf '[vm-systemd] %s\n' "$*" >&2; }
[ -f "$WORK/vmlinuz" ] || { log "run integration-vm/run.sh first (it fetches the kernel)"; exit 1; }
KVER=$(file -b "$WORK/vmlinuz" | sed -n 's/.*version \([^ ]*\).*/\1/p')

RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet --target x86_64-unknown-linux-gnu
BIN=target/x86_64-unknown-linux-gnu/release/binfmtctl

# 1. The Debian system (cached), as one uncompressed cpio archive.
ROOTFS="$WORK/systemd-rootfs"
if [ ! -f "$WORK/systemd-nix-base.cpio" ]; then
  if [ ! -x "$ROOTFS/lib/systemd/systemd" ] || [ ! -x "$ROOTFS/usr/bin/nix" ]; then
    rm -rf --one-file-system "$ROOTFS"
    "$BIN" rootfs create --arch amd64 --include systemd,systemd-sysv,kmod,nix-bin "$ROOTFS" >&2
  fi
  ( cd "$ROOTFS" && find . | cpio -o -H newc --quiet ) > "$WORK/systemd-nix-base.cpio"
  rm -f "$WORK/systemd-base.cpio"
fi

# 2. What this test adds, as a second cpio archive (the kernel unpacks both, in order).
ov=$(mktemp -d); trap 'rm -rf "$ov"' EXIT
mkdir -p "$ov"/usr/local/bin "$ov"/usr/bin "$ov"/assets "$ov"/etc/binfmtctl "$ov"/etc/binfmt.d \
  "$ov"/etc/systemd/system/sysinit.target.wants "$ov"/etc/systemd/system/multi-user.target.wants \
  "$ov/usr/lib/modules/$KVER/kernel/fs"
install -m 0755 "$BIN" "$ov/usr/local/bin/binfmtctl"
install -m 0755 /usr/bin/qemu-aarch64-static /usr/bin/qemu-riscv64-static "$ov/usr/bin/"
install -m 0755 "$ASSETS/busybox-arm64" "$ov/assets/"
# Under usr/: /lib is a symlink in merged-usr Debian, and the kernel's initramfs unpacker
# replaces an entry of another type, so an overlay ./lib directory would delete it.
cp "$WORK/binfmt_misc.ko" "$WORK/autofs4.ko" "$ov/usr/lib/modules/$KVER/kernel/fs/"
depmod -b "$ov/usr" "$KVER" 2>/dev/null
printf '# binfmtctl.service registers these at boot\narches = ["arm64"]\n[nix]\nenabled = true\n' > "$ov/etc/binfmtctl/config.toml"
# Debian's own records (as qemu-user-static ships them), pointed at the interpreters present here.
for a in aarch64 riscv64; do
  sed "s|:/usr/libexec/qemu-binfmt/$a-binfmt-P:|:/usr/bin/qemu-$a-static:|" "/usr/lib/binfmt.d/qemu-$a.conf" > "$ov/etc/binfmt.d/qemu-$a.conf"
done
install -m 0644 systemd/binfmtctl.service "$ov/etc/systemd/system/binfmtctl.service"
ln -s ../binfmtctl.service "$ov/etc/systemd/system/sysinit.target.wants/binfmtctl.service"
install -m 0755 integration-vm/vm-check.sh "$ov/usr/local/bin/vm-check"
cat > "$ov/etc/systemd/system/vm-check.service" <<'UNIT'
[Unit]
Description=binfmtctl VM checks
After=binfmtctl.service systemd-binfmt.service multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/vm-check
[Install]
WantedBy=multi-user.target
UNIT
ln -s ../vm-check.service "$ov/etc/systemd/system/multi-user.target.wants/vm-check.service"
( cd "$ov" && find . | cpio -o -H newc --quiet ) > "$WORK/systemd-overlay.cpio"
cat "$WORK/systemd-nix-base.cpio" "$WORK/systemd-overlay.cpio" > "$WORK/systemd-initrd.cpio"

# 3. Boot (TCG; KVM guests hang on these machines) and read the results. No login prompt on the
# console (its getty would start once vm-check has run 5 s and could write into a result
# line), and a result is found anywhere in a line, whatever was printed before it.
( timeout 900 qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 2048 -smp 2 \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/systemd-initrd.cpio" \
    -append "console=ttyS0 panic=-1 rdinit=/lib/systemd/systemd systemd.show_status=false systemd.mask=serial-getty@ttyS0.service quiet" \
    -nographic -no-reboot -nodefaults -serial stdio < /dev/null > "$WORK/systemd-console.log" 2>&1 ) 2>/dev/null || true
rm -f "$WORK/systemd-initrd.cpio" "$WORK/systemd-overlay.cpio"
tr -d '\r' < "$WORK/systemd-console.log" | grep -oE 'VM-(START|TEST|DONE).*' || true
done_line=$(tr -d '\r' < "$WORK/systemd-console.log" | grep -oE 'VM-DONE.*' || true)
[ -n "$done_line" ] || { log "the guest did not finish; console in $WORK/systemd-console.log"; exit 1; }
set -- $done_line
[ "$3" = 0 ] && [ "$2" -gt 0 ]
