//! berthd driven as users drive containerd: through Debian's `ctr` and over
//! gRPC, each test against its own private daemon from `berth-testkit`.
//!
//! `BERTH_TESTKIT_DAEMON=containerd cargo test -p berth-daemon --test integration`
//! runs the same assertions against Debian's containerd, which keeps them
//! honest about what containerd does.

mod bad_input;
mod crash;
mod ctr_containers;
mod ctr_events;
mod ctr_namespaces;
mod ctr_version;
mod leases;
mod lifecycle;

use std::path::PathBuf;

use berth_testkit::{busybox_rootfs, CmdOutput, Daemon};

/// A private daemon, or a test failure that quotes its log.
pub fn daemon() -> Daemon {
    match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    }
}

/// A busybox rootfs in the daemon's directory, for `ctr c create --rootfs`.
pub fn rootfs(daemon: &Daemon) -> PathBuf {
    let dir = daemon.dir().join("rootfs");
    busybox_rootfs(&dir).expect("build busybox rootfs");
    dir
}

/// `ctr [-n NS] containers create --rootfs ROOTFS ID sh`.
pub fn ctr_create(daemon: &Daemon, ns: &str, rootfs: &std::path::Path, id: &str) -> CmdOutput {
    let rootfs = rootfs.to_str().expect("utf-8 rootfs path");
    daemon.ctr_ns(ns, &["containers", "create", "--rootfs", rootfs, id, "sh"])
}

/// The ids `ctr [-n NS] containers ls -q` prints, sorted.
pub fn ctr_ids(daemon: &Daemon, ns: &str) -> Vec<String> {
    let out = daemon
        .ctr_ns(ns, &["containers", "ls", "-q"])
        .assert_success();
    let mut ids: Vec<String> = out.lines().into_iter().map(str::to_owned).collect();
    ids.sort();
    ids
}

/// The rows of a ctr table (header dropped), split on whitespace.
pub fn table_rows(out: &CmdOutput) -> Vec<Vec<String>> {
    out.lines()
        .into_iter()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
