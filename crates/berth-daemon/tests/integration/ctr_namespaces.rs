//! `ctr namespaces create/ls/label/rm`.

use berth_testkit::require_ctr;

use crate::{ctr_create, ctr_ids, daemon, rootfs, table_rows};

/// `ctr ns ls` as (name, labels) pairs; labels is "" when there are none.
fn namespaces(daemon: &berth_testkit::Daemon) -> Vec<(String, String)> {
    let out = daemon.ctr(&["namespaces", "ls"]).assert_success();
    assert_eq!(
        out.lines()
            .first()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "LABELS"]),
        "{out}"
    );
    table_rows(&out)
        .into_iter()
        .map(|mut row| {
            let labels = row.get(1).cloned().unwrap_or_default();
            (row.swap_remove(0), labels)
        })
        .collect()
}

fn names(daemon: &berth_testkit::Daemon) -> Vec<String> {
    let out = daemon.ctr(&["namespaces", "ls", "-q"]).assert_success();
    out.lines().into_iter().map(str::to_owned).collect()
}

#[test]
fn create_label_list_remove() {
    require_ctr!();
    let daemon = daemon();
    daemon
        .ctr(&["namespaces", "create", "team-a", "owner=alice", "tier=dev"])
        .assert_success();
    daemon
        .ctr(&["namespaces", "create", "team-b"])
        .assert_success();
    let listed = namespaces(&daemon);
    assert!(
        listed.contains(&("team-a".into(), "owner=alice,tier=dev".into())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&("team-b".into(), String::new())),
        "{listed:?}"
    );

    daemon
        .ctr(&["namespaces", "label", "team-b", "cost=42"])
        .assert_success();
    // An empty value removes the label.
    daemon
        .ctr(&["namespaces", "label", "team-a", "tier="])
        .assert_success();
    let listed = namespaces(&daemon);
    assert!(
        listed.contains(&("team-a".into(), "owner=alice".into())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&("team-b".into(), "cost=42".into())),
        "{listed:?}"
    );

    let out = daemon
        .ctr(&["namespaces", "rm", "team-a", "team-b"])
        .assert_success();
    assert_eq!(out.lines(), ["team-a", "team-b"], "{out}");
    let left = names(&daemon);
    assert!(!left.iter().any(|n| n.starts_with("team-")), "{left:?}");
}

#[test]
fn namespaces_persist_across_a_restart() {
    require_ctr!();
    let mut daemon = daemon();
    daemon
        .ctr(&["namespaces", "create", "kept", "a=b"])
        .assert_success();
    let status = daemon.stop().expect("graceful stop");
    assert!(
        status.success(),
        "SIGTERM exit status {status}\n{}",
        daemon.log()
    );
    daemon.restart().expect("restart");
    assert!(
        namespaces(&daemon).contains(&("kept".into(), "a=b".into())),
        "{}",
        daemon.log()
    );
}

#[test]
fn duplicate_and_invalid_namespace_names_fail() {
    require_ctr!();
    let daemon = daemon();
    daemon
        .ctr(&["namespaces", "create", "dup"])
        .assert_success();
    daemon
        .ctr(&["namespaces", "create", "dup"])
        .assert_failure_containing("already exists");
    let out = daemon
        .ctr(&["namespaces", "create", "Bad!"])
        .assert_failure_containing("invalid argument");
    assert!(out.stderr.contains("Bad!"), "{out}");
    assert!(!names(&daemon).iter().any(|n| n == "Bad!"));
}

#[test]
fn removing_a_namespace_that_holds_a_container_fails_and_keeps_it() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    daemon
        .ctr(&["namespaces", "create", "busy"])
        .assert_success();
    ctr_create(&daemon, "busy", &rootfs, "tenant").assert_success();

    let out = daemon
        .ctr(&["namespaces", "rm", "busy"])
        .assert_failure_containing("failed precondition");
    assert!(out.stderr.contains("busy"), "{out}");
    assert!(names(&daemon).contains(&"busy".to_owned()));
    assert_eq!(ctr_ids(&daemon, "busy"), ["tenant"]);

    daemon
        .ctr_ns("busy", &["containers", "rm", "tenant"])
        .assert_success();
    daemon.ctr(&["namespaces", "rm", "busy"]).assert_success();
    assert!(!names(&daemon).contains(&"busy".to_owned()));
}
