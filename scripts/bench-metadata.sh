#!/usr/bin/env bash
# Metadata benchmark: berthd next to Debian's containerd, both driven by ctr.
#
# For each daemon, started on a private socket, root and state:
#   - create N container records (default 2,000) with
#     `ctr containers create --rootfs DIR id-$i sh`, one ctr process each,
#     and time the whole loop;
#   - time `ctr containers ls` (and `ls -q`) over those N records, best and
#     median of several runs;
#   - note the daemon's resident memory afterwards.
# Prints a table. Each ctr call costs a process start for both daemons alike,
# so the create loop compares end-to-end latency as a user sees it.
#
# Usage: scripts/bench-metadata.sh [N]     (env: LS_RUNS=7, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-2000}
LS_RUNS=${LS_RUNS:-7}
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd (release)…" >&2
    cargo build --release --bins -q
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    # containerd may leave mounts under its root or state; unmount deepest first.
    local mounts
    mounts=$(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    if [[ -n $mounts ]]; then
        while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# A busybox rootfs for --rootfs (ctr only records its path in the spec).
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/bin"
cp /bin/busybox "$ROOTFS/bin/busybox"
ln -s busybox "$ROOTFS/bin/sh"

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

# bench NAME SOCK PID LOG → prints "NAME create_s ls_best_ms ls_median_ms lsq_median_ms rss_mib retries"
bench() {
    local name=$1 sock=$2 pid=$3 log=$4
    wait_ready "$sock" "$pid" "$log" || return 1
    local c=("$CTR" --address "$sock" -n bench)
    echo "$name: creating $N containers…" >&2
    local t0 t1 i tries retries=0
    t0=$(now)
    for ((i = 0; i < N; i++)); do
        # A failed create is retried (each ctr call draws a new random lease
        # id) and counted: a non-zero count in the table is a bug to look at.
        tries=0
        until "${c[@]}" containers create --rootfs "$ROOTFS" "id-$i" sh >/dev/null 2>"$WORK/err"; do
            tries=$((tries + 1))
            if ((retries == 0 && tries == 1)); then
                echo "$name: create id-$i failed, retrying (first failure): $(cat "$WORK/err")" >&2
            fi
            if ((tries >= 10)); then
                echo "$name: create id-$i failed $tries times: $(cat "$WORK/err")" >&2
                return 1
            fi
        done
        retries=$((retries + tries))
    done
    t1=$(now)
    local create_s
    create_s=$(elapsed "$t0" "$t1")
    local count
    count=$("${c[@]}" containers ls -q | wc -l)
    if ((count != N)); then
        echo "$name: ls -q lists $count containers, expected $N" >&2
        return 1
    fi
    local ls_times=() lsq_times=() r
    for ((r = 0; r < LS_RUNS; r++)); do
        t0=$(now)
        "${c[@]}" containers ls >/dev/null
        t1=$(now)
        ls_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
        t0=$(now)
        "${c[@]}" containers ls -q >/dev/null
        t1=$(now)
        lsq_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    done
    local ls_best ls_med lsq_med rss
    ls_best=$(printf '%s\n' "${ls_times[@]}" | sort -n | head -n1)
    ls_med=$(printf '%s\n' "${ls_times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    lsq_med=$(printf '%s\n' "${lsq_times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    echo "$name $create_s $ls_best $ls_med $lsq_med $rss $retries"
}

results=()

# berthd on private directories.
B=$WORK/berthd
mkdir -p "$B"
"$BERTHD" --address "$B/berth.sock" --root "$B/root" --state "$B/state" \
    --log-level warn >"$B/log" 2>&1 </dev/null &
PIDS+=($!)
if line=$(bench berthd "$B/berth.sock" "$!" "$B/log"); then
    results+=("$line")
else
    results+=("berthd failed - - - - -")
fi
kill "${PIDS[-1]}" 2>/dev/null || true
wait "${PIDS[-1]}" 2>/dev/null || true

# Debian's containerd with a minimal config of its own: its sockets, root and
# state are private; every plugin keeps its default (nothing disabled).
C=$WORK/containerd
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
    results+=("containerd failed - - - - -")
fi

echo
printf 'metadata benchmark: %d containers via ctr, %s cores, %s\n' "$N" "$(nproc)" "$("$CTR" --version)"
printf '%-11s %14s %13s %15s %17s %10s %8s\n' daemon "create all (s)" "ls best (ms)" "ls median (ms)" "ls -q median (ms)" "RSS (MiB)" retries
for r in "${results[@]}"; do
    read -r name create lsb lsm lsq rss retries <<<"$r"
    printf '%-11s %14s %13s %15s %17s %10s %8s\n' "$name" "$create" "$lsb" "$lsm" "$lsq" "$rss" "$retries"
done
