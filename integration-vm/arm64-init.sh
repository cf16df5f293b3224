#!/bin/sh
# /init of the arm64 test initramfs: the static aarch64 binfmtctl on a real Debian arm64 kernel
# (6.1: no private binfmt_misc instances, so the compat probe runs beside the one instance),
# emulating amd64, i386 and riscv64 with Debian's arm64 QEMU. The CPU model is on the kernel
# command line (binfmtctl.cpu=max|a64fx): `max` runs AArch32 at EL0 (armhf is native),
# `a64fx` does not (armhf needs qemu-arm). Reports on the serial console as
#   VM-TEST <name> pass|FAIL <detail>      and finally      VM-DONE <passed> <failed>
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
cpu=$(tr ' ' '\n' < /proc/cmdline | grep '^binfmtctl.cpu=' | cut -d= -f2)
echo "VM-START $(uname -r) $(uname -m) cpu=$cpu"
pass=0; fail=0
check() { # name, condition result (0 = ok), detail
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "VM-TEST $1 pass"; else fail=$((fail + 1)); echo "VM-TEST $1 FAIL $3"; fi
}
B=/usr/bin/binfmtctl A=/assets
if [ "$cpu" = max ]; then natives="aarch64, arm"; else natives="aarch64"; fi

insmod /lib/modules/binfmt_misc.ko; check module-loads $? "insmod binfmt_misc.ko"
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
out=$($B --version 2>&1); echo "$out" | grep -q '^binfmtctl '; check version $? "$out"

# The natives, decided by the arm probe (never uname), with /tmp read-only (memory files).
mount -t tmpfs -o ro tmpfs /tmp
out=$($B status 2>&1); echo "$out" | grep -qx "native: $natives"; check natives-read-only-tmp $? "$out"
umount /tmp; mount -t tmpfs tmpfs /tmp
out=$($B status --json 2>&1)
if [ "$cpu" = max ]; then
  echo "$out" | grep -q 'its probe ran natively (uname -m '
else
  ! echo "$out" | grep -q 'its probe ran natively' && ! echo "$out" | grep -q '"arch": *"arm"'
fi
check status-json-natives $? "$out"

# amd64, i386 and riscv64 through Debian's arm64 interpreters.
out=$($B install amd64,i386,riscv64 2>&1); rc=$?
echo "$out" | grep -q "registered *qemu-x86_64" && echo "$out" | grep -q "registered *qemu-i386" &&
  echo "$out" | grep -q "registered *qemu-riscv64"; check install $((rc + $?)) "rc=$rc $out"
out=$($A/busybox-amd64 uname -m 2>&1); [ "$out" = x86_64 ]; check amd64-runs $? "$out"
out=$($A/busybox-i386 uname -m 2>&1); [ "$out" = i686 ]; check i386-runs $? "$out"
out=$($A/hello-riscv64 2>&1); echo "$out" | grep -q "hello from riscv64"; check riscv64-runs $? "$out"
out=$($B install arm64 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "runs natively on this host"; check arm64-refused-native $? "rc=$rc $out"

# armhf: native (skipped) on max, registered and run through qemu-arm on a64fx.
out=$($B install all 2>&1); rc=$?
if [ "$cpu" = max ]; then
  echo "$out" | grep -q "skipped-native *qemu-arm"; r=$?
  check armhf-native-skipped $((rc + r)) "rc=$rc $out"
  ls /proc/sys/fs/binfmt_misc | grep -qx qemu-arm; [ $? != 0 ]; check armhf-not-registered $? "$(ls /proc/sys/fs/binfmt_misc)"
else
  echo "$out" | grep -q "registered *qemu-arm"; r=$?
  check armhf-registered $((rc + r)) "rc=$rc $out"
fi
# Natively an AArch32 task reports the kernel's machine (aarch64; armv8l under `linux32`);
# through qemu-arm it is armv7l.
out=$($A/busybox-armhf uname -m 2>&1)
if [ "$cpu" = max ]; then [ "$out" = aarch64 ] || [ "$out" = armv8l ]; else [ "$out" = armv7l ]; fi
check armhf-runs $? "$out"
# With qemu-arm registered, the probe still says what the CPU does (the entry cannot take it).
out=$($B status 2>&1); echo "$out" | grep -qx "native: $natives"; check natives-after-install $? "$out"

out=$($B test all 2>&1); rc=$?
r=0; for a in aarch64 arm x86_64 i386 riscv64; do echo "$out" | grep -q "^pass *$a " || r=1; done
check test-all $((rc + r)) "rc=$rc $out"
out=$($B inspect $A/busybox-amd64 2>&1); echo "$out" | grep -q "kernel: emulated by qemu-x86_64"; check inspect $? "$out"

out=$($B uninstall all 2>&1); rc=$?; left=$(ls /proc/sys/fs/binfmt_misc | grep -c '^qemu-')
[ $rc = 0 ] && [ "$left" = 0 ]; check uninstall-all $? "rc=$rc left=$left $out"
out=$($A/busybox-amd64 uname -m 2>&1); [ "$out" != x86_64 ]; check amd64-gone $? "$out"
echo "VM-DONE $pass $fail"
poweroff -f
