//! `ctr version` and `ctr plugins ls`.

use berth_testkit::{require_ctr, testing_containerd};

use crate::{daemon, table_rows};

/// The value after `key:` in the `Server:` section of `ctr version`.
fn server_field(stdout: &str, key: &str) -> Option<String> {
    let server = stdout.split("Server:").nth(1)?;
    server.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(':')?;
        (k == key).then(|| v.trim().to_owned())
    })
}

#[test]
fn ctr_version_prints_client_and_server() {
    require_ctr!();
    let daemon = daemon();
    let out = daemon.ctr(&["version"]).assert_success();
    assert!(out.stdout.contains("Client:"), "{out}");
    let version = server_field(&out.stdout, "Version").expect("server version line");
    if !testing_containerd() {
        assert!(
            version.contains(env!("CARGO_PKG_VERSION")),
            "server version {version:?} should contain berth's {}\n{out}",
            env!("CARGO_PKG_VERSION")
        );
    }
    let revision = server_field(&out.stdout, "Revision").expect("server revision line");
    assert!(!revision.is_empty(), "{out}");
    // ctr 1.6 asks Introspection.Server for the UUID; "not implemented" here
    // would mean the introspection service is missing.
    assert!(!out.stderr.contains("not implemented"), "{out}");
}

#[test]
fn server_uuid_persists_across_restarts() {
    require_ctr!();
    let mut daemon = daemon();
    let uuid = |d: &berth_testkit::Daemon| {
        let out = d.ctr(&["version"]).assert_success();
        server_field(&out.stdout, "UUID").expect("UUID line")
    };
    let before = uuid(&daemon);
    assert_eq!(before.len(), 36, "not a UUID: {before:?}");
    assert_eq!(before.matches('-').count(), 4, "not a UUID: {before:?}");
    daemon.restart().expect("restart");
    assert_eq!(uuid(&daemon), before);
}

#[test]
fn ctr_plugins_ls_lists_the_foundation_plugins_ok() {
    require_ctr!();
    let daemon = daemon();
    let out = daemon.ctr(&["plugins", "ls"]).assert_success();
    let header = out.lines().first().copied().unwrap_or_default().to_owned();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["TYPE", "ID", "PLATFORMS", "STATUS"], "{out}");
    let rows = table_rows(&out);
    let status = |ty: &str, id: Option<&str>| {
        rows.iter()
            .find(|r| r[0] == ty && id.is_none_or(|id| r[1] == id))
            .map(|r| r[3].clone())
    };
    for id in [
        "namespaces",
        "containers",
        "version",
        "introspection",
        "events",
    ] {
        assert_eq!(
            status("io.containerd.grpc.v1", Some(id)).as_deref(),
            Some("ok"),
            "io.containerd.grpc.v1 {id}\n{out}"
        );
    }
    assert_eq!(
        status("io.containerd.event.v1", Some("exchange")).as_deref(),
        Some("ok"),
        "{out}"
    );
    // containerd calls its metadata plugin "bolt"; berth's may use another id.
    assert_eq!(
        status("io.containerd.metadata.v1", None).as_deref(),
        Some("ok"),
        "{out}"
    );
}

#[test]
fn ctr_plugins_ls_filters_by_type() {
    require_ctr!();
    let daemon = daemon();
    let out = daemon
        .ctr(&["plugins", "ls", "type==io.containerd.grpc.v1"])
        .assert_success();
    let rows = table_rows(&out);
    assert!(rows.len() >= 5, "{out}");
    assert!(
        rows.iter().all(|r| r[0] == "io.containerd.grpc.v1"),
        "{out}"
    );
}

#[test]
fn ctr_plugins_ls_detailed_shows_requirements() {
    require_ctr!();
    let daemon = daemon();
    let out = daemon.ctr(&["plugins", "ls", "-d"]).assert_success();
    // The detailed view prints one block per plugin with its requirements;
    // the containers API needs the containers service.
    assert!(out.stdout.contains("Type:"), "{out}");
    assert!(out.stdout.contains("Requires:"), "{out}");
    assert!(out.stdout.contains("io.containerd.service.v1"), "{out}");
}
