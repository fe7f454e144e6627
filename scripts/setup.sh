#!/usr/bin/env bash
# Prepare a Debian 12 machine to build and test berth.
#
# Idempotent: when every package is already installed it touches nothing and
# returns in well under a second, so scripts/test.sh can call it on every run.
# Rust itself is not installed here; the machine's toolchain (rustup or
# Debian's) is used as found.
set -euo pipefail

# Packages berth needs to build (protoc for containerd-client's build script,
# a C toolchain and pkg-config for -sys crates) and to test (ctr and containerd
# as the compatibility client and benchmark baseline, runc, a static busybox
# for test images, a real registry (with apache2-utils' htpasswd for basic
# auth and openssl for test certificates), image tools, CNI plugins, ip and
# mount), and containerd's other real clients: Go with containerd 1.6's Go
# client as source, and Docker Engine (dockerd and its CLI).
packages=(
    protobuf-compiler
    containerd
    runc
    busybox-static
    docker-registry
    apache2-utils
    openssl
    skopeo
    umoci
    containernetworking-plugins
    pkg-config
    build-essential
    iproute2
    util-linux
    golang-go
    golang-github-containerd-containerd-dev
    golang-github-docker-spdystream-dev
    golang-github-gorilla-websocket-dev
    docker.io
    python3-prometheus-client
    curl
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "setup: all ${#packages[@]} packages present"
else
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# Debian's containerd package may enable its own daemon under systemd; berth's
# tests never use it (they start private daemons), so it is left alone here.

for tool in cargo rustc protoc ctr runc busybox; do
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /bin/$tool ]]; then
        echo "setup: $tool not found on PATH" >&2
        exit 1
    fi
done
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    echo "setup: cargo clippy and cargo fmt are required (rustup component add clippy rustfmt)" >&2
    exit 1
fi

# cargo-deb builds the Debian package (`cargo deb -p berth-daemon`); the
# package test uses it. Built from crates.io with its locked dependencies,
# only when missing; the version is pinned because the test packages the
# debug build (`--profile dev`), which later versions may refuse.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "setup: installing cargo-deb"
    cargo install cargo-deb --version 3.8.0 --locked
fi

# cargo-fuzz builds and runs the fuzz targets (fuzz/, scripts/fuzz.sh, and
# the fuzz gate scripts/test.sh runs when BERTH_FUZZ_SECONDS is set) with
# the nightly toolchain. Pinned, and installed only when fuzzing is asked
# for and that version is missing.
if [[ -n ${BERTH_FUZZ_SECONDS:-} ]]; then
    cargo_fuzz_version=0.13.2
    if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
        echo "setup: installing cargo-fuzz $cargo_fuzz_version"
        cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
    fi
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "setup: the nightly toolchain is required for fuzzing (rustup toolchain install nightly)" >&2
        exit 1
    fi
fi
