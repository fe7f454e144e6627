//! `ctr containers create/ls/info/label/rm`.

use berth_testkit::require_ctr;
use serde_json::Value;

use crate::{ctr_create, ctr_ids, daemon, rootfs, table_rows};

fn info(daemon: &berth_testkit::Daemon, id: &str) -> Value {
    let out = daemon.ctr(&["containers", "info", id]).assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("info is not JSON ({e}):\n{out}"))
}

#[test]
fn create_list_info_label_remove() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "web").assert_success();
    ctr_create(&daemon, "default", &rootfs, "db").assert_success();

    let ls = daemon.ctr(&["containers", "ls"]).assert_success();
    let header: Vec<&str> = ls.lines()[0].split_whitespace().collect();
    assert_eq!(header, ["CONTAINER", "IMAGE", "RUNTIME"], "{ls}");
    let mut rows = table_rows(&ls);
    rows.sort();
    assert_eq!(
        rows,
        [
            ["db", "-", "io.containerd.runc.v2"],
            ["web", "-", "io.containerd.runc.v2"]
        ],
        "{ls}"
    );
    assert_eq!(ctr_ids(&daemon, "default"), ["db", "web"]);

    let web = info(&daemon, "web");
    assert_eq!(web["ID"], "web");
    assert_eq!(web["Runtime"]["Name"], "io.containerd.runc.v2");
    assert_eq!(web["Spec"]["root"]["path"], rootfs.to_str().expect("utf-8"));
    assert_eq!(web["Spec"]["process"]["args"], serde_json::json!(["sh"]));
    assert!(
        web["CreatedAt"]
            .as_str()
            .is_some_and(|t| !t.starts_with("0001")),
        "{web}"
    );

    let out = daemon
        .ctr(&["containers", "label", "web", "tier=front", "team=a"])
        .assert_success();
    // ctr prints the container's whole label set on one line, comma-separated.
    let mut printed: Vec<&str> = out.stdout.trim().split(',').collect();
    printed.sort();
    assert_eq!(printed, ["team=a", "tier=front"], "{out}");
    let web = info(&daemon, "web");
    assert_eq!(
        web["Labels"],
        serde_json::json!({"tier": "front", "team": "a"})
    );
    assert_ne!(web["UpdatedAt"], web["CreatedAt"], "{web}");

    daemon
        .ctr(&["containers", "label", "web", "team="])
        .assert_success();
    assert_eq!(
        info(&daemon, "web")["Labels"],
        serde_json::json!({"tier": "front"})
    );

    let filtered = daemon
        .ctr(&["containers", "ls", "-q", "labels.tier==front"])
        .assert_success();
    assert_eq!(filtered.lines(), ["web"], "{filtered}");
    let filtered = daemon
        .ctr(&["containers", "ls", "-q", "id==db", "id==web"])
        .assert_success();
    assert_eq!(filtered.lines().len(), 2, "filters are ORed:\n{filtered}");

    daemon.ctr(&["containers", "rm", "web"]).assert_success();
    assert_eq!(ctr_ids(&daemon, "default"), ["db"]);
    daemon
        .ctr(&["containers", "info", "web"])
        .assert_failure_containing("not found");
}

#[test]
fn containers_are_namespaced() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "ns1", &rootfs, "same").assert_success();
    ctr_create(&daemon, "ns2", &rootfs, "same").assert_success();
    ctr_create(&daemon, "ns2", &rootfs, "other").assert_success();
    assert_eq!(ctr_ids(&daemon, "ns1"), ["same"]);
    assert_eq!(ctr_ids(&daemon, "ns2"), ["other", "same"]);
    assert!(ctr_ids(&daemon, "default").is_empty());
    // Creating a container creates its namespace, as in containerd.
    let ns = daemon.ctr(&["namespaces", "ls", "-q"]).assert_success();
    assert!(
        ns.lines().contains(&"ns1") && ns.lines().contains(&"ns2"),
        "{ns}"
    );
}

#[test]
fn create_with_labels_and_containers_survive_a_restart() {
    require_ctr!();
    let mut daemon = daemon();
    let rootfs = rootfs(&daemon);
    let rootfs_str = rootfs.to_str().expect("utf-8");
    daemon
        .ctr(&[
            "containers",
            "create",
            "--label",
            "app=kv",
            "--rootfs",
            rootfs_str,
            "kv",
            "sh",
        ])
        .assert_success();
    daemon.restart().expect("restart");
    let kv = info(&daemon, "kv");
    assert_eq!(kv["Labels"]["app"], "kv", "{kv}");
    assert_eq!(kv["Spec"]["root"]["path"], rootfs_str);
}
