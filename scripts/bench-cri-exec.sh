#!/usr/bin/env bash
# Exec through CRI, berthd against Debian's containerd 1.6.20 with its CRI
# plugin: ExecSync latency (`true` in a running busybox container), and
# the streaming exec the kubelet proxies for `kubectl exec`: the latency
# of `true`, and the throughput of 100 MiB on stdout, read by one client
# on Kubernetes' own SPDY library (tests/go-client/src/berth.test/
# streamclient, built here with Debian's golang packages).
#
# Both daemons run the same pause and busybox images; rounds alternate the
# daemons.
#
# Usage: scripts/bench-cri-exec.sh  (env: ROUNDS=6, EXECS=20, MIB=100, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd, the shim and the CRI clients (release)…" >&2
    cargo build --release -q -p berth-daemon -p berth-shim --bins
    cargo build --release -q -p berth-cri --example cri_bench --example cri_exec_bench
fi
if [[ -z ${BENCH_CRI_INSIDE:-} ]]; then
    # A private mount namespace for containerd's CNI cache (bench-lib.sh's
    # cri_bridge_network).
    exec env BENCH_CRI_INSIDE=1 SKIP_BUILD=1 unshare -m --propagation private "$0" "$@"
fi

ROUNDS=${ROUNDS:-6}
EXECS=${EXECS:-20}
MIB=${MIB:-100}
IMAGE=docker.io/library/bench-busybox:latest
PAUSE=localhost/berth/pause:builtin
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}
PODS=$PWD/target/release/examples/cri_bench
EXEC=$PWD/target/release/examples/cri_exec_bench
WORK=$(mktemp -d /tmp/berth-bench-cri-exec.XXXXXX)
declare -A PIDS=()
declare -A SOCKS=()
declare -A IDS=()

trap 'cri_cleanup "$PODS" benchexec0' EXIT

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

echo "building the streaming client…" >&2
GO111MODULE=off GOPATH="$PWD/tests/go-client:/usr/share/gocode" GOFLAGS= CGO_ENABLED=0 \
    GOCACHE="$WORK/gocache" go build -o "$WORK/streamclient" berth.test/streamclient

cri_bridge_network benchexec0 10.97.0.0/16

make_image
start_berthd
start_containerd
for name in berthd containerd; do
    ctr_ "$name" -n k8s.io images import "$WORK/image.tar" >/dev/null
done
"$PODS" "${SOCKS[berthd]}" start 1 "$IMAGE" bench >/dev/null
ctr_ berthd -n k8s.io images export "$WORK/pause.tar" "$PAUSE"
ctr_ containerd -n k8s.io images import "$WORK/pause.tar" >/dev/null
"$PODS" "${SOCKS[containerd]}" start 1 "$IMAGE" bench >/dev/null
for name in berthd containerd; do
    IDS[$name]=$("$EXEC" "${SOCKS[$name]}" container bench-0)
    # warm-up
    "$EXEC" "${SOCKS[$name]}" execsync "${IDS[$name]}" 3 >/dev/null
done

# One streaming exec of CMD on daemon $1; prints "seconds bytes".
stream() {
    local name=$1
    shift
    local url
    url=$("$EXEC" "${SOCKS[$name]}" url "${IDS[$name]}" "$@")
    "$WORK/streamclient" -protocols v4.channel.k8s.io exec "$url" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["seconds"], r["stdout_bytes"])'
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$ROUNDS"); do
    if ((i % 2)); then order=(berthd containerd); else order=(containerd berthd); fi
    for name in "${order[@]}"; do
        "$EXEC" "${SOCKS[$name]}" execsync "${IDS[$name]}" "$EXECS" >>"$WORK/$name.execsync"
        for _ in 1 2 3; do
            stream "$name" true | awk '{ print $1 * 1e9 }' >>"$WORK/$name.stream"
        done
        stream "$name" head -c "$((MIB << 20))" /dev/zero >>"$WORK/$name.bulk"
    done
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A SYNC=() STREAM=() RATE=()
for name in berthd containerd; do
    SYNC[$name]=$(median "$WORK/$name.execsync")
    STREAM[$name]=$(median "$WORK/$name.stream")
    awk '$2 > 0 { print $2 / $1 / 1048576 }' "$WORK/$name.bulk" >"$WORK/$name.rate"
    RATE[$name]=$(median "$WORK/$name.rate")
done
printf '\nmedians over %d rounds\n' "$ROUNDS"
printf '%-12s %14s %20s %22s\n' daemon "ExecSync (ms)" "stream exec (ms)" "${MIB} MiB stdout (MiB/s)"
for name in berthd containerd; do
    awk -v n="$name" -v a="${SYNC[$name]}" -v b="${STREAM[$name]}" -v c="${RATE[$name]}" \
        'BEGIN { printf "%-12s %14.2f %20.2f %22.1f\n", n, a / 1e6, b / 1e6, c }'
done
awk -v a="${SYNC[berthd]}" -v b="${SYNC[containerd]}" -v c="${STREAM[berthd]}" \
    -v d="${STREAM[containerd]}" -v e="${RATE[berthd]}" -v f="${RATE[containerd]}" \
    'BEGIN { printf "berth/containerd: ExecSync %.2f, stream exec %.2f, throughput %.2f\n", a / b, c / d, e / f }'
