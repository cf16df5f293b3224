#!/usr/bin/env bash
# Runs the whole test suite (as root on Debian 12): installs the packages the tests need and
# fetches the real foreign binaries they run (scripts/deps.sh), then the unit and integration
# tests. The integration tests use private binfmt_misc instances in user namespaces (Linux >=
# 6.7), so the host's binfmt_misc is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# The Debian package: built (reusing the static release build the VM tests made), lintian,
# installed, used and purged in a cached Debian system (packaging/deb/test.sh).
packaging/deb/test.sh
# One closing line for the whole run (cargo prints one per test binary, the last being the
# doc-tests, which may be empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; if (p == 0) exit 1 }' "$log"
