#!/usr/bin/env bash
# Runs the whole test suite (as root on Debian 12): installs the packages the tests need and
# fetches the real foreign binaries they run (scripts/deps.sh), then the unit and integration
# tests. The integration tests use private binfmt_misc instances in user namespaces (Linux >=
# 6.7), so they neither depend on nor change the host's entries (quickstart's, or anyone
# else's); only the container test writes the host's instance, briefly, in a step of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup's toolchain first: Debian's own cargo (1.65, installed for the hybrid Rust tests) is
# too old to build binfmtctl.
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Every test that needs root, the static QEMU and the fetched binaries runs (tests/common's
# `Needs`; without these variables, `cargo test` as an ordinary user skips them, saying so).
export BINFMTCTL_TEST_ROOT=1
# First everything that leaves the host's binfmt_misc alone (private instances only)...
cargo test --locked -- \
  --skip privileged_container_installs_on_the_host_and_uninstalls \
  --skip binfmtctl_on_debian_6_1_kernel --skip binfmtctl_service_at_boot_under_systemd \
  --skip binfmtctl_on_an_arm64_kernel_with_and_without_aarch32 \
  2>&1 | tee "$log"
# ...then, alone and last, the Debian 6.1 kernels in VMs (amd64 under KVM or TCG; arm64 under
# TCG with two CPU models, the aarch64 binfmtctl built by scripts/build-aarch64.sh in its cached
# system) and the privileged container, which registers on this machine's own instance for a
# moment (only arches the host has nothing for, removed afterwards), then the multi-arch image
# (container/build-multiarch.sh: amd64 + arm64 in one OCI image index, reusing that aarch64 build).
BINFMTCTL_TEST_VM=1 BINFMTCTL_TEST_CONTAINER=1 \
  cargo test --locked --test vm_debian_kernel --test vm_arm64 --test host_container_entrypoint \
  --test host_container_multiarch 2>&1 | tee -a "$log"
# The Debian package: built (reusing the static release build the VM tests made), lintian,
# installed, used and purged in a cached Debian system (packaging/deb/test.sh).
packaging/deb/test.sh
# The arm64 package: the aarch64 build the arm64 VM test made (scripts/build-aarch64.sh), lintian
# and its binary's arch (the install test needs an amd64 system).
packaging/deb/test.sh "$(DEB_ARCH=arm64 packaging/deb/build.sh)"
# One closing line for the whole run (cargo prints one per test binary, the last being the
# doc-tests, which may be empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; if (p == 0) exit 1 }' "$log"
