#!/usr/bin/env bash
# Garbage-collection benchmark: berthd next to Debian's containerd, both
# driven by ctr, each with 10,000 blobs.
#
# For each daemon, started on a private socket, root and state (debug log):
#   - import an OCI archive of N images (default 1,000), each a manifest, a
#     config and 8 small layers = 10 blobs per image, with
#     `ctr images import --no-unpack --all-platforms` (timed);
#   - a collection with every blob live: `ctr leases rm --sync` of an empty
#     lease, which returns once a collection has run — the same trigger for
#     both daemons. The same command without --sync is the baseline (process
#     start, RPC); the difference is the collection as a client waits for it.
#     Median of several runs;
#   - freeing everything: `ctr images rm --sync` of all N images in one
#     command (ctr asks for the synchronous collection on the last delete),
#     timed, then the blob files left on disk are counted;
#   - from the daemon's debug log: the collections it ran, and for the
#     largest one its duration — containerd's `d`, the time it held its
#     database lock (mark and sweep), and berthd's `pause` (the write lock,
#     sweep only) and `total` (mark, sweep and file removal).
#
# Usage: scripts/bench-gc.sh [N]   (env: RUNS=7, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-1000}
LAYERS=8
RUNS=${RUNS:-7}
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd (release)…" >&2
    cargo build --release --bins -q
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

