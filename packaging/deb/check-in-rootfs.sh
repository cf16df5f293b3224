#!/bin/bash
# Runs inside the throwaway Debian system of packaging/deb/test.sh (as root, chrooted): installs
# /tmp/pkg.deb with dpkg, uses what it installed, purges it and checks that nothing of it
# remains. Prints "== step" lines; exits non-zero with "FAIL: ..." on the first failure.
set -euo pipefail
# (No `cmd | grep -q`: grep -q stops reading at the first match, and the writer then fails
# with EPIPE, which pipefail turns into a failure.)
# HOME in the scratch area: the shells' own state (fish writes ~/.config) is not the package's.
export LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home TERM=dumb
mkdir -p "$HOME"
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# No maintainer script may start a service (there is no systemd running here either).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

# Every path of the system, except the kernel's, the scratch area and /run (tmpfs mounts, like
# /dev, left out by -xdev).
snapshot() { find / -xdev \( -path /proc -o -path /tmp -o -path /dev \) -prune -o -print | LC_ALL=C sort; }
snapshot > /tmp/before

step "install"
dpkg -i /tmp/pkg.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
dpkg-query -W -f='${Status}\n' binfmtctl | grep -x 'install ok installed' >/dev/null || fail "not installed"
dpkg -L binfmtctl > /tmp/files
[ -L /etc/systemd/system/sysinit.target.wants/binfmtctl.service ] && fail "the unit was enabled on install"

step "binfmtctl --help"
help=$(binfmtctl --help) || fail "binfmtctl --help exited $?"
grep -q '^Usage: binfmtctl' <<<"$help" || fail "no usage line in: $help"
grep -q 'install' <<<"$help" || fail "no install subcommand in: $help"
grep -q '__' <<<"$help" && fail "an internal subcommand shows in --help: $help"
[ "$(binfmtctl --version)" = "binfmtctl ${VERSION%-*}" ] || fail "version: $(binfmtctl --version), want ${VERSION%-*}"
binfmtctl arches | grep '^aarch64 ' >/dev/null || fail "binfmtctl arches"
binfmtctl inspect /usr/bin/binfmtctl | grep '; static;' >/dev/null || fail "binfmtctl is not static"

step "man pages"
for page in binfmtctl binfmtctl-install binfmtctl-rootfs-create binfmtctl.toml; do
  out=$(MANWIDTH=80 MANPAGER=cat man --warnings "$page" 2>/tmp/man.err) || fail "man $page exited $?"
  [ ! -s /tmp/man.err ] || { cat /tmp/man.err; fail "man $page warned"; }
  grep -q '^NAME' <<<"$out" || fail "man $page: no NAME section: $out"
  grep -q '^SEE ALSO' <<<"$out" || fail "man $page: no SEE ALSO section"
done
man binfmtctl-install | grep -- '--dry-run' >/dev/null || fail "man binfmtctl-install lacks --dry-run"
man 5 binfmtctl.toml | grep 'keep_existing' >/dev/null || fail "man 5 binfmtctl.toml lacks keep_existing"
# The man-db trigger indexed the NAME lines (what apropos and whatis read).
whatis binfmtctl | grep '^binfmtctl (1) *- [A-Z]' >/dev/null || fail "whatis binfmtctl: $(whatis binfmtctl 2>&1)"
whatis binfmtctl.toml | grep '^binfmtctl.toml (5)' >/dev/null || fail "whatis binfmtctl.toml"

step "systemd-analyze verify"
unit=/usr/lib/systemd/system/binfmtctl.service
grep -qx 'ExecStart=/usr/bin/binfmtctl apply' "$unit" || fail "ExecStart is not /usr/bin/binfmtctl apply"
systemd-analyze verify "$unit" > /tmp/verify.log 2>&1 || { cat /tmp/verify.log; fail "systemd-analyze verify"; }
[ ! -s /tmp/verify.log ] || { cat /tmp/verify.log; fail "systemd-analyze verify warned"; }

