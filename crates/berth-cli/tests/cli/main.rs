//! The `berth` CLI against a private berthd, with Debian's `ctr` as the
//! independent client that creates containers (berth's own `create` comes
//! with images and snapshots) and as the reference for output formats.

mod completion;
mod containers;
mod errors;
mod events;
mod info;
mod namespaces;
mod version;

use berth_testkit::{CmdOutput, Daemon};

/// A private daemon, or a test failure that quotes its log.
pub fn daemon() -> Daemon {
    match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    }
}

/// Creates a container record over gRPC (no ctr lease involved).
pub fn create(daemon: &Daemon, ns: &str, id: &str, labels: &[(&str, &str)]) {
    if let Err(err) = daemon.create_container(ns, id, labels) {
        panic!("creating {id}: {err:#}\n{}", daemon.log());
    }
}

/// The rows of a table (header dropped), split on whitespace.
pub fn table_rows(out: &CmdOutput) -> Vec<Vec<String>> {
    out.lines()
        .into_iter()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The header of a table, split on whitespace.
pub fn header(out: &CmdOutput) -> Vec<String> {
    out.lines()
        .first()
        .map(|h| h.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Stdout parsed as JSON.
pub fn json(out: &CmdOutput) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}
