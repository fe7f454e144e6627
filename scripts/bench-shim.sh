#!/usr/bin/env bash
# Shim memory per running container: containerd-shim-berth-v2 against Debian's
# containerd-shim-runc-v2, both run by Debian's containerd 1.6 on a private
# socket, N detached `sleep` containers each. Prints the mean RSS (and PSS)
# per shim and the ratio. Needs root, containerd, runc, busybox-static.
#
#   scripts/bench-shim.sh [N]        (default 10)
#   SHIM_DIR=DIR scripts/bench-shim.sh   (use DIR/containerd-shim-berth-v2 as built)
#
# Without SHIM_DIR the shim is built as it is meant to ship: statically
# linked (no ld.so, libc, libm, libgcc_s mappings: about 2 MiB of RSS), size
# optimized with LTO and panic=abort, stripped, in its own target directory
# (target/shim) so the workspace's release artifacts are untouched.
set -euo pipefail
N=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SHIM_DIR:-}" ]; then
    TRIPLE=$(rustc -vV | awk '/^host:/ {print $2}')
    CARGO_TARGET_DIR="$ROOT/target/shim" RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -q -p berth-shim --target "$TRIPLE" \
        --manifest-path "$ROOT/Cargo.toml" \
        --config 'profile.release.opt-level="s"' --config 'profile.release.lto=true' \
        --config 'profile.release.codegen-units=1' --config 'profile.release.panic="abort"' \
        --config 'profile.release.strip=true' --config 'profile.release.debug=0'
    SHIM_DIR="$ROOT/target/shim/$TRIPLE/release"
fi
SHIM_DIR=$(cd "$SHIM_DIR" && pwd)
DIR=$(mktemp -d /tmp/bench-shim.XXXXXX)
NS=bench-shim-$$
CTR=(ctr --address "$DIR/c.sock" -n "$NS")

cleanup() {
    for id in $("${CTR[@]}" c ls -q 2>/dev/null); do
        "${CTR[@]}" t kill -a -s KILL "$id" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for id in $("${CTR[@]}" c ls -q 2>/dev/null); do
        "${CTR[@]}" t rm -f "$id" >/dev/null 2>&1 || true
        "${CTR[@]}" c rm "$id" >/dev/null 2>&1 || true
    done
    [ -n "${CD_PID:-}" ] && kill "$CD_PID" 2>/dev/null && wait "$CD_PID" 2>/dev/null || true
    grep -o "$DIR[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$DIR" "/run/berth/runc/$NS"
}
trap cleanup EXIT

mkdir -p "$DIR/rootfs/bin" "$DIR/rootfs/proc" "$DIR/rootfs/dev" "$DIR/rootfs/sys"
cp /bin/busybox "$DIR/rootfs/bin/"
ln -s busybox "$DIR/rootfs/bin/sleep"
cat > "$DIR/config.toml" <<CONF
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$DIR/c.sock"
[ttrpc]
  address = "$DIR/c.sock.ttrpc"
[debug]
  address = "$DIR/debug.sock"
CONF
PATH="$SHIM_DIR:$PATH" containerd --config "$DIR/config.toml" >"$DIR/containerd.log" 2>&1 &
CD_PID=$!
for _ in $(seq 100); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

# Sum of a field (kB) of /proc/PID/status or smaps_rollup over the shims.
measure() { # binary-name field file
    local total=0 count=0
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        cmd=$( (tr '\0' ' ' < "$proc/cmdline") 2>/dev/null) || continue
        case "$cmd" in *"$1 "*"$DIR/c.sock"*) ;; *) continue ;; esac
        v=$(awk -v f="$2:" '$1==f {print $2}' "/proc/$pid/$3")
        total=$((total + v)); count=$((count + 1))
    done
    echo "$total $count"
}

bench() { # runtime shim-binary
    local runtime=$1 bin=$2 start end
    start=$(date +%s%N)
    for i in $(seq "$N"); do
        "${CTR[@]}" run -d --runtime "$runtime" --rootfs "$DIR/rootfs" "${bin}-$i" /bin/sleep 100000 >/dev/null
    done
    end=$(date +%s%N)
    sleep 1
    read -r rss count < <(measure "$bin" VmRSS status)
    read -r pss _ < <(measure "$bin" Pss smaps_rollup)
    [ "$count" -gt 0 ] || { echo "no $bin shims found" >&2; exit 1; }
    printf '%-28s shims=%-3d RSS/shim=%6d kB  PSS/shim=%6d kB  run -d mean=%4d ms\n' \
        "$bin" "$count" $((rss / count)) $((pss / count)) $(((end - start) / 1000000 / N))
    echo "$((rss / count))" > "$DIR/$bin.rss"
}

bench io.containerd.berth.v2 containerd-shim-berth-v2
bench io.containerd.runc.v2 containerd-shim-runc-v2
berth=$(cat "$DIR/containerd-shim-berth-v2.rss")
runc=$(cat "$DIR/containerd-shim-runc-v2.rss")
echo "berth/runc RSS ratio: $(awk -v a="$berth" -v b="$runc" 'BEGIN {printf "%.3f", a / b}') (target < 0.25)"
