#!/usr/bin/env bash
# Build berth and run every test and lint gate, as CI does.
#
# The binaries are built first because the integration tests start
# target/debug/berthd and run target/debug/berth as real processes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Tests drive the daemon through Debian's ctr and never read stdin.
exec </dev/null

step() { printf '\n==> %s\n' "$*"; }

step "cargo build --workspace --bins"
cargo build --workspace --bins

step "cargo test --workspace"
cargo test --workspace

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "all checks passed"
