#!/usr/bin/env bash
# berth's crash-and-load soak: scripts/soak.sh [MINUTES] (default 3).
#
# Runs target/debug/berth-soak (crates/berth-soak): 8 workers run the
# container lifecycle with pulls and garbage collection against a private
# berthd while a chaos loop kill -9s the daemon (and restarts it), shims and
# container processes; then it checks records, tasks and leaks and prints
#   soak: N operations, R restarts, S shims killed, C container processes killed, E errors tolerated, leaks L
# and exits non-zero unless L is 0. Needs root and what scripts/setup.sh
# installs. Builds the workspace's binaries only if one is missing.
#
# Everything the soak makes lives under one temporary directory; on any exit
# (failure and Ctrl-C included) this script kills the processes that refer to
# it (berthd, the registry, shims) and the processes below them, unmounts what
# is mounted under it, removes the soak's cgroups and the directory.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-3}
bin=${CARGO_TARGET_DIR:-target}/debug
for b in berth-soak berthd containerd-shim-berth-v2; do
    if [[ ! -x $bin/$b ]]; then
        cargo build --workspace --bins
        break
    fi
done

work=$(mktemp -d /tmp/berth-soak.XXXXXX)
# Where a failed soak leaves berthd's log (every start appended).
export BERTH_SOAK_LOG=${BERTH_SOAK_LOG:-/tmp/berth-soak-failed-berthd.log}
namespace=soak-$$
driver=

# The pids of every process below $1.
descendants() {
    local kids
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
    for k in $kids; do
        echo "$k"
        descendants "$k"
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
        kill -9 "$driver" 2>/dev/null || true
    fi
    local owners=() p
    for p in /proc/[0-9]*; do
        if [[ ${p#/proc/} != "$$" ]] && grep -qF "$work" "$p/cmdline" 2>/dev/null; then
            owners+=("${p#/proc/}")
        fi
    done
    for p in "${owners[@]}"; do
        # Containers first, then their shim (or berthd, or the registry).
        for k in $(descendants "$p"); do kill -9 "$k" 2>/dev/null || true; done
        kill -9 "$p" 2>/dev/null || true
    done
    sleep 0.5
    # Deepest mount points first.
    awk -v w="$work" 'index($5, w) == 1 { print length($5), $5 }' /proc/self/mountinfo |
        sort -rn | cut -d' ' -f2- | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    # runc's state for the namespace lives outside the daemon's directories.
    rm -rf "/run/berth/runc/$namespace"
    for d in /sys/fs/cgroup/*/"$namespace"; do
        [[ -d $d ]] || continue
        rmdir "$d"/* "$d" 2>/dev/null || true
    done
    # The driver keeps the daemon's log when the soak fails; if the driver
    # itself died, keep it here.
    if ((status != 0)) && compgen -G "$work/berth-test-*/berthd.log" >/dev/null; then
        cat "$work"/berth-test-*/berthd.log >"$BERTH_SOAK_LOG"
        echo "soak: berthd log kept in $BERTH_SOAK_LOG" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TMPDIR=$work "$bin/berth-soak" --minutes "$minutes" --namespace "$namespace" </dev/null &
driver=$!
wait "$driver"
