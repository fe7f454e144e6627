//! The harness berth's integration tests stand on.
//!
//! A test starts a private `berthd` with [`Daemon::start`]: its socket, `--root`
//! and `--state` live in a fresh temporary directory, its log goes to a file
//! there, and the call returns once the daemon answers the Version RPC. The test
//! then drives the daemon as users do — through Debian's `ctr`
//! ([`Daemon::ctr`]), berth's own CLI ([`Daemon::berth`]) or a gRPC channel
//! ([`Daemon::connect`]) — and the [`Daemon`] guard kills the process and
//! removes the directory when it goes out of scope, printing the daemon log
//! first if the test is panicking.
//!
//! ```no_run
//! use berth_testkit::{require_ctr, Daemon};
//!
//! #[test]
//! fn version_answers() {
//!     require_ctr!();
//!     let daemon = Daemon::start().expect("start berthd");
//!     let out = daemon.ctr(&["version"]).assert_success();
//!     assert!(out.stdout.contains("Server:"));
//! }
//! ```
//!
//! Binaries are found as built by `cargo build --bins`: `target/debug/berthd`
//! and `target/debug/berth` next to the test executable's `deps` directory, or
//! wherever `BERTHD_BIN` / `BERTH_BIN` point. Debian's `ctr` is `CTR_BIN`,
//! `/usr/bin/ctr` or the first `ctr` on `PATH`.
//!
//! With `BERTH_TESTKIT_DAEMON=containerd` the same tests run against Debian's
//! `containerd` on a private socket instead: a check that a test asserts
//! containerd's behaviour and not an accident of berth's. Tests skip
//! berth-only assertions when [`testing_containerd`] is true.
//!
//! Tests that need root or `ctr` say so on their first line with
//! [`require_root!`] / [`require_ctr!`]: locally a missing prerequisite skips the
//! test with a reason, in CI (`CI=true`) it fails it.
#![warn(missing_docs)]

mod binaries;
mod command;
mod cri;
mod daemon;
mod dockerd;
mod go_client;
mod guards;
mod http;
mod image_archive;
mod layered_image;
mod mounts;
mod procs;
mod registry;
mod rootfs;
mod rpc;
mod stream;
mod tasks;

pub use binaries::{berth_bin, berthd_bin, containerd_bin, ctr_bin};
pub use command::{run_with_input, run_with_timeout, CmdOutput, DEFAULT_COMMAND_TIMEOUT};
pub use cri::CriClient;
pub use daemon::{default_config, testing_containerd, Daemon, DaemonBuilder};
pub use dockerd::{docker_bin, require_docker, Dockerd, DockerdBuilder, DOCKERD_BIN};
pub use go_client::{
    go_client_bin, go_client_gopath, go_suites_bin, require_go_client, stream_client,
    stream_client_bin, CONTAINERD_GO_SOURCE, GO_BIN,
};
pub use guards::{in_ci, require_ctr, require_root};
pub use http::http_get;
pub use image_archive::{busybox_oci_archive, host_arch, ArchiveNames, OciArchive};
pub use layered_image::{
    layered_test_image, same_inode, Entry, Layer, LayerCompression, LayeredArchive, LayeredImage,
    Node, Tree, CAP_NET_BIND_SERVICE,
};
pub use mounts::unmount_under;
pub use procs::{descendants, kill_shims_of, processes, shims_of, ProcInfo};
pub use registry::{require_registry, Registry, HTPASSWD_BIN, REGISTRY_BIN};
pub use rootfs::{busybox_rootfs, BUSYBOX_APPLETS};
pub use rpc::{
    block_on, connect, container_record, create_container, with_namespace, SPEC_TYPE_URL,
};
pub use stream::LineStream;
pub use tasks::{task_rows, wait_task_status, TaskRow};

/// containerd's protobuf messages and gRPC clients (re-exported from `berth-api`).
pub use berth_api::pb;
