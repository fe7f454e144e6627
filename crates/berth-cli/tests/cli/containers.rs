//! `berth containers ls|info|label|rm`.

use crate::{create, daemon, header, json, table_rows};

#[test]
fn list_info_label_remove() {
    let daemon = daemon();
    create(&daemon, "default", "web", &[("tier", "front")]);
    create(&daemon, "default", "db", &[]);

    let ls = daemon.berth(&["containers", "ls"]).assert_success();
    assert_eq!(header(&ls), ["CONTAINER", "IMAGE", "RUNTIME"], "{ls}");
    assert_eq!(
        table_rows(&ls),
        [
            ["db", "-", "io.containerd.runc.v2"],
            ["web", "-", "io.containerd.runc.v2"]
        ],
        "{ls}"
    );
    let quiet = daemon.berth(&["c", "ls", "-q"]).assert_success();
    assert_eq!(quiet.lines(), ["db", "web"], "{quiet}");
    let front = daemon
        .berth(&["c", "ls", "-q", "labels.tier==front"])
        .assert_success();
    assert_eq!(front.lines(), ["web"], "{front}");

    let web = json(
        &daemon
            .berth(&["containers", "info", "web"])
            .assert_success(),
    );
    assert_eq!(web["ID"], "web");
    assert_eq!(web["Labels"], serde_json::json!({"tier": "front"}));
    assert_eq!(web["Spec"]["process"]["args"], serde_json::json!(["sh"]));

    let listed = json(
        &daemon
            .berth(&["c", "ls", "--format", "json"])
            .assert_success(),
    );
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["ID"].as_str())
        .collect();
    assert_eq!(ids, ["db", "web"], "{listed}");

    let out = daemon
        .berth(&["c", "label", "web", "tier=", "team=a"])
        .assert_success();
    assert_eq!(out.stdout.trim(), "team=a", "{out}");
    let web = json(&daemon.berth(&["c", "info", "web"]).assert_success());
    assert_eq!(web["Labels"], serde_json::json!({"team": "a"}));

    daemon.berth(&["c", "rm", "web", "db"]).assert_success();
    let quiet = daemon.berth(&["c", "ls", "-q"]).assert_success();
    assert!(quiet.lines().is_empty(), "{quiet}");
}

#[test]
fn info_and_ls_match_ctr() {
    if !berth_testkit::require_ctr() {
        return;
    }
    let daemon = daemon();
    create(&daemon, "default", "twin", &[("a", "b"), ("c", "d")]);
    // ctr re-encodes the spec in Go's field order; berth prints it as
    // stored, so compare values here...
    let berth = json(&daemon.berth(&["c", "info", "twin"]).assert_success());
    let ctr = json(&daemon.ctr(&["c", "info", "twin"]).assert_success());
    assert_eq!(berth, ctr);
    // ...and bytes for a spec that ctr itself wrote.
    let rootfs = daemon.dir().join("rootfs");
    berth_testkit::busybox_rootfs(&rootfs).expect("rootfs");
    let rootfs = rootfs.to_str().expect("utf-8");
    daemon
        .ctr(&["c", "create", "--rootfs", rootfs, "by-ctr", "sh"])
        .assert_success();
    let berth = daemon.berth(&["c", "info", "by-ctr"]).assert_success();
    let ctr = daemon.ctr(&["c", "info", "by-ctr"]).assert_success();
    assert_eq!(berth.stdout, ctr.stdout);
    let berth = daemon.berth(&["c", "ls"]).assert_success();
    let ctr = daemon.ctr(&["c", "ls"]).assert_success();
    assert_eq!(berth.stdout, ctr.stdout);
}

#[test]
fn remove_reports_the_missing_one_and_deletes_the_rest() {
    let daemon = daemon();
    create(&daemon, "default", "real", &[]);
    let out = daemon
        .berth(&["c", "rm", "ghost", "real"])
        .assert_failure_containing("not found");
    assert!(out.stderr.contains("ghost"), "{out}");
    let quiet = daemon.berth(&["c", "ls", "-q"]).assert_success();
    assert!(
        quiet.lines().is_empty(),
        "ctr-like rm goes on past a failure:\n{quiet}"
    );
}
