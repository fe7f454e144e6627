#!/usr/bin/env bash
# Container start latency and memory: berthd next to Debian's containerd,
# both driven by Debian's ctr, both running containers with runc.
#
# For each daemon, on a private socket, root and state:
#   - `ctr run --rm --rootfs DIR id /bin/true`, RUNS times (default 30) after
#     3 warm-up runs: mean, median and p90 wall-clock latency of the command;
#   - 20 containers running `/bin/sleep` (`ctr run -d`): the daemon's RSS and
#     the shims' total and per-container RSS, then every container is removed.
#
# berthd serves io.containerd.runc.v2 with its own containerd-shim-berth-v2
# (SHIM=berth, the default) or Debian's containerd-shim-runc-v2 (SHIM=runc);
# containerd always uses Debian's containerd-shim-runc-v2.
#
# Usage: scripts/bench-run.sh   (env: RUNS=30, SHIM=berth|runc, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
SHIM=${SHIM:-berth}
RUNNING=20
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd and containerd-shim-berth-v2 (release)…" >&2
    cargo build --release -q -p berth-daemon -p berth-shim --bins
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

WORK=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
DAEMON_PID=

cleanup() {
    if [[ -n $DAEMON_PID ]]; then
        remove_all || true
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A busybox rootfs, as the tests build it.
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,dev,etc,proc,sys,tmp,run}
cp /bin/busybox "$ROOTFS/bin/busybox"
for applet in sh true sleep echo; do ln -s busybox "$ROOTFS/bin/$applet"; done

ctr_() { "$CTR" --address "$SOCK" "$@"; }

wait_ready() {
    for _ in $(seq 100); do
        ctr_ version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "daemon at $SOCK did not come up" >&2
    return 1
}

start_berthd() {
    local dir=$WORK/berthd
    mkdir -p "$dir"
    SOCK=$dir/berth.sock
    : >"$dir/config.toml"
    if [[ $SHIM == runc ]]; then
        printf '[runtime.shims]\n"io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2"\n' >"$dir/config.toml"
    fi
    "$BERTHD" --address "$SOCK" --root "$dir/root" --state "$dir/state" \
        --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    DAEMON_PID=$!
    wait_ready
}

start_containerd() {
    local dir=$WORK/containerd
    mkdir -p "$dir"
    SOCK=$dir/containerd.sock
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$dir/debug.sock"
TOML
    "$CONTAINERD" --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    DAEMON_PID=$!
    wait_ready
}

stop_daemon() {
    kill "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}

remove_all() {
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do
        ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_ containers ls -q 2>/dev/null); do
        for _ in $(seq 50); do
            ctr_ tasks rm -f "$id" >/dev/null 2>&1 && break
            ctr_ tasks ls -q | grep -qx "$id" || break
            sleep 0.1
        done
        ctr_ containers rm "$id" >/dev/null 2>&1 || true
    done
}

now_ns() { date +%s%N; }

# Prints "mean median p90" in milliseconds of RUNS `ctr run --rm … true`.
latency() {
    local i start samples=()
    for i in 1 2 3; do ctr_ run --rm --rootfs "$ROOTFS" "warm-$i" /bin/true; done
    for i in $(seq "$RUNS"); do
        start=$(now_ns)
        ctr_ run --rm --rootfs "$ROOTFS" "bench-$i" /bin/true
        samples+=($(($(now_ns) - start)))
    done
    printf '%s\n' "${samples[@]}" | sort -n | awk '
        { v[NR] = $1; sum += $1 }
        END {
            p90 = int((NR * 9 + 9) / 10); if (p90 > NR) p90 = NR
            printf "%.1f %.1f %.1f", sum / NR / 1e6, v[int((NR + 1) / 2)] / 1e6, v[p90] / 1e6
        }'
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Prints "daemon_rss_mib shims_total_mib per_container_mib" with RUNNING containers up.
memory() {
    local i pid shims=0 count=0
    for i in $(seq "$RUNNING"); do
        ctr_ run -d --rootfs "$ROOTFS" "idle-$i" /bin/sleep 1000
    done
    sleep 1
    for pid in $(pgrep -f "containerd-shim.*-address $SOCK( |$)" || true); do
        shims=$((shims + $(rss_kib "$pid")))
        count=$((count + 1))
    done
    local daemon
    daemon=$(rss_kib "$DAEMON_PID")
    remove_all
    awk -v d="$daemon" -v s="$shims" -v n="$count" \
        'BEGIN { printf "%.1f %.1f %.2f %d", d / 1024, s / 1024, (n ? s / n / 1024 : 0), n }'
}

report() {
    local name=$1 lat mem
    lat=$(latency)
    mem=$(memory)
    read -r mean median p90 <<<"$lat"
    read -r drss stotal sper count <<<"$mem"
    printf '%-26s %8s %8s %8s %12s %14s %12s\n' "$name" "$mean" "$median" "$p90" "$drss" "$stotal" "$sper"
    [[ $count == "$RUNNING" ]] || echo "  (found $count shims for $RUNNING containers)" >&2
}

printf 'ctr run --rm --rootfs DIR id /bin/true, %d runs; memory with %d running containers\n' "$RUNS" "$RUNNING"
printf '%-26s %8s %8s %8s %12s %14s %12s\n' daemon "mean ms" "med ms" "p90 ms" "daemon MiB" "shims MiB" "MiB/shim"

start_berthd
report "berthd (shim: $SHIM)"
stop_daemon

start_containerd
report "containerd 1.6 (runc-v2)"
stop_daemon
