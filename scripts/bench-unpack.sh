#!/usr/bin/env bash
# Image unpack: berthd next to Debian's containerd, both driven by Debian's
# ctr, both unpacking into their overlayfs snapshotter.
#
# Generates a multi-layer gzip OCI image archive (many small files in
# nested directories, a few large ones, an upper layer with whiteouts and
# an opaque directory; SIZE_MB of file content, default 300), then for each
# daemon, RUNS times (default 3) on a fresh private root, state and socket:
#   - `ctr images import --no-unpack` (content only), then
#   - `ctr images import` of the same archive again under another name,
#     which finds the blobs present and only unpacks: its wall time is the
#     unpack time reported.
# Prints the median per daemon and the ratio.
#
# Usage: scripts/bench-unpack.sh   (env: SIZE_MB=300, RUNS=3, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-300}
RUNS=${RUNS:-3}
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd (release)…" >&2
    cargo build --release -q -p berth-daemon --bins
fi
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}

WORK=$(mktemp -d /var/tmp/berth-bench-unpack.XXXXXX)
DAEMON_PID=
cleanup() {
    if [[ -n $DAEMON_PID ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    # Snapshots may still be mounted by a failed run.
    grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "generating a ${SIZE_MB} MB image…" >&2
python3 - "$WORK/image.tar" "$SIZE_MB" <<'PY'
import gzip, hashlib, io, json, random, sys, tarfile

out, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = b"lorem ipsum dolor sit amet consectetur adipiscing elit "

def data(n):
    # Half random, half text: gzip has work to do but does not win big.
    half = n // 2
    return (rnd.randbytes(half) + (words * (n // len(words) + 1))[: n - half])

def layer(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, body in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.mode, info.size = 0o644, len(body)
                t.addfile(info, io.BytesIO(body))
    tar = raw.getvalue()
    return tar, gzip.compress(tar, compresslevel=6, mtime=0)

budget = size_mb << 20
small_total, large_total = budget * 45 // 100, budget * 40 // 100
upper_total = budget - small_total - large_total
def small_files(prefix, total, lo, hi, per_dir=100):
    entries, used, i = [], 0, 0
    while used < total:
        d = f"{prefix}/d{i // per_dir}"
        if i % per_dir == 0:
            entries.append((d + "/", "dir", b""))
        n = rnd.randint(lo, hi)
        entries.append((f"{d}/f{i}", "file", data(n)))
        used, i = used + n, i + 1
    return entries
l1 = small_files("usr/share", small_total, 512, 16384)
l2 = [("opt/", "dir", b"")] + [
    (f"opt/blob{i}", "file", data(large_total // 6)) for i in range(6)]
l3 = [(f"usr/share/d{d}/.wh.f{d * 100}", "file", b"") for d in range(40)]
l3 += [("usr/share/d1/", "dir", b""), ("usr/share/d1/.wh..wh..opq", "file", b"")]
l3 += small_files("etc/conf", upper_total, 256, 8192, per_dir=200)
layers = [layer(entries) for entries in (l1, l2, l3)]

blobs = {}
def blob(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    blobs[d] = b
    return d, len(b)
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(t).hexdigest() for t, _ in layers]},
}).encode()
cd, cs = blob(config)
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [dict(zip(("digest", "size"), blob(gz)),
                    mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
               for _, gz in layers],
}).encode()
md, ms = blob(manifest)
index = json.dumps({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}).encode()
with tarfile.open(out, "w") as t:
    def put(name, b):
        info = tarfile.TarInfo(name)
        info.size = len(b)
        t.addfile(info, io.BytesIO(b))
    put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put("index.json", index)
    for d, b in blobs.items():
        put("blobs/sha256/" + d.split(":")[1], b)
content = sum(len(t) for t, _ in layers)
print(f"image: {len(layers)} layers, {content / 1e6:.0f} MB uncompressed, "
      f"{sum(len(g) for _, g in layers) / 1e6:.0f} MB gzip", file=sys.stderr)
PY

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
    local dir=$1
    SOCK=$dir/berth.sock
    : >"$dir/config.toml"
    "$BERTHD" --address "$SOCK" --root "$dir/root" --state "$dir/state" \
        --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    DAEMON_PID=$!
    wait_ready
}

start_containerd() {
    local dir=$1
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

# One run: a fresh daemon, content imported, then timed unpack (ms).
run_once() {
    local daemon=$1 dir=$WORK/$1-$2 start end
    mkdir -p "$dir"
    "start_$daemon" "$dir"
    ctr_ images import --no-unpack --index-name bench/content "$WORK/image.tar" >/dev/null
    sync
    start=$(date +%s%N)
    ctr_ images import --index-name bench/unpacked "$WORK/image.tar" >/dev/null
    end=$(date +%s%N)
    ctr_ snapshots ls >"$dir/snapshots"
    stop_daemon
    grep " $dir" /proc/mounts | awk '{print $2}' | xargs -r -n1 umount -l 2>/dev/null || true
    # Deleting the tree makes the next run's file creation slower (ext4
    # avoids reusing recently freed inodes), but keeping six of them fills
    # the disk: runs vary by 2-3x on ext4 for this reason; compare medians.
    rm -rf "$dir"
    echo $(((end - start) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

declare -A result
for daemon in berthd containerd; do
    samples=()
    for i in $(seq "$RUNS"); do
        samples+=("$(run_once "$daemon" "$i")")
    done
    result[$daemon]=$(printf '%s\n' "${samples[@]}" | median)
    echo "$daemon: unpack ${samples[*]} ms, median ${result[$daemon]} ms"
done
awk -v b="${result[berthd]}" -v c="${result[containerd]}" \
    'BEGIN { printf "containerd / berthd = %.2fx\n", c / b }'
