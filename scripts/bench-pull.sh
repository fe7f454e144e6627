#!/usr/bin/env bash
# Pull + unpack from a loopback registry: berth's pull engine next to
# Debian's containerd (`ctr images pull`), and next to the time merely to
# decompress the layers (`zcat`).
#
# Generates a five-layer gzip OCI image (SIZE_MB of file content, default
# 300: many small files in nested directories, a few large ones, an upper
# layer with whiteouts and an opaque directory), copies it with skopeo into
# Debian's docker-registry on 127.0.0.1, then RUNS times (default 3) each,
# on a fresh private root every time:
#   - berthd:     `berth images pull --plain-http` against a private berthd
#                 (release): the pull runs inside the daemon's transfer
#                 service, into its overlayfs snapshotter;
#   - berth:      the `bench_pull` example of berth-daemon (release): the
#                 pull engine over berth-store's content store and the
#                 overlayfs snapshotter, as the daemon's transfer service
#                 runs it;
#   - berth-seq:  the same with the native snapshotter (no rebase: layers
#                 download in parallel but apply one after another);
#   - containerd: `ctr images pull --plain-http` against a private
#                 containerd 1.6 (overlayfs), which fetches every layer and
#                 then unpacks them in order;
#   - zcat:       `zcat` of every layer blob to /dev/null, one after another.
# Prints each run's wall time, the medians and the ratios.
#
# Usage: scripts/bench-pull.sh   (env: SIZE_MB=300, RUNS=3, SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-300}
RUNS=${RUNS:-3}
CTR=${CTR_BIN:-$(command -v ctr)}
CONTAINERD=${CONTAINERD_BIN:-$(command -v containerd)}
REGISTRY=${REGISTRY_BIN:-/usr/bin/docker-registry}

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building berthd, berth and bench_pull (release)…" >&2
    cargo build --release -q -p berth-daemon --bins --example bench_pull -p berth-cli
fi
BENCH_PULL=${BENCH_PULL_BIN:-$PWD/target/release/examples/bench_pull}
BERTHD=${BERTHD_BIN:-$PWD/target/release/berthd}
BERTH=${BERTH_BIN:-$PWD/target/release/berth}

WORK=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
DAEMON_PID=
REGISTRY_PID=
cleanup() {
    for pid in $DAEMON_PID $REGISTRY_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "generating a ${SIZE_MB} MB five-layer image…" >&2
mkdir -p "$WORK/oci/blobs/sha256"
python3 - "$WORK/oci" "$SIZE_MB" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile

out, size_mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = b"lorem ipsum dolor sit amet consectetur adipiscing elit "

def data(n):
    # Half random, half text: gzip has work to do but does not win big.
    half = n // 2
    return rnd.randbytes(half) + (words * (n // len(words) + 1))[: n - half]

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

mb = 1 << 20
budget = size_mb * mb
l1 = small_files("usr/share", budget * 30 // 100, 512, 16384)
l2 = small_files("usr/lib", budget * 20 // 100, 1024, 65536)
l3 = [("opt/", "dir", b"")] + [
    (f"opt/blob{i}", "file", data(budget * 25 // 100 // 5)) for i in range(5)]
l4 = [("srv/", "dir", b"")] + [
    (f"srv/big{i}", "file", data(budget * 15 // 100 // 3)) for i in range(3)]
l5 = [(f"usr/share/d{d}/.wh.f{d * 100}", "file", b"") for d in range(40)]
l5 += [("usr/share/d1/", "dir", b""), ("usr/share/d1/.wh..wh..opq", "file", b"")]
l5 += small_files("etc/conf", budget * 10 // 100, 256, 8192, per_dir=200)
layers = [layer(e) for e in (l1, l2, l3, l4, l5)]

def blob(b):
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)

config = json.dumps({
    "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
    "os": "linux",
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
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "layers"), "w") as f:
    for _, gz in layers:
        f.write(hashlib.sha256(gz).hexdigest() + "\n")
print(f"image: {len(layers)} layers, {sum(len(t) for t, _ in layers) / 1e6:.0f} MB uncompressed, "
      f"{sum(len(g) for _, g in layers) / 1e6:.0f} MB gzip", file=sys.stderr)
PY

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
YML
"$REGISTRY" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break
    sleep 0.1
done
IMAGE=127.0.0.1:$PORT/bench/image:latest
skopeo copy -q "oci:$WORK/oci:latest" "docker://$IMAGE" --dest-tls-verify=false

ctr_() { "$CTR" --address "$SOCK" "$@"; }

start_berthd() {
    local dir=$1
    SOCK=$dir/berth.sock
    : >"$dir/config.toml"
    "$BERTHD" --address "$SOCK" --root "$dir/root" --state "$dir/state" \
        --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 100); do
        ctr_ version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "berthd did not come up" >&2
    return 1
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
    for _ in $(seq 100); do
        ctr_ version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "containerd did not come up" >&2
    return 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# One timed run (ms) of $1 in a fresh directory.
run_once() {
    local what=$1 dir=$WORK/$1-$2 start end
    mkdir -p "$dir"
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    case $what in
    berth | berth-seq)
        local extra=()
        [[ $what == berth-seq ]] && extra=(--native)
        start=$(now_ms)
        "$BENCH_PULL" "$IMAGE" "$dir" --plain-http "${extra[@]}" >"$dir/out"
        end=$(now_ms)
        ;;
    berthd)
        start_berthd "$dir"
        start=$(now_ms)
        "$BERTH" --address "$SOCK" images pull --plain-http "$IMAGE" >/dev/null
        end=$(now_ms)
        kill "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        ;;
    containerd)
        start_containerd "$dir"
        start=$(now_ms)
        ctr_ images pull --plain-http "$IMAGE" >/dev/null
        end=$(now_ms)
        kill "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        ;;
    zcat)
        start=$(now_ms)
        while read -r d; do
            zcat "$WORK/oci/blobs/sha256/$d" >/dev/null
        done <"$WORK/oci/layers"
        end=$(now_ms)
        ;;
    esac
    grep " $dir" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$dir"
    echo $((end - start))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

declare -A result
for what in zcat berthd berth berth-seq containerd; do
    samples=()
    for i in $(seq "$RUNS"); do
        samples+=("$(run_once "$what" "$i")")
    done
    result[$what]=$(printf '%s\n' "${samples[@]}" | median)
    echo "$what: ${samples[*]} ms, median ${result[$what]} ms"
done
awk -v d="${result[berthd]}" -v b="${result[berth]}" -v s="${result[berth-seq]}" \
    -v c="${result[containerd]}" -v z="${result[zcat]}" 'BEGIN {
    printf "containerd / berthd = %.2fx (berth: %.2fx, berth-seq: %.2fx)\n", c / d, c / b, c / s
    printf "berthd / zcat       = %.2fx (berth: %.2fx, berth-seq: %.2fx)\n", d / z, b / z, s / z
}'
