#!/usr/bin/env bash
# Pod start latency and pod density through CRI, berthd against Debian's
# containerd 1.6.20 with its CRI plugin, driven by one CRI client
# (crates/berth-cri/examples/cri_bench.rs) the way the kubelet drives them:
# RunPodSandbox (pause container + CNI bridge network), CreateContainer and
# StartContainer of a busybox `sleep`.
#
# Both daemons use the same pause image (berth's built-in one, exported from
# berthd and imported into containerd), the same busybox image, the same CNI
# conflist and Debian's plugins. Latency rounds alternate the daemons; each
# round starts PODS pods, then stops and removes them outside the timing.
# Density starts DENSITY pods on one daemon at a time and reads the daemon's
# RSS and the shims' PSS.
#
# PHASES=1 also prints the median of each call (RunPodSandbox, CreateContainer,
# StartContainer).
#
# Usage: scripts/bench-cri.sh   (env: ROUNDS=6, PODS=5, DENSITY=50, PHASES=1, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${BENCH_CRI_INSIDE:-} ]]; then
    if [[ -z ${SKIP_BUILD:-} ]]; then
        echo "building berthd, the shim and the CRI client (release)…" >&2
        cargo build --release -q -p berth-daemon -p berth-shim --bins
        cargo build --release -q -p berth-cri --example cri_bench
    fi
    # A private mount namespace: containerd's CNI keeps its cache in the
    # fixed /var/lib/cni, which the benchmark replaces with its own.
    exec env BENCH_CRI_INSIDE=1 unshare -m --propagation private "$0" "$@"
fi

ROUNDS=${ROUNDS:-6}
PODS=${PODS:-5}
DENSITY=${DENSITY:-50}
IMAGE=docker.io/library/bench-busybox:latest
PAUSE=localhost/berth/pause:builtin
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}
CLIENT=${CRI_BENCH_BIN:-$PWD/target/release/examples/cri_bench}
WORK=$(mktemp -d /tmp/berth-bench-cri.XXXXXX)
declare -A PIDS=()
declare -A SOCKS=()

trap 'cri_cleanup "$CLIENT" benchcri0' EXIT

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

cri_bridge_network benchcri0 10.98.0.0/16

# Appends the latencies (ns) of PODS pod starts on daemon $1, then cleans up.
round() {
    local name=$1
    "$CLIENT" "${SOCKS[$name]}" phases "$PODS" "$IMAGE" bench >>"$WORK/$name.phases"
    "$CLIENT" "${SOCKS[$name]}" clean bench
}

# Sum of a field (kB) of /proc/PID/FILE over the shims of daemon $1.
shims_sum() { # daemon field file
    local total=0 pid cmd v
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        cmd=$( (tr '\0' ' ' <"$proc/cmdline") 2>/dev/null) || continue
        case "$cmd" in *containerd-shim*"${SOCKS[$1]}"*) ;; *) continue ;; esac
        v=$(awk -v f="$2:" '$1==f {print $2}' "/proc/$pid/$3" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

make_image
start_berthd
start_containerd
for name in berthd containerd; do
    ctr_ "$name" -n k8s.io images import "$WORK/image.tar" >/dev/null
done
# The first pod on berthd imports its built-in pause image; containerd gets
# the same image.
"$CLIENT" "${SOCKS[berthd]}" start 1 "$IMAGE" bench >/dev/null
"$CLIENT" "${SOCKS[berthd]}" clean bench
ctr_ berthd -n k8s.io images export "$WORK/pause.tar" "$PAUSE"
ctr_ containerd -n k8s.io images import "$WORK/pause.tar" >/dev/null
for name in berthd containerd; do # warm-up
    round "$name" >/dev/null
    : >"$WORK/$name.phases"
done

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$ROUNDS"); do
    if ((i % 2)); then order=(berthd containerd); else order=(containerd berthd); fi
    for name in "${order[@]}"; do round "$name"; done
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
for name in berthd containerd; do
    awk '{ print $1 + $2 + $3 }' "$WORK/$name.phases" >"$WORK/$name.samples"
done

printf '\npod start (RunPodSandbox + CreateContainer + StartContainer), %d pods each (ms)\n' \
    "$((ROUNDS * PODS))"
printf '%-34s %8s %8s %8s\n' daemon mean median p90
declare -A MEDIAN=()
for name in berthd containerd; do
    read -r mean median p90 <<<"$(summary "$name")"
    MEDIAN[$name]=$median
    printf '%-34s %8s %8s %8s\n' "$name" "$mean" "$median" "$p90"
done
awk -v b="${MEDIAN[berthd]}" -v c="${MEDIAN[containerd]}" \
    'BEGIN { printf "berth/containerd (median) = %.2f\n", b / c }'
if [[ -n ${PHASES:-} ]]; then
    printf '\nmedian per call (ms)\n%-12s %14s %16s %15s\n' daemon RunPodSandbox CreateContainer StartContainer
    for name in berthd containerd; do
        printf '%-12s' "$name"
        for col in 1 2 3; do
            printf ' %15.1f' "$(cut -d' ' -f"$col" "$WORK/$name.phases" | sort -n |
                awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] / 1e6 }')"
        done
        echo
    done
fi

printf '\n%d pods running (kB)\n' "$DENSITY"
printf '%-12s %12s %16s %12s %12s\n' daemon "daemon RSS" "(anon / file)" "shims PSS" "shims RSS"
for name in berthd containerd; do
    "$CLIENT" "${SOCKS[$name]}" start "$DENSITY" "$IMAGE" bench >/dev/null
    sleep 2
    status=/proc/${PIDS[$name]}/status
    rss=$(awk '$1=="VmRSS:" {print $2}' "$status")
    split=$(awk '$1=="RssAnon:" {a=$2} $1=="RssFile:" {f=$2} END {print a " / " f}' "$status")
    printf '%-12s %12s %16s %12s %12s\n' "$name" "$rss" "$split" \
        "$(shims_sum "$name" Pss smaps_rollup)" "$(shims_sum "$name" VmRSS status)"
    "$CLIENT" "${SOCKS[$name]}" clean bench
done