WORK=$(mktemp -d /tmp/berth-bench-gc.XXXXXX)
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
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The archive: an OCI layout with N images named docker.io/bench/img:<i>.
ARCHIVE=$WORK/images.tar
echo "writing an OCI archive of $N images ($((N * (LAYERS + 2))) blobs)…" >&2
python3 - "$WORK/layout" "$N" "$LAYERS" <<'EOF'
import hashlib, json, os, sys
root, n, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
manifests = []
for i in range(n):
    ls = [put(f"layer {i}.{l}\n".encode() * 16) for l in range(layers)]
    config = put(json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in ls]},
    }).encode())
    manifest = put(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(l, mediaType="application/vnd.oci.image.layer.v1.tar") for l in ls],
    }).encode())
    manifests.append(dict(manifest,
        mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": f"docker.io/bench/img:{i}"}))
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": manifests}, f)
with open(os.path.join(root, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
tar -C "$WORK/layout" -cf "$ARCHIVE" oci-layout index.json blobs

NAMES=()
for ((i = 0; i < N; i++)); do NAMES+=("docker.io/bench/img:$i"); done

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

# Durations as both daemons print them (1.5ms, 250µs, 2.1s, 1m2s) in ms.
to_ms() {
    awk '{
        s = $0; gsub(/"/, "", s); ms = 0
        while (match(s, /^[0-9.]+(ns|µs|us|ms|s|m|h)/)) {
            t = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
            match(t, /[0-9.]+/); v = substr(t, RSTART, RLENGTH); u = substr(t, RLENGTH + 1)
            if (u == "ns") ms += v / 1e6; else if (u == "µs" || u == "us") ms += v / 1e3
            else if (u == "ms") ms += v; else if (u == "s") ms += v * 1e3
            else if (u == "m") ms += v * 6e4; else if (u == "h") ms += v * 3.6e6
        }
        printf "%.2f\n", ms
    }'
}

# field NAME LINE: the value of NAME=… in a log line.
field() { grep -o "$1=[^ ]*" <<<"$2" | head -n1 | cut -d= -f2- | to_ms; }

# bench NAME SOCK PID LOG BLOBDIR → one result line
bench() {
    local name=$1 sock=$2 pid=$3 log=$4 blobdir=$5
    wait_ready "$sock" "$pid" "$log" || return 1
    local c=("$CTR" --address "$sock" -n bench)
    echo "$name: importing $N images…" >&2
    local t0 import_s
    t0=$(now)
    "${c[@]}" images import --no-unpack --all-platforms "$ARCHIVE" >/dev/null
    import_s=$(awk -v ms="$(ms_since "$t0")" 'BEGIN { printf "%.1f", ms / 1000 }')
    local images blobs
    images=$("${c[@]}" images ls -q | wc -l)
    # Let the collection the import's lease deletion scheduled finish (it
    # frees the index blob, which no image keeps), then count.
    "${c[@]}" leases create --id settle >/dev/null
    "${c[@]}" leases rm --sync settle >/dev/null
    blobs=$(find "$blobdir" -type f | wc -l)
    # Write back what the import left dirty, so the removals below do not
    # wait for it (an unlink of a freshly written file can be 100× slower).
    sync
    if ((images != N || blobs != N * (LAYERS + 2))); then
        echo "$name: after import: $images images, $blobs blobs" >&2
        return 1
    fi

    echo "$name: collecting with $blobs live blobs…" >&2
    local sync_ms=() plain_ms=() r
    for ((r = 0; r < RUNS; r++)); do
        "${c[@]}" leases create --id "s$r" >/dev/null
        "${c[@]}" leases create --id "p$r" >/dev/null
        t0=$(now)
        "${c[@]}" leases rm "p$r" >/dev/null
        plain_ms+=("$(ms_since "$t0")")
        t0=$(now)
        "${c[@]}" leases rm --sync "s$r" >/dev/null
        sync_ms+=("$(ms_since "$t0")")
    done
    local sync_med plain_med
    sync_med=$(printf '%s\n' "${sync_ms[@]}" | median)
    plain_med=$(printf '%s\n' "${plain_ms[@]}" | median)

    echo "$name: removing $N images and freeing their blobs…" >&2
    local before free_ms left
    before=$(grep -c "garbage collected" "$log" || true)
    t0=$(now)
    "${c[@]}" images rm --sync "${NAMES[@]}" >/dev/null
    free_ms=$(ms_since "$t0")
    left=$(find "$blobdir" -type f | wc -l)

    # The collections of the freeing phase, and the longest of them.
    local lines runs longest d pause total
    lines=$(grep "garbage collected" "$log" | tail -n +"$((before + 1))")
    runs=$(grep -c . <<<"$lines" || true)
    if [[ $name == berthd ]]; then
        longest=$(while read -r l; do echo "$(field total "$l") $l"; done <<<"$lines" | sort -n | tail -n1)
        total=$(field total "$longest")
        pause=$(field pause "$longest")
        d=-
    else
        longest=$(while read -r l; do echo "$(field d "$l") $l"; done <<<"$lines" | sort -n | tail -n1)
        d=$(field d "$longest")
        pause=$d
        total=-
    fi
    echo "$name $import_s $plain_med $sync_med $free_ms $left $runs $pause $total"
}

results=()

B=$WORK/berthd
mkdir -p "$B"
"$BERTHD" --address "$B/berth.sock" --root "$B/root" --state "$B/state" \
    --log-level debug >"$B/log" 2>&1 </dev/null &
PIDS+=($!)
if line=$(bench berthd "$B/berth.sock" "$!" "$B/log" "$B/root/content/blobs/sha256"); then
    results+=("$line")
else
    results+=("berthd failed - - - - - - -")
fi
kill "${PIDS[-1]}" 2>/dev/null || true
wait "${PIDS[-1]}" 2>/dev/null || true

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
"$CONTAINERD" --config "$C/config.toml" --log-level debug >"$C/log" 2>&1 </dev/null &
PIDS+=($!)
if line=$(bench containerd "$C/containerd.sock" "$!" "$C/log" \
    "$C/root/io.containerd.content.v1.content/blobs/sha256"); then
    results+=("$line")
else
    results+=("containerd failed - - - - - - -")
fi

echo
printf 'gc benchmark: %d images, %d blobs, via ctr, %s cores, %s\n' \
    "$N" "$((N * (LAYERS + 2)))" "$(nproc)" "$("$CTR" --version)"
printf '%-11s %10s %17s %15s %16s %6s %5s %15s %15s\n' daemon "import (s)" \
    "lease rm (ms)" "rm --sync (ms)" "free all (ms)" left runs "pause (ms)" "total (ms)"
for r in "${results[@]}"; do
    read -r name import plain sync free left runs pause total <<<"$r"
    printf '%-11s %10s %17s %15s %16s %6s %5s %15s %15s\n' \
        "$name" "$import" "$plain" "$sync" "$free" "$left" "$runs" "$pause" "$total"
done
cat <<'EOF'

lease rm: `ctr leases rm` of an empty lease (baseline); rm --sync: the same,
waiting for a collection over all blobs (median); free all: `ctr images rm
--sync` of every image until its blobs are gone; left: blob files left;
runs: collections during that; pause: the longest one's write-lock time
(containerd: its `d`, mark and sweep under its lock); total: berthd's
mark, sweep and file removal for it.
EOF
