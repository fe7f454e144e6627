//! `berth leases` against a private daemon, with Debian's `ctr` as the
//! reference for ids, labels and the table.
//!
//! Run them against containerd with `BERTH_TESTKIT_DAEMON=containerd`.

use berth_testkit::{require_ctr, Daemon};

fn daemon() -> Daemon {
    match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    }
}

#[test]
fn create_list_and_remove_match_ctr() {
    if !require_ctr() {
        return;
    }
    let daemon = daemon();
    let out = daemon
        .berth(&["leases", "create", "--id", "mine", "-x", "0", "team=a"])
        .assert_success();
    assert_eq!(out.stdout, "mine\n");
    let generated = daemon.berth(&["leases", "create"]).assert_success();
    let generated = generated.stdout.trim().to_string();
    let (nanos, suffix) = generated.split_once('-').expect("NANOS-XXXX");
    assert!(
        nanos.parse::<u32>().is_ok() && suffix.len() == 4,
        "{generated}"
    );

    let by_berth = daemon.berth(&["leases", "ls"]).assert_success();
    let by_ctr = daemon.ctr(&["leases", "ls"]).assert_success();
    assert_eq!(by_berth.stdout, by_ctr.stdout);
    assert!(by_berth.stdout.contains("team=a"), "{by_berth}");
    assert!(
        by_berth.stdout.contains("containerd.io/gc.expire="),
        "{by_berth}"
    );
    let quiet = daemon
        .berth(&["leases", "ls", "-q", "id==mine"])
        .assert_success();
    assert_eq!(quiet.lines(), ["mine"]);

    let out = daemon
        .berth(&["leases", "rm", "mine", &generated])
        .assert_success();
    assert_eq!(out.lines(), ["mine", generated.as_str()]);
    daemon
        .berth(&["leases", "rm", "mine"])
        .assert_failure_containing("not found");
    let left = daemon.ctr(&["leases", "ls", "-q"]).assert_success();
    assert!(left.stdout.is_empty(), "{left}");
}
