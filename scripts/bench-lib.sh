# Shared by the scripts/bench-*.sh that run berthd next to Debian's containerd:
# a busybox image archive, the two daemons on private sockets, ctr against
# either, cleanup, and latency summaries. Callers set WORK, IMAGE, CTR,
# BERTHD and CONTAINERD, declare the associative arrays PIDS and SOCKS, and
# may set BERTHD_CONFIG (the berthd config file's text).

# A one-layer OCI image archive of a busybox tree, as the tests build it.
make_image() {
    local rootfs=$WORK/rootfs dir=$WORK/image applet
    mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,run} "$dir/blobs/sha256"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in sh true sleep echo head cat; do ln -s busybox "$rootfs/bin/$applet"; done
    tar -C "$rootfs" --numeric-owner -cf "$WORK/layer.tar" .
    local layer layer_size config config_digest config_size manifest manifest_digest
    layer=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$WORK/layer.tar")
    mv "$WORK/layer.tar" "$dir/blobs/sha256/$layer"
    config=$(printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$(dpkg --print-architecture)" "$layer")
    config_digest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
    config_size=${#config}
    printf '%s' "$config" >"$dir/blobs/sha256/$config_digest"
    manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
        "$config_digest" "$config_size" "$layer" "$layer_size")
    manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
    printf '%s' "$manifest" >"$dir/blobs/sha256/$manifest_digest"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"latest"}}]}' \
        "$manifest_digest" "${#manifest}" "$IMAGE" >"$dir/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    tar -C "$dir" -cf "$WORK/image.tar" oci-layout index.json blobs
}

ctr_() {
    local name=$1
    shift
    "$CTR" --address "${SOCKS[$name]}" "$@"
}

wait_ready() {
    local name=$1
    for _ in $(seq 100); do
        ctr_ "$name" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$name at ${SOCKS[$name]} did not come up" >&2
    return 1
}

start_berthd() {
    local dir=$WORK/berthd
    mkdir -p "$dir"
    SOCKS[berthd]=$dir/berth.sock
    printf '%s\n' "${BERTHD_CONFIG:-}" >"$dir/config.toml"
    "$BERTHD" --address "${SOCKS[berthd]}" --root "$dir/root" --state "$dir/state" \
        --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    PIDS[berthd]=$!
    wait_ready berthd
}

# Exit trap of the CRI benchmarks: every pod removed with CRI client $1,
# both daemons stopped, bridge $2 deleted, WORK removed.
cri_cleanup() {
    local name
    for name in "${!PIDS[@]}"; do
        "$1" "${SOCKS[$name]}" clean bench >/dev/null 2>&1 || true
        kill "${PIDS[$name]}" 2>/dev/null || true
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    ip link del "$2" 2>/dev/null || true
    umount -R "$WORK"/*/state 2>/dev/null || true
    rm -rf "$WORK"
}

# The CRI configuration both daemons get (CRI_SECTION, and BERTHD_CONFIG
# from it): the pause image PAUSE, and a bridge network (bridge BRIDGE,
# subnet SUBNET) from Debian's plugins. containerd keeps its CNI cache in the
# fixed /var/lib/cni, so callers run in a private mount namespace, where it
# is replaced by a directory under WORK; cleanup deletes the bridge.
cri_bridge_network() { # bridge subnet
    mkdir -p "$WORK/net.d" "$WORK/varlib" /var/lib/cni
    mount --bind "$WORK/varlib" /var/lib/cni
    cat >"$WORK/net.d/10-$1.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$1", "plugins": [
  {"type": "bridge", "bridge": "$1", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$2"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$WORK/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
JSON
    CRI_SECTION="[plugins.\"io.containerd.grpc.v1.cri\"]
  sandbox_image = \"$PAUSE\"
  restrict_oom_score_adj = true
  [plugins.\"io.containerd.grpc.v1.cri\".cni]
    bin_dir = \"/usr/lib/cni\"
    conf_dir = \"$WORK/net.d\""
    BERTHD_CONFIG="version = 2
$CRI_SECTION"
}

# containerd on a private socket: without its CRI plugin, or, when
# CRI_SECTION is set (the caller's `[plugins."io.containerd.grpc.v1.cri"]`
# text), with it so configured.
start_containerd() {
    local dir=$WORK/containerd disabled=""
    mkdir -p "$dir"
    SOCKS[containerd]=$dir/containerd.sock
    [[ -n ${CRI_SECTION:-} ]] || disabled='disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
$disabled
[grpc]
  address = "${SOCKS[containerd]}"
[ttrpc]
  address = "${SOCKS[containerd]}.ttrpc"
[debug]
  address = "$dir/debug.sock"
${CRI_SECTION:-}
TOML
    "$CONTAINERD" --config "$dir/config.toml" --log-level warn >"$dir/log" 2>&1 &
    PIDS[containerd]=$!
    wait_ready containerd
}

remove_all() {
    local name=$1 id
    for id in $(ctr_ "$name" tasks ls -q 2>/dev/null); do
        ctr_ "$name" tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_ "$name" containers ls -q 2>/dev/null); do
        for _ in $(seq 50); do
            ctr_ "$name" tasks rm -f "$id" >/dev/null 2>&1 && break
            ctr_ "$name" tasks ls -q | grep -qx "$id" || break
            sleep 0.1
        done
        ctr_ "$name" containers rm "$id" >/dev/null 2>&1 || true
    done
}

now_ns() { date +%s%N; }

# Appends one `ctr run --rm` latency (ns) of daemon $1 to $WORK/$1.samples.
run_once() {
    local name=$1 id=$2 start
    echo "$name" >>"$WORK/order"
    start=$(now_ns)
    ctr_ "$name" run --rm "$IMAGE" "$id" /bin/true
    echo $(($(now_ns) - start)) >>"$WORK/$name.samples"
}

# Prints "mean median p90" in milliseconds of the samples of daemon $1
# (file $WORK/$1.${2:-samples}).
summary() {
    sort -n "$WORK/$1.${2:-samples}" | awk '
        { v[NR] = $1; sum += $1 }
        END {
            p90 = int((NR * 9 + 9) / 10); if (p90 > NR) p90 = NR
            printf "%.1f %.1f %.1f", sum / NR / 1e6, v[int((NR + 1) / 2)] / 1e6, v[p90] / 1e6
        }'
}