step "completions"
# bash: the function the script defines completes subcommands.
got=$(bash -c 'source /usr/share/bash-completion/completions/binfmtctl
  COMP_WORDS=(binfmtctl ins); COMP_CWORD=1; COMP_LINE="binfmtctl ins"; COMP_POINT=${#COMP_LINE}
  _binfmtctl binfmtctl ins binfmtctl; printf "%s\n" "${COMPREPLY[@]}"')
grep -qx install <<<"$got" || fail "bash completion of 'binfmtctl ins': $got"
# zsh: compinit finds _binfmtctl on Debian's fpath (vendor-completions).
got=$(zsh -fc 'autoload -U compinit; compinit -u -d /tmp/zcompdump; print -r -- $_comps[binfmtctl]')
[ "$got" = _binfmtctl ] || fail "zsh: binfmtctl completes with '$got', want _binfmtctl"
zsh -n /usr/share/zsh/vendor-completions/_binfmtctl || fail "zsh -n _binfmtctl"
# fish: autoloaded from vendor_completions.d.
got=$(fish -c 'complete -C "binfmtctl ins"')
grep -q '^install' <<<"$got" || fail "fish completion of 'binfmtctl ins': $got"
got=$(fish -c 'complete -C "binfmtctl rootfs create --"')
grep -q '^--include' <<<"$got" || fail "fish completion of 'binfmtctl rootfs create --': $got"

step "enable, reinstall, remove, purge"
# As an admin would: an enabled unit stays enabled across an upgrade (here a reinstall, which
# runs the same maintainer-script branches), and purge removes the links deb-systemd-helper
# recorded.
wants=/etc/systemd/system/sysinit.target.wants/binfmtctl.service
systemctl enable binfmtctl.service > /tmp/enable.log 2>&1 || { cat /tmp/enable.log; fail "systemctl enable"; }
[ -L "$wants" ] || fail "systemctl enable made no link"
dpkg -i /tmp/pkg.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i (reinstall)"; }
[ -L "$wants" ] || fail "the reinstall disabled the unit"
dpkg --remove binfmtctl > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg --remove"; }
[ -e /usr/bin/binfmtctl ] && fail "dpkg --remove left /usr/bin/binfmtctl"
dpkg-query -W -f='${Status}\n' binfmtctl | grep -x 'deinstall ok config-files' >/dev/null || fail "not in config-files state after remove"
dpkg --purge binfmtctl > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg --purge"; }
if dpkg-query -W -f='${Status}\n' binfmtctl 2>/dev/null | grep -E ' (installed|config-files)$' >/dev/null; then fail "still installed"; fi

step "nothing left"
left=0
while IFS= read -r f; do
  [ "$f" = /. ] && continue
  if [ -e "$f" ] || [ -L "$f" ]; then
    # Directories the system had before (/usr/bin, /usr/share/man/man1, ...) stay, of course.
    if [ -d "$f" ] && grep -qxF -- "$f" /tmp/before; then continue; fi
    echo "left behind: $f"; left=1
  fi
done < /tmp/files
ls /var/lib/dpkg/info/binfmtctl.* 2>/dev/null && { echo "dpkg still has binfmtctl's control files"; left=1; }
snapshot > /tmp/after
# dpkg's own database and log, and man-db's index (rebuilt by its trigger), change by design;
# anything else added or removed is a trace of the package.
LC_ALL=C comm -3 /tmp/before /tmp/after |
  grep -v -E '^\s*(/var/lib/dpkg/|/var/log/dpkg\.log$|/var/cache/man/|/var/cache/debconf/|/var/log/apt/)' > /tmp/diff || true
if [ -s /tmp/diff ]; then
  echo "paths that differ after install + purge (left: gone, right: new):"; cat /tmp/diff; left=1
fi
[ "$left" = 0 ] || fail "the purged package left traces"
echo "ok"
