//! Bad input gets containerd's gRPC codes, which ctr prints as containerd's
//! error classes ("invalid argument", "already exists", "not found").

use berth_testkit::pb::services::v1::containers_client::ContainersClient;
use berth_testkit::pb::services::v1::ListContainersRequest;
use berth_testkit::{block_on, connect, require_ctr};
use serde_json::Value;

use crate::{ctr_create, ctr_ids, daemon, rootfs};

#[test]
fn invalid_container_ids_are_invalid_argument() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    let out = ctr_create(&daemon, "default", &rootfs, "bad id!")
        .assert_failure_containing("invalid argument");
    assert!(out.stderr.contains("bad id!"), "{out}");
    // Nothing path-like: ids name directories and sockets later.
    for id in ["../escape", "a/b", "/abs", ".hidden", "a..b"] {
        ctr_create(&daemon, "default", &rootfs, id).assert_failure_containing("invalid argument");
    }
    // containerd allows at most 76 characters.
    let long = "a".repeat(77);
    ctr_create(&daemon, "default", &rootfs, &long).assert_failure_containing("invalid argument");
    ctr_create(&daemon, "default", &rootfs, &"a".repeat(76)).assert_success();
    assert_eq!(ctr_ids(&daemon, "default"), ["a".repeat(76)]);
}

#[test]
fn duplicate_container_id_is_already_exists_and_keeps_the_original() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "twin").assert_success();
    let rootfs_str = rootfs.to_str().expect("utf-8");
    let out = daemon
        .ctr(&[
            "containers",
            "create",
            "--rootfs",
            rootfs_str,
            "twin",
            "true",
        ])
        .assert_failure_containing("already exists");
    assert!(out.stderr.contains("twin"), "{out}");
    let info = daemon.ctr(&["containers", "info", "twin"]).assert_success();
    let info: Value = serde_json::from_str(&info.stdout).expect("JSON");
    assert_eq!(info["Spec"]["process"]["args"], serde_json::json!(["sh"]));
}

#[test]
fn unknown_namespace_or_container_is_not_found() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "here").assert_success();
    let out = daemon
        .ctr_ns("nowhere", &["containers", "info", "here"])
        .assert_failure_containing("not found");
    assert!(out.stderr.contains("here"), "{out}");
    daemon
        .ctr_ns("nowhere", &["containers", "rm", "here"])
        .assert_failure_containing("not found");
    daemon
        .ctr(&["containers", "info", "absent"])
        .assert_failure_containing("not found");
    daemon
        .ctr(&["containers", "label", "absent", "a=b"])
        .assert_failure_containing("not found");
    // The container in the right namespace is untouched.
    assert_eq!(ctr_ids(&daemon, "default"), ["here"]);
}

#[test]
fn invalid_filters_are_invalid_argument() {
    require_ctr!();
    let daemon = daemon();
    for filter in [
        "id==",
        "labels.a==b,",
        "==x",
        "id==a,,id==b",
        r#"id=="open"#,
    ] {
        daemon
            .ctr(&["containers", "ls", filter])
            .assert_failure_containing("invalid argument");
    }
    daemon.ctr(&["namespaces", "ls"]).assert_success();
}

#[test]
fn invalid_labels_are_invalid_argument() {
    require_ctr!();
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "lab").assert_success();
    // containerd limits a label's key plus value to 4096 bytes.
    let big = format!("k={}", "v".repeat(4096));
    daemon
        .ctr(&["containers", "label", "lab", &big])
        .assert_failure_containing("invalid argument");
}

#[test]
fn a_call_without_namespace_is_failed_precondition() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    let status = block_on(async move {
        let mut client = ContainersClient::new(connect(&address).await.expect("connect"));
        client
            .list(ListContainersRequest::default())
            .await
            .expect_err("list without a namespace must fail")
    })
    .expect("runtime");
    // containerd's NamespaceRequired: FailedPrecondition, "namespace is required".
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("namespace"), "{status:?}");
}
