#!/usr/bin/env bash
# Container start latency and memory: berthd next to Debian's containerd,
# both driven by Debian's ctr, both running containers with runc.
#
# Both daemons run at once, each on a private socket, root and state, with the
# same busybox image imported (`ctr images import`, unpacked into overlayfs):
#   - `ctr run --rm IMAGE id /bin/true`, RUNS times (default 40) each after 3
#     warm-up runs, the two daemons interleaved run by run (berthd first on odd
#     runs, containerd first on even ones) so that load from other work on the
#     machine hits both alike: mean, median and p90 wall-clock latency;
#   - `ctr tasks exec` of `/bin/true` in a running container, RUNS times each,
#     interleaved the same way: mean, median and p90;
#   - 20 containers running `/bin/sleep` (`ctr run -d`), one daemon at a time:
#     the daemon's RSS and the shims' total and per-container RSS, then every
#     container is removed.
# The load average is printed before and after: compare runs taken under
# similar load only.
#
# With PHASES=1 the timed runs are recorded with `perf record -a` (process
# exec and exit tracepoints only, which cost little) and each daemon's mean
# time is split into phases: `ctr` start to the shim's exec (ctr itself and
# the image, lease, snapshot and container calls), to `runc`'s exec (shim
# start), to the container's `/bin/true` (runc create and start), and from
# its exit to `ctr`'s (Wait, Delete, cleanup).
#
# berthd serves io.containerd.runc.v2 with its own containerd-shim-berth-v2
# (SHIM=berth, the default) or Debian's containerd-shim-runc-v2 (SHIM=runc);
# containerd always uses Debian's containerd-shim-runc-v2.
#
# Usage: scripts/bench-run.sh   (env: RUNS=40, SHIM=berth|runc, SKIP_BUILD=1,
#                                PHASES=1, BERTHD_BIN, CTR_BIN, CONTAINERD_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-40}
SHIM=${SHIM:-berth}
RUNNING=20
IMAGE=docker.io/library/bench-busybox:latest
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd and containerd-shim-berth-v2 (release)…" >&2
    cargo build --release -q -p berth-daemon -p berth-shim --bins
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

WORK=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
declare -A PIDS=()
declare -A SOCKS=()

cleanup() {
    local name
    [[ -z ${PERF:-} ]] || kill -INT "$PERF" 2>/dev/null || true
    for name in "${!PIDS[@]}"; do
        remove_all "$name" || true
        kill "${PIDS[$name]}" 2>/dev/null || true
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
if [[ $SHIM == runc ]]; then
    BERTHD_CONFIG='[plugins."io.containerd.runtime.v2.task".shims]
"io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2"'
fi

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Prints "daemon_rss_mib shims_total_mib per_container_mib count" with
# RUNNING containers up on daemon $1.
memory() {
    local name=$1 i pid shims=0 count=0
    for i in $(seq "$RUNNING"); do
        ctr_ "$name" run -d "$IMAGE" "idle-$i" /bin/sleep 1000
    done
    sleep 1
    for pid in $(pgrep -f "containerd-shim.*-address ${SOCKS[$name]}( |$)" || true); do
        shims=$((shims + $(rss_kib "$pid")))
        count=$((count + 1))
    done
    local daemon
    daemon=$(rss_kib "${PIDS[$name]}")
    remove_all "$name"
    awk -v d="$daemon" -v s="$shims" -v n="$count" \
        'BEGIN { printf "%.1f %.1f %.2f %d", d / 1024, s / 1024, (n ? s / n / 1024 : 0), n }'
}

make_image
start_berthd
start_containerd
for name in berthd containerd; do
    ctr_ "$name" images import "$WORK/image.tar" >/dev/null
    for i in 1 2 3; do ctr_ "$name" run --rm "$IMAGE" "warm-$i" /bin/true; done
    : >"$WORK/$name.samples"
done

if [[ -n ${PHASES:-} ]]; then
    perf record -q -a -e sched:sched_process_exec,sched:sched_process_exit \
        -o "$WORK/sched.data" -- sleep 100000 >/dev/null 2>&1 &
    PERF=$!
    sleep 1
fi
: >"$WORK/order"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    if ((i % 2)); then
        run_once berthd "bench-$i"
        run_once containerd "bench-$i"
    else
        run_once containerd "bench-$i"
        run_once berthd "bench-$i"
    fi
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n ${PHASES:-} ]]; then
    kill -INT "$PERF"
    wait "$PERF" || true
