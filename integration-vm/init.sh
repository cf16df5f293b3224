#!/bin/sh
# /init of the test initramfs: runs binfmtctl against a real Debian 6.1 kernel (older than the
# host's: no private binfmt_misc instances), reporting on the serial console as
#   VM-TEST <name> pass|FAIL <detail>      and finally      VM-DONE <passed> <failed>
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "VM-START $(uname -r)"
pass=0; fail=0
check() { # name, condition result (0 = ok), detail
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "VM-TEST $1 pass"; else fail=$((fail + 1)); echo "VM-TEST $1 FAIL $3"; fi
}
B=/usr/bin/binfmtctl A=/assets

insmod /lib/modules/binfmt_misc.ko; check module-loads $? "insmod binfmt_misc.ko"
out=$($B status 2>&1); echo "$out" | grep -q "no entries"; check status-empty $? "$out"
out=$($B install arm64,riscv64 2>&1); rc=$?
echo "$out" | grep -q "registered      qemu-aarch64"; check install $((rc + $?)) "rc=$rc $out"
out=$($A/busybox-arm64 uname -m 2>&1); [ "$out" = aarch64 ]; check arm64-runs $? "$out"
out=$($A/hello-riscv64 2>&1); echo "$out" | grep -q "hello from riscv64"; check riscv64-runs $? "$out"
out=$($B install arm64,riscv64 2>&1); echo "$out" | grep -q "summary: 2 kept"; check second-install-noop $? "$out"
out=$($B test 2>&1); rc=$?; echo "$out" | grep -q "pass     aarch64.*works in an empty chroot"; check test-probes $((rc + $?)) "rc=$rc $out"
out=$($B inspect $A/busybox-arm64 2>&1); echo "$out" | grep -q "kernel: emulated by qemu-aarch64"; check inspect $? "$out"
$B install x86_64 >/dev/null 2>&1; rc=$?; [ $rc = 2 ]; check native-refused $? "rc=$rc"
mkdir -p /tmp/r/bin; cp $A/busybox-arm64 /tmp/r/bin/busybox; ln -s busybox /tmp/r/bin/sh; ln -s busybox /tmp/r/bin/uname
out=$($B run --rootfs /tmp/r -- uname -m 2>&1); [ "$out" = aarch64 ]; check run-root-mode $? "$out"
out=$($B run --rootless --rootfs /tmp/r -- uname -m 2>&1); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q "lacks (needs >= 6.7)"; check rootless-refused-on-6.1 $? "rc=$rc $out"
out=$($B uninstall all 2>&1); rc=$?; left=$(ls /proc/sys/fs/binfmt_misc | grep -c '^qemu-')
[ $rc = 0 ] && [ "$left" = 0 ]; check uninstall-all $? "rc=$rc left=$left $out"
out=$($A/busybox-arm64 uname -m 2>&1); [ "$out" != aarch64 ]; check arm64-gone $? "$out"
echo "VM-DONE $pass $fail"
poweroff -f
