#!/bin/sh
# Builds berth's fuzz targets (fuzz/, cargo-fuzz + libFuzzer, nightly) and
# runs each for SECONDS (default 30), one at a time. A crash's (or a hang's)
# reproducer is kept under fuzz/artifacts/<target>/; the script exits
# non-zero if any target crashed. Replay one with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs `cargo install cargo-fuzz` and the nightly toolchain. New inputs
# libFuzzer finds go to fuzz/target/corpus/<target>/ (not committed); the
# committed seeds under fuzz/corpus/<target>/ are read only.
set -eu

seconds=${1:-30}
# One input running longer than this is a hang, kept like a crash
# (`timeout-*`); generous, as the 2-core CI machine is shared.
timeout=${BERTH_FUZZ_TIMEOUT:-20}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../fuzz"

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build

failed=""
for t in $targets; do
    work="target/corpus/$t"
    mkdir -p "$work" "artifacts/$t"
    echo "== fuzz $t for ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/"; then
        echo "== $t: CRASH, reproducer in fuzz/artifacts/$t/" >&2
        failed="$failed $t"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: crashes in:$failed" >&2
    exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a crash"
