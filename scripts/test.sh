#!/usr/bin/env bash
# Build berth and run every test and lint gate, as CI does.
#
# The binaries (and examples) are built first because the integration tests start
# target/debug/berthd and run target/debug/berth as real processes. After a
# successful build every gate runs even if an earlier one failed, so one CI
# run shows all failures; the script fails if any gate did.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Tests drive the daemon through Debian's ctr and never read stdin.
exec </dev/null

step() { printf '\n==> %s\n' "$*"; }
failed=()
gate() {
    step "$*"
    if ! "$@"; then
        failed+=("$*")
    fi
}

step "cargo build --workspace --bins --examples"
cargo build --workspace --bins --examples

gate cargo test --workspace --no-fail-fast
gate bash scripts/soak.sh 3
# The fuzz targets build with AddressSanitizer in a workspace of their own,
# which takes over an hour cold on 2 cores: more than a CI run may spend.
# With BERTH_FUZZ_SECONDS set (and fuzz/target kept between runs), every
# target runs that long; a crash fails the gate and keeps its reproducer
# under fuzz/artifacts/<target>/.
if [[ -n ${BERTH_FUZZ_SECONDS:-} ]]; then
    gate bash scripts/fuzz.sh "$BERTH_FUZZ_SECONDS"
fi
gate cargo fmt --all -- --check
gate cargo clippy --workspace --all-targets -- -D warnings

if ((${#failed[@]} > 0)); then
    printf '\n==> FAILED:\n' >&2
    printf '    %s\n' "${failed[@]}" >&2
    exit 1
fi
step "all checks passed"
