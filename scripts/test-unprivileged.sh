#!/usr/bin/env bash
# `cargo test` as a contributor runs it on a laptop: as an ordinary user (nobody, uid 65534), with
# no BINFMTCTL_TEST_* variable, on a machine without QEMU, podman or runc. Run as root (it
# needs setpriv to become nobody); it changes nothing outside $WORK.
#
# A copy of the tree (without target/), a copy of root's crate registry (--offline) and the
# Rust toolchain go under $WORK (default /tmp/binfmtctl-unprivileged), owned by nobody. Then,
# as nobody, in a user + mount namespace: an overlay over /usr/bin without qemu-*, podman and
# runc, a tmpfs over /usr/libexec/qemu-binfmt, and a nested user namespace in which the tests
# see uid 65534 again (not the mapped root). Every gated test says SKIPPED and passes; any
# failure is a test that needs a gate or a seam (docs/design.md, "Tests").
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/binfmtctl-unprivileged}
[ "$(id -u)" = 0 ] || { echo "run as root (it becomes nobody with setpriv)" >&2; exit 2; }
# rustup's toolchain first: Debian's own cargo (1.65, installed for the hybrid Rust tests) is
# too old to build binfmtctl.
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
toolchain=$(rustc --print sysroot)
rm -rf "$WORK/src"
mkdir -p "$WORK"/{src,target,cargo,home/.ov,rust}
tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$WORK/src"
[ -d "$WORK/cargo/registry" ] || cp -a "$HOME/.cargo/registry" "$WORK/cargo/registry"
[ -x "$WORK/rust/bin/cargo" ] || cp -a "$toolchain/." "$WORK/rust/"
chown -R nobody:nogroup "$WORK"

# Inside the namespace, as its (mapped) root: hide QEMU, podman and runc, then drop to nobody.
inner='set -e
mount -t tmpfs tmpfs "$WORK/home/.ov"
mkdir "$WORK/home/.ov/u" "$WORK/home/.ov/w"
mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$WORK/home/.ov/u,workdir=$WORK/home/.ov/w" /usr/bin
rm -f /usr/bin/qemu-* /usr/bin/podman /usr/bin/runc
[ ! -d /usr/libexec/qemu-binfmt ] || mount -t tmpfs tmpfs /usr/libexec/qemu-binfmt
cd "$WORK/src"
exec unshare --user -- env -i HOME="$WORK/home" CARGO_HOME="$WORK/cargo" \
  CARGO_TARGET_DIR="$WORK/target" PATH="$WORK/rust/bin:/usr/local/bin:/usr/bin:/bin" \
  TERM=dumb LANG=C.UTF-8 cargo test --offline --locked --no-fail-fast'
WORK=$WORK setpriv --reuid=65534 --regid=65534 --clear-groups \
  unshare --user --map-root-user --mount --propagation private sh -c "$inner"
