//! `berth version` and `berth plugins ls`.

use crate::{daemon, header, json, table_rows};

#[test]
fn version_prints_client_and_server() {
    let daemon = daemon();
    let out = daemon.berth(&["version"]).assert_success();
    let (client, server) = out
        .stdout
        .split_once("Server:")
        .unwrap_or_else(|| panic!("no Server section:\n{out}"));
    assert!(client.contains("Client:"), "{out}");
    let version = format!("Version:  {}", env!("CARGO_PKG_VERSION"));
    assert!(client.contains(&version), "{out}");
    assert!(server.contains(&version), "{out}");
    let uuid = server
        .lines()
        .find_map(|l| l.trim().strip_prefix("UUID:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no UUID:\n{out}"));
    assert_eq!(uuid.len(), 36, "{out}");
    // The same UUID as ctr sees.
    if berth_testkit::require_ctr() {
        let ctr = daemon.ctr(&["version"]).assert_success();
        assert!(ctr.stdout.contains(uuid), "{ctr}");
    }
}

#[test]
fn plugins_ls_table_json_quiet_and_detailed() {
    let daemon = daemon();
    let out = daemon.berth(&["plugins", "ls"]).assert_success();
    assert_eq!(header(&out), ["TYPE", "ID", "PLATFORMS", "STATUS"], "{out}");
    let rows = table_rows(&out);
    for id in [
        "namespaces",
        "containers",
        "version",
        "introspection",
        "events",
    ] {
        assert!(
            rows.iter()
                .any(|r| r[0] == "io.containerd.grpc.v1" && r[1] == id && r[3] == "ok"),
            "grpc plugin {id}:\n{out}"
        );
    }
    // The table matches ctr's, row for row.
    if berth_testkit::require_ctr() {
        let ctr = daemon.ctr(&["plugins", "ls"]).assert_success();
        assert_eq!(table_rows(&ctr), rows, "berth:\n{out}\nctr:\n{ctr}");
    }

    let listed = json(
        &daemon
            .berth(&["plugins", "ls", "--format", "json"])
            .assert_success(),
    );
    let plugins = listed.as_array().expect("a JSON array");
    assert_eq!(plugins.len(), rows.len());
    assert!(plugins.iter().any(|p| p["type"] == "io.containerd.event.v1"
        && p["id"] == "exchange"
        && p["status"] == "ok"));

    let quiet = daemon.berth(&["plugins", "ls", "-q"]).assert_success();
    assert_eq!(quiet.lines().len(), rows.len(), "{quiet}");
    assert!(quiet.lines().contains(&"exchange"), "{quiet}");

    let detailed = daemon.berth(&["plugins", "ls", "-d"]).assert_success();
    assert!(detailed.stdout.contains("Type:"), "{detailed}");
    assert!(detailed.stdout.contains("Requires:"), "{detailed}");

    let grpc = daemon
        .berth(&["plugins", "ls", "type==io.containerd.grpc.v1"])
        .assert_success();
    assert!(
        table_rows(&grpc)
            .iter()
            .all(|r| r[0] == "io.containerd.grpc.v1"),
        "{grpc}"
    );
}
