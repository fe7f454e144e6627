#!/usr/bin/env bash
# Content ingest benchmark: berthd next to Debian's containerd, both fed by
# `ctr content ingest` through the gRPC Write stream.
#
# For each daemon, started on a private socket, root and state:
#   - ingest a SIZE-MiB file of random bytes (default 1024) with
#     `ctr content ingest --expected-size … --expected-digest … REF < FILE`,
#     RUNS times (default 3), each into a fresh namespace so every run writes
#     and commits a new blob, and time each call;
#   - check the blob reads back with the right digest (`ctr content get`);
#   - note the daemon's peak resident memory (VmHWM).
# Prints MB/s (10^6 bytes per second, as dd and ctr print sizes) per daemon:
# best and median of the runs. The input file sits in the page cache (read
# once beforehand), so the numbers measure the Write stream and the store,
# not the source disk.
#
# Where the daemons keep their roots matters: both fsync a blob before it is
# committed, so on a slow disk both run at the disk's write speed. Set
# ROOT_BASE=/dev/shm (tmpfs) to measure the Write stream and the store
# themselves.
#
# Usage: scripts/bench-content.sh [SIZE_MIB]
#        (env: RUNS=3, SKIP_BUILD=1, ROOT_BASE=/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${1:-1024}
RUNS=${RUNS:-3}
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd (release)…" >&2
    cargo build --release -p berth-daemon --bin berthd -q
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

# The input lives in memory when it can, so reading it costs no disk time.
if [[ -d /dev/shm && -w /dev/shm ]]; then WORK_BASE=/dev/shm; else WORK_BASE=/tmp; fi
WORK=$(mktemp -d "$WORK_BASE/berth-bench-content.XXXXXX")
ROOTS=$(mktemp -d "${ROOT_BASE:-/tmp}/berth-bench-roots.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    local mounts
    mounts=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    if [[ -n $mounts ]]; then
        while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
    fi
    rm -rf "$WORK" "$ROOTS"
}
trap cleanup EXIT

now() { date +%s.%N; }

INPUT=$WORK/input
echo "generating ${SIZE_MIB} MiB of random input…" >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$INPUT"
BYTES=$(stat -c %s "$INPUT")
DIGEST=

wait_ready() { # SOCK PID LOG
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "daemon exited; log:" >&2
            tail -n 30 "$3" >&2
            return 1
        fi
        if [[ -S $1 ]] && "$CTR" --address "$1" version >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "daemon did not answer on $1; log:" >&2
    tail -n 30 "$3" >&2
    return 1
}

# bench NAME SOCK PID LOG → prints "NAME best_mbps median_mbps peak_rss_mib"
bench() {
    local name=$1 sock=$2 pid=$3 log=$4
    wait_ready "$sock" "$pid" "$log" || return 1
    # Let the startup garbage collection pass: unreferenced content is
    # garbage, and a collection must not race the runs.
    sleep 1
    local rates=() r t0 t1 ns
    for ((r = 0; r < RUNS; r++)); do
        ns=bench$r
        # A blob new to the daemon each run: one the store holds already is
        # committed without sending a byte (containerd's shared content).
        printf '%s %-24s' "$name" "$r" | dd of="$INPUT" bs=32 count=1 conv=notrunc status=none
        DIGEST=sha256:$(sha256sum "$INPUT" | cut -d' ' -f1)
        t0=$(now)
        "$CTR" --address "$sock" -n "$ns" content ingest \
            --expected-size "$BYTES" --expected-digest "$DIGEST" "ref-$r" <"$INPUT" >&2
        t1=$(now)
        rates+=("$(awk -v b="$BYTES" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.0f", b / (c - a) / 1e6 }')")
        echo "$name: run $((r + 1)): ${rates[-1]} MB/s" >&2
        local got
        got=sha256:$("$CTR" --address "$sock" -n "$ns" content get "$DIGEST" | sha256sum | cut -d' ' -f1)
        if [[ $got != "$DIGEST" ]]; then
            echo "$name: read back $got, expected $DIGEST" >&2
            return 1
        fi
        # Free the space for the next run (the file goes once unreferenced).
        "$CTR" --address "$sock" -n "$ns" content rm "$DIGEST" >/dev/null
    done
    local best median rss
    best=$(printf '%s\n' "${rates[@]}" | sort -n | tail -n1)
    median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    rss=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    echo "$name $best $median $rss"
}

results=()

B=$ROOTS/berthd
mkdir -p "$B"
"$BERTHD" --address "$B/berth.sock" --root "$B/root" --state "$B/state" \
    --log-level warn >"$B/log" 2>&1 </dev/null &
PIDS+=($!)
if line=$(bench berthd "$B/berth.sock" "$!" "$B/log"); then
    results+=("$line")
else
    results+=("berthd failed - -")
fi
kill "${PIDS[-1]}" 2>/dev/null || true
wait "${PIDS[-1]}" 2>/dev/null || true
rm -rf "$B"

C=$ROOTS/containerd
mkdir -p "$C"
cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
EOF
"$CONTAINERD" --config "$C/config.toml" --log-level warn >"$C/log" 2>&1 </dev/null &
PIDS+=($!)
if line=$(bench containerd "$C/containerd.sock" "$!" "$C/log"); then
    results+=("$line")
else
    results+=("containerd failed - -")
fi

echo
printf 'content ingest benchmark: %d MiB via ctr content ingest, %d runs, roots on %s (%s), %s cores, %s\n' \
    "$SIZE_MIB" "$RUNS" "${ROOT_BASE:-/tmp}" "$(df --output=fstype "$ROOTS" | tail -n1)" "$(nproc)" "$("$CTR" --version)"
printf '%-11s %14s %16s %15s\n' daemon "best (MB/s)" "median (MB/s)" "peak RSS (MiB)"
for r in "${results[@]}"; do
    read -r name best median rss <<<"$r"
    printf '%-11s %14s %16s %15s\n' "$name" "$best" "$median" "$rss"
done
