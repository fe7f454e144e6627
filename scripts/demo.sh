#!/usr/bin/env bash
# The main job, as a tour: build berth, start a private berthd, build a
# busybox image from Debian's static busybox, push it to a loopback
# docker-registry, pull it with progress bars, run containers with berth's
# CLI, see them with Debian's ctr, then clean everything up.
#
# Runs as root on Debian 12 (`sudo bash scripts/demo.sh`, or as root without
# sudo). Everything lives in a temporary directory removed at the end. Any
# failing step stops the tour with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: run as root (sudo bash scripts/demo.sh)" >&2
    exit 1
fi

bash scripts/setup.sh
cargo build --bins

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
sock="$work/berth.sock"
ns=demo
pids=()
cleanup() {
    set +e
    if [[ -S "$sock" ]]; then
        for id in web; do
            target/debug/berth -a "$sock" -n "$ns" tasks kill -s KILL "$id" >/dev/null 2>&1
            target/debug/berth -a "$sock" -n "$ns" tasks rm -f "$id" >/dev/null 2>&1
            target/debug/berth -a "$sock" -n "$ns" containers rm "$id" >/dev/null 2>&1
        done
    fi
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    # Whatever dockerd left mounted below the work directory, deepest first.
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
        xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

heading() { printf '\n\033[1m## %s\033[0m\n' "$*"; }
step() { # shows the command as one would type it, then runs it
    local arg line='$'
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+=" $arg"; else line+=" ${arg@Q}"; fi
    done
    printf '\033[1m%s\033[0m\n' "$line"
    "$@"
}
berth() { target/debug/berth --address "$sock" -n "$ns" "$@"; }
ctr() { command ctr --address "$sock" -n "$ns" "$@"; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "demo: timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
    done
}

heading "Start berthd on a private socket"
# An empty CNI config directory: containers get berth's default network,
# bridge berth0 on 10.88.0.0/16, whatever /etc/cni/net.d holds.
mkdir -p "$work/net.d"
cat >"$work/config.toml" <<TOML
version = 2
[plugins."io.containerd.internal.v1.cni"]
conf_dir = "$work/net.d"
TOML
target/debug/berthd --address "$sock" --root "$work/root" --state "$work/state" \
    --config "$work/config.toml" 2>"$work/berthd.log" &
pids+=($!)
wait_for 30 command ctr --address "$sock" version
step berth version

heading "Build a busybox image from Debian's static busybox"
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
step umoci init --layout "$work/oci"
step umoci new --image "$work/oci:1"
umoci unpack --rootless --image "$work/oci:1" "$work/bundle" >/dev/null
cp -a "$rootfs/." "$work/bundle/rootfs/"
step umoci repack --image "$work/oci:1" "$work/bundle"
step umoci config --image "$work/oci:1" --config.cmd sh \
    --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin

heading "Push it to Debian's docker-registry on loopback"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
wait_for 30 /usr/bin/python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')"
image="127.0.0.1:$port/demo/busybox:1"
step skopeo copy -q --dest-tls-verify=false "oci:$work/oci:1" "docker://$image"

heading "Pull it into berthd (fetched and unpacked in the daemon)"
step berth images pull --plain-http "$image"
step berth images ls

heading "Run a container: its output and its exit code"
set +e
step berth run --rm "$image" hello sh -c 'echo "hello from a berth container: $(uname -n)"; exit 3'
code=$?
set -e
echo "exit code: $code"
[[ $code -eq 3 ]] || { echo "demo: expected exit code 3, got $code" >&2; exit 1; }

heading "A web server on berth's default network, its port published on loopback"
port_web=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step berth run -d --net cni -p "127.0.0.1:$port_web:80" "$image" web \
    sh -c 'echo "<h1>served by a berth container</h1>" >/tmp/index.html; exec httpd -f -p 80 -h /tmp'
wait_for 10 sh -c "target/debug/berth --address $sock -n $ns tasks ls | grep -q 'web.*RUNNING'"
step berth tasks ls
wait_for 10 curl -fsS -o /dev/null "http://127.0.0.1:$port_web/"
step curl -fsS "http://127.0.0.1:$port_web/"
step berth tasks exec --exec-id ps1 web ps
step berth tasks exec --exec-id ip web ip -4 addr show eth0

heading "Debian's ctr sees the same containers and tasks"
step ctr containers ls
step ctr tasks ls

if command -v dockerd >/dev/null && command -v docker >/dev/null; then
    heading "Docker Engine on berthd: dockerd --containerd <berthd's socket>"
    d="$work/docker"
    mkdir -p "$d"
    echo "{\"deprecated-key-path\": \"$d/key.json\"}" >"$d/daemon.json"
    step dockerd --containerd "$sock" --data-root "$d/data" --exec-root "$d/exec" \
        --pidfile "$d/docker.pid" -H "unix://$d/docker.sock" --config-file "$d/daemon.json" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --bridge=none --userland-proxy=false >"$d/dockerd.log" 2>&1 &
    pids+=($!)
    docker() { command docker -H "unix://$d/docker.sock" "$@"; }
    wait_for 60 docker version
    step docker pull -q "$image"
    step docker run --rm --network none "$image" sh -c 'echo "hello from docker, through berthd"'
    step docker run -d --name sleeper --network none "$image" sleep 300
    step command ctr --address "$sock" -n moby containers ls
    step docker rm -f sleeper
    kill -TERM "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
    unset -f docker
fi

heading "Clean up"
step berth tasks kill -s KILL web
wait_for 10 sh -c "target/debug/berth --address $sock -n $ns tasks ls | grep -q 'web.*STOPPED'"
step berth tasks rm web
step berth containers rm web
step berth images rm "$image"
step ctr containers ls
echo
echo "demo finished: every step passed (berthd log: $work/berthd.log, removed on exit)"
