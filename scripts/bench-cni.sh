#!/usr/bin/env bash
# What CNI networking adds to a container run: berth's `berth run --rm --net
# cni` against `ctr run --cni --rm` on Debian's containerd 1.6.20, each next to
# the same run without a network, interleaved run by run.
#
# Both use one conflist (loopback, then bridge `benchcni0` on 10.99.0.0/24 with
# host-local IPAM, portmap and firewall) from Debian's plugins. ctr runs CNI
# client-side (go-cni) from the fixed paths /etc/cni/net.d, /opt/cni/bin and
# /var/lib/cni, so the whole benchmark runs in a private mount namespace where
# those are the benchmark's own directories; berthd is configured to the same.
#
# berthd tears a task's network down after its Delete has answered; the
# script waits for that to finish after each berth run, outside the timed
# region, so the background work slows no other measured run.
#
# Usage: scripts/bench-cni.sh   (env: RUNS=20, SKIP_BUILD=1, BERTHD_BIN, BERTH_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${BENCH_CNI_INSIDE:-} ]]; then
    if [[ -z ${SKIP_BUILD:-} ]]; then
        echo "building berthd, the shim and berth (release)…" >&2
        cargo build --release -q -p berth-daemon -p berth-shim -p berth-cli --bins
    fi
    exec env BENCH_CNI_INSIDE=1 unshare -m --propagation private "$0" "$@"
fi

RUNS=${RUNS:-20}
IMAGE=docker.io/library/bench-busybox:latest
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}
BERTH=${BERTH_BIN:-$PWD/target/release/berth}
WORK=$(mktemp -d /tmp/berth-bench-cni.XXXXXX)
declare -A PIDS=()
declare -A SOCKS=()

cleanup() {
    local name
    for name in "${!PIDS[@]}"; do
        remove_all "$name" || true
        kill "${PIDS[$name]}" 2>/dev/null || true
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    ip link del benchcni0 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# The private CNI directories ctr reads, and the network both daemons use.
mkdir -p "$WORK/net.d" "$WORK/bin" "$WORK/varlib" /etc/cni/net.d /opt/cni/bin /var/lib/cni
mount --bind "$WORK/net.d" /etc/cni/net.d
mount --bind /usr/lib/cni /opt/cni/bin
mount --bind "$WORK/varlib" /var/lib/cni
cat >/etc/cni/net.d/10-benchcni.conflist <<JSON
{"cniVersion": "1.0.0", "name": "benchcni", "plugins": [
  {"type": "bridge", "bridge": "benchcni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$WORK/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall"}
]}
JSON
BERTHD_CONFIG="version = 2
[plugins.\"io.containerd.internal.v1.cni\"]
conf_dir = \"/etc/cni/net.d\"
bin_dirs = [\"/usr/lib/cni\"]"

# Appends one latency (ns) of `"$@"` to $WORK/$1.samples.
time_run() {
    local set=$1 start
    shift
    start=$(now_ns)
    "$@" >/dev/null
    echo $(($(now_ns) - start)) >>"$WORK/$set.samples"
}
berth_() { "$BERTH" --address "${SOCKS[berthd]}" "$@"; }
leases() { find "$WORK/ipam/benchcni" -type f ! -name lock ! -name 'last_reserved*' 2>/dev/null | wc -l; }
settle_leases() {
    for _ in $(seq 100); do
        [[ $(leases) -eq 0 ]] && return 0
        sleep 0.05
    done
    echo "a lease outlived its container by 5 s" >&2
    return 1
}

make_image
start_berthd
start_containerd
for name in berthd containerd; do
    ctr_ "$name" images import "$WORK/image.tar" >/dev/null
done
SETS=(berth-net berth-none containerd-net containerd-none)
run_set() {
    local set=$1 id=$2
    case $set in
    berth-net)
        time_run "$set" berth_ run --rm --net cni "$IMAGE" "$id" /bin/true
        # berthd tears the network down after Delete answers: let that
        # finish outside the timed runs, so it slows none of them.
        settle_leases
        ;;
    berth-none) time_run "$set" berth_ run --rm "$IMAGE" "$id" /bin/true ;;
    containerd-net) time_run "$set" ctr_ containerd run --cni --rm "$IMAGE" "$id" /bin/true ;;
    containerd-none) time_run "$set" ctr_ containerd run --rm "$IMAGE" "$id" /bin/true ;;
    esac
}
for set in "${SETS[@]}"; do # warm-up, then fresh samples
    for i in 1 2; do run_set "$set" "warm-$set-$i"; done
    : >"$WORK/$set.samples"
done

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
    # Rotate the order so drift and load hit every set alike.
    for k in 0 1 2 3; do
        set=${SETS[$(((i + k) % 4))]}
        run_set "$set" "bench-$i-$k"
    done
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
leftover=$(leases)

printf '\nrun --rm IMAGE id /bin/true, %d interleaved runs each (ms)\n' "$RUNS"
printf '%-44s %8s %8s %8s\n' what mean median p90
declare -A MEAN=()
for set in "${SETS[@]}"; do
    read -r mean median p90 <<<"$(summary "$set")"
    MEAN[$set]=$mean
    case $set in
    berth-net) label="berth run --rm --net cni (berthd)" ;;
    berth-none) label="berth run --rm (berthd, no network)" ;;
    containerd-net) label="ctr run --cni --rm (containerd 1.6.20)" ;;
    containerd-none) label="ctr run --rm (containerd, no network)" ;;
    esac
    printf '%-44s %8s %8s %8s\n' "$label" "$mean" "$median" "$p90"
done
awk -v bn="${MEAN[berth-net]}" -v b0="${MEAN[berth-none]}" -v cn="${MEAN[containerd-net]}" -v c0="${MEAN[containerd-none]}" 'BEGIN {
    printf "network adds (mean): berth %.1f ms, containerd %.1f ms; networked run berth/containerd = %.2f\n",
        bn - b0, cn - c0, bn / cn }'
echo "IP leases left behind: $leftover"
