//! `berth namespaces create|ls|label|rm`.

use crate::{create, daemon, header, json, table_rows};

#[test]
fn create_label_list_remove() {
    let daemon = daemon();
    daemon
        .berth(&["namespaces", "create", "alpha", "owner=ann", "tier=dev"])
        .assert_success();
    daemon.berth(&["ns", "create", "beta"]).assert_success();

    let ls = daemon.berth(&["namespaces", "ls"]).assert_success();
    assert_eq!(header(&ls), ["NAME", "LABELS"], "{ls}");
    let rows = table_rows(&ls);
    assert!(
        rows.contains(&vec!["alpha".into(), "owner=ann,tier=dev".into()]),
        "{ls}"
    );
    assert!(rows.contains(&vec!["beta".into()]), "{ls}");

    daemon
        .berth(&["namespaces", "label", "alpha", "tier=", "cost=7"])
        .assert_success();
    let listed = json(
        &daemon
            .berth(&["ns", "ls", "--format", "json"])
            .assert_success(),
    );
    let alpha = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|n| n["name"] == "alpha")
        .unwrap_or_else(|| panic!("alpha missing: {listed}"))
        .clone();
    assert_eq!(
        alpha["labels"],
        serde_json::json!({"owner": "ann", "cost": "7"})
    );

    let quiet = daemon.berth(&["ns", "ls", "-q"]).assert_success();
    assert_eq!(quiet.lines(), ["alpha", "beta"], "{quiet}");

    daemon
        .berth(&["ns", "rm", "alpha", "beta"])
        .assert_success();
    let quiet = daemon.berth(&["ns", "ls", "-q"]).assert_success();
    assert!(quiet.lines().is_empty(), "{quiet}");
}

#[test]
fn removing_a_namespace_in_use_fails_with_one_line() {
    let daemon = daemon();
    create(&daemon, "held", "tenant", &[]);
    let out = daemon
        .berth(&["ns", "rm", "held"])
        .assert_failure_containing("failed precondition");
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line:\n{out}");
    assert!(out.stderr.contains("held"), "{out}");
    let quiet = daemon.berth(&["ns", "ls", "-q"]).assert_success();
    assert_eq!(quiet.lines(), ["held"], "{quiet}");
}

#[test]
fn namespace_flag_and_environment_select_the_namespace() {
    let daemon = daemon();
    create(&daemon, "envns", "in-env", &[]);
    let flagged = daemon
        .berth_ns("envns", &["containers", "ls", "-q"])
        .assert_success();
    assert_eq!(flagged.lines(), ["in-env"], "{flagged}");

    // CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE, as ctr honours them.
    let bin = berth_testkit::berth_bin().expect("berth binary");
    let mut cmd = std::process::Command::new(bin);
    cmd.env("CONTAINERD_ADDRESS", daemon.address())
        .env("CONTAINERD_NAMESPACE", "envns")
        .args(["containers", "ls", "-q"]);
    let out = berth_testkit::run_with_timeout(&mut cmd, berth_testkit::DEFAULT_COMMAND_TIMEOUT)
        .expect("run berth")
        .assert_success();
    assert_eq!(out.lines(), ["in-env"], "{out}");
}
