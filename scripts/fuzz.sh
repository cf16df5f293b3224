#!/bin/sh
# Runs every cargo-fuzz target for SECONDS each (default 20), starting from the committed corpus
# fuzz/corpus/<target>, and fails on the first crash (the input is left in
# fuzz/artifacts/<target>/). New interesting inputs go to a temporary directory, so the committed
# corpus only changes when you decide to (see docs/security.md, "Fuzzing").
#
#   scripts/fuzz.sh            # 20 s per target
#   scripts/fuzz.sh 300        # 5 min per target
#   TARGETS="tar_scan config" scripts/fuzz.sh 60
#
# Needs cargo-fuzz (cargo install cargo-fuzz). With a nightly toolchain the targets are built with
# AddressSanitizer (-Zsanitizer=address); without one, with the stable toolchain and
# --sanitizer none (libFuzzer's coverage feedback still works; safe Rust needs no ASan to catch
# out-of-bounds accesses, which panic). FUZZ_TOOLCHAIN picks the toolchain explicitly.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-20}
targets=${TARGETS:-"register_record proc_entry elf_inspect tar_scan config binfmt_d"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 3
fi
if [ -z "${FUZZ_TOOLCHAIN:-}" ]; then
    if cargo +nightly --version >/dev/null 2>&1; then
        FUZZ_TOOLCHAIN=nightly
    else
        FUZZ_TOOLCHAIN=stable
    fi
fi
toolchain=$FUZZ_TOOLCHAIN
if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "fuzz.sh: the $toolchain toolchain is missing: rustup toolchain install $toolchain" >&2
    exit 3
fi
case $(cargo "+$toolchain" --version) in
*-nightly*) sanitizer=address ;;
*) sanitizer=none ;;
esac
echo "fuzz.sh: toolchain $toolchain, sanitizer $sanitizer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
cargo "+$toolchain" fuzz build -O --sanitizer "$sanitizer"
for t in $targets; do
    mkdir -p "$work/$t"
    echo "fuzz.sh: $t for ${seconds}s"
    # First directory: where libFuzzer writes new inputs; second: the committed seeds (read).
    if ! cargo "+$toolchain" fuzz run -O --sanitizer "$sanitizer" "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -n 40 "$work/$t.log" >&2
        echo "fuzz.sh: $t crashed; the input is in fuzz/artifacts/$t/" >&2
        echo "fuzz.sh: reproduce with cargo +$toolchain fuzz run -O --sanitizer $sanitizer $t fuzz/artifacts/$t/<file>" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added)|^Done' "$work/$t.log" || true
done
echo "fuzz.sh: no crash in $targets"