fi

# `ctr tasks exec` of /bin/true in a running container, interleaved too.
for name in berthd containerd; do
    ctr_ "$name" run -d "$IMAGE" exec-target /bin/sleep 1000
    ctr_ "$name" tasks exec --exec-id warm exec-target /bin/true
    : >"$WORK/$name.exec"
done
exec_once() {
    local name=$1 start
    start=$(now_ns)
    ctr_ "$name" tasks exec --exec-id "$2" exec-target /bin/true
    echo $(($(now_ns) - start)) >>"$WORK/$name.exec"
}
for i in $(seq "$RUNS"); do
    if ((i % 2)); then order=(berthd containerd); else order=(containerd berthd); fi
    for name in "${order[@]}"; do exec_once "$name" "e$i"; done
done
for name in berthd containerd; do remove_all "$name"; done

printf 'ctr run --rm IMAGE id /bin/true, %d interleaved runs each; memory with %d running containers\n' "$RUNS" "$RUNNING"
printf '%-26s %8s %8s %8s %12s %14s %12s\n' daemon "mean ms" "med ms" "p90 ms" "daemon MiB" "shims MiB" "MiB/shim"
for name in berthd containerd; do
    read -r mean median p90 <<<"$(summary "$name")"
    read -r drss stotal sper count <<<"$(memory "$name")"
    label="berthd (shim: $SHIM)"
    [[ $name == containerd ]] && label="containerd 1.6 (runc-v2)"
    printf '%-26s %8s %8s %8s %12s %14s %12s\n' "$label" "$mean" "$median" "$p90" "$drss" "$stotal" "$sper"
    [[ $count == "$RUNNING" ]] || echo "  (found $count shims for $RUNNING containers)" >&2
done

printf '\nctr tasks exec ID /bin/true in a running container, %d interleaved runs each\n' "$RUNS"
printf '%-26s %8s %8s %8s\n' daemon "mean ms" "med ms" "p90 ms"
for name in berthd containerd; do
    read -r mean median p90 <<<"$(summary "$name" exec)"
    printf '%-26s %8s %8s %8s\n' "$name" "$mean" "$median" "$p90"
done

if [[ -n ${PHASES:-} ]]; then
    echo
    echo "phases, mean ms: ctr + calls | shim start | runc create + start | wait, delete, cleanup | total"
    perf script -i "$WORK/sched.data" 2>/dev/null | awk -v order="$WORK/order" '
        BEGIN { while ((getline d < order) > 0) daemons[++n] = d }
        function field(key,   i) {
            for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2)
            return ""
        }
        { sub(/:$/, "", $4); t = $4 * 1000 }
        /sched_process_exec/ {
            f = field("filename")
            if (f ~ /\/ctr$/) { run++; start[run] = t; pid[run] = field("pid"); next }
            if (f ~ /containerd-shim/ && !(run in shim)) shim[run] = t
            else if (f ~ /\/runc$/ && !(run in runc)) runc[run] = t
            else if (f == "/bin/true") trueexec[run] = t
        }
        /sched_process_exit/ {
            if (field("comm") == "true") trueexit[run] = t
            else if (field("pid") == pid[run] && !(run in end)) end[run] = t
        }
        END {
            for (r = 1; r <= run; r++) {
                if (!(r in end) || !(r in shim) || !(r in runc) || !(r in trueexec) || !(r in trueexit)) continue
                d = daemons[r]; count[d]++
                a[d] += shim[r] - start[r]; b[d] += runc[r] - shim[r]
                c[d] += trueexec[r] - runc[r]; e[d] += end[r] - trueexit[r]; tot[d] += end[r] - start[r]
            }
            for (d in count)
                printf "%-10s %3d runs: %6.1f | %6.1f | %6.1f | %6.1f | %6.1f\n", d, count[d],
                    a[d] / count[d], b[d] / count[d], c[d] / count[d], e[d] / count[d], tot[d] / count[d]
        }'
fi
