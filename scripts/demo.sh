#!/usr/bin/env bash
# The main job: set up, build, start a private berthd and drive it with
# Debian's real `ctr` and with berth's own CLI — version, plugins, namespaces,
# a container record made from a locally built busybox rootfs, and events.
#
# Runs as root on Debian 12. Everything lives in a temporary directory that is
# removed at the end; the daemon is stopped with SIGTERM (graceful shutdown).
# Running the container's process arrives with the runtime (tasks) issue; this
# script creates, inspects, labels and removes the container record.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --bins

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
sock="$work/berth.sock"
berthd_pid=
cleanup() {
    [[ -n "$berthd_pid" ]] && kill -TERM "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

target/debug/berthd --address "$sock" --root "$work/root" --state "$work/state" \
    2>"$work/berthd.log" &
berthd_pid=$!
for _ in $(seq 1 100); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.1
done

# A test image's root filesystem, built locally from Debian's static busybox.
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh ls echo cat sleep; do ln -s busybox "$rootfs/bin/$applet"; done

ctr() { command ctr --address "$sock" "$@"; }
berth() { target/debug/berth --address "$sock" "$@"; }

step ctr version
step ctr plugins ls
step ctr namespaces create demo team=platform
step ctr namespaces ls
command ctr --address "$sock" -n demo events >"$work/events.txt" &
events_pid=$!
sleep 0.3
step ctr -n demo containers create --label app=web --rootfs "$rootfs" web echo hello
step ctr -n demo containers label web tier=frontend
step ctr -n demo containers ls
step berth -n demo containers ls
step berth -n demo containers info web
step ctr -n demo containers rm web
sleep 0.3
kill "$events_pid" 2>/dev/null || true
wait "$events_pid" 2>/dev/null || true
printf '\n\033[1m# events seen by `ctr -n demo events` meanwhile\033[0m\n'
cat "$work/events.txt"
step ctr namespaces rm demo
echo
echo "demo finished: berthd log was $work/berthd.log (removed on exit)"
