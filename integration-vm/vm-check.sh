#!/bin/sh
# Runs in the systemd guest after binfmtctl.service (vm-check.service); reports
#   VM-TEST <name> pass|FAIL <detail>   ...   VM-DONE <passed> <failed>
# on the console, then powers the guest off.
exec > /dev/console 2>&1
R=/proc/sys/fs/binfmt_misc
pass=0; fail=0
check() {
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "VM-TEST $1 pass"; else fail=$((fail + 1)); echo "VM-TEST $1 FAIL $(echo "$3" | tr '\n' ' ')"; fi
}
echo "VM-START systemd $(uname -r)"
systemctl is-active --quiet binfmtctl.service
check unit-active $? "$(systemctl status binfmtctl.service --no-pager 2>&1 | tail -8)"
systemctl is-active --quiet systemd-binfmt.service
check systemd-binfmt-ran-first $? "$(systemctl status systemd-binfmt.service --no-pager 2>&1 | tail -5)"
grep -q 'interpreter /usr/bin/qemu-aarch64-static' $R/qemu-aarch64 && grep -q 'flags: PF' $R/qemu-aarch64
check registered-at-boot $? "$(cat $R/qemu-aarch64 2>&1)"
journalctl -b -u binfmtctl.service --no-pager | grep -q 'replaced        qemu-aarch64'
check replaced-the-duplicate $? "$(journalctl -b -u binfmtctl.service --no-pager | tail -6)"
out=$(/assets/busybox-arm64 uname -m 2>&1); [ "$out" = aarch64 ]
check arm64-runs $? "$out"
# [nix] enabled = true: the unit wrote Nix's side under its sandbox (ProtectSystem=full).
grep -q 'aarch64-linux' /etc/nix/binfmtctl.conf && grep -qx '!include binfmtctl.conf' /etc/nix/nix.conf \
  && nix --extra-experimental-features nix-command show-config 2>/dev/null | grep -E '^extra-platforms = .*aarch64-linux'
check nix-kept-in-step $? "$(ls -l /etc/nix; cat /etc/nix/binfmtctl.conf; journalctl -b -u binfmtctl.service --no-pager | tail -6)"
systemctl stop binfmtctl.service
[ ! -e $R/qemu-aarch64 ] && [ -e $R/qemu-riscv64 ]
check stop-removes-only-ours $? "$(ls $R)"
[ ! -e /etc/nix/binfmtctl.conf ] && ! grep -q 'binfmtctl' /etc/nix/nix.conf
check stop-takes-nix-out $? "$(ls -l /etc/nix; cat /etc/nix/nix.conf; journalctl -b -u binfmtctl.service --no-pager | tail -6)"
echo "VM-DONE $pass $fail"
systemctl poweroff --no-block
