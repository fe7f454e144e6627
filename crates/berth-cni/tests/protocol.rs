//! The exec protocol as plugins see it, with a recording plugin (a shell
//! script): what each command gets in its environment and on stdin, per
//! spec version. Needs no root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use berth_cni::config::DefaultNetwork;
use berth_cni::{Cni, CniOptions, NetworkConfigList, RuntimeConf};
use serde_json::Value;

/// A plugin that appends `COMMAND <stdin>` to `log` and answers ADD with a
/// result in the config's version, VERSION with its versions.
fn recorder(dir: &Path) {
    let log = dir.join("log");
    let script = format!(
        r#"#!/bin/sh
input=$(cat)
printf '%s %s\n' "$CNI_COMMAND" "$input" >> {log}
version=$(printf '%s' "$input" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
case "$CNI_COMMAND" in
ADD) printf '{{"cniVersion":"%s","interfaces":[{{"name":"eth0","sandbox":"%s"}}],"ips":[{{"address":"192.0.2.7/24","interface":0}}]}}' "$version" "$CNI_NETNS" ;;
VERSION) printf '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}}' ;;
esac
"#,
        log = log.display()
    );
    let path = dir.join("recorder");
    std::fs::write(&path, script).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn engine(dir: &Path) -> Cni {
    Cni::new(CniOptions {
        bin_dirs: vec![dir.to_path_buf()],
        conf_dir: dir.join("net.d"),
        cache_dir: dir.join("cache"),
        netns_dir: dir.join("netns"),
        timeout: Duration::from_secs(10),
        default_network: DefaultNetwork::default(),
    })
}

fn calls(dir: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let calls = text
        .lines()
        .map(|l| {
            let (cmd, json) = l.split_once(' ').expect("line");
            (
                cmd.to_string(),
                serde_json::from_str(json).expect("stdin json"),
            )
        })
        .collect();
    let _ = std::fs::remove_file(dir.join("log"));
    calls
}

fn list(version: &str) -> NetworkConfigList {
    NetworkConfigList::from_bytes(
        format!(
            r#"{{"cniVersion":"{version}","name":"rec","plugins":[{{"type":"recorder","n":1}},{{"type":"recorder","n":2,"capabilities":{{"portMappings":true}}}}]}}"#
        )
        .as_bytes(),
    )
    .expect("list")
}

fn rt() -> RuntimeConf {
    let mut rt = RuntimeConf {
        container_id: "c1".into(),
        netns: "/nonexistent/netns".into(),
        if_name: "eth0".into(),
        ..RuntimeConf::default()
    };
    rt.capability_args
        .insert("portMappings".into(), serde_json::json!([{"hostPort": 1}]));
    rt
}

#[tokio::test]
async fn add_chains_del_reverses_and_check_gets_the_cached_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    recorder(dir.path());
    let cni = engine(dir.path());
    let list = list("1.0.0");
    let result = cni.add_list(&list, &rt()).await.expect("add");
    assert_eq!(result.container_ips()[0].to_string(), "192.0.2.7");
    let add = calls(dir.path());
    assert_eq!(add.len(), 2);
    assert_eq!(add[0].1["n"], 1);
    assert!(add[0].1.get("prevResult").is_none());
    assert!(add[0].1.get("runtimeConfig").is_none());
    assert_eq!(add[1].1["prevResult"]["ips"][0]["address"], "192.0.2.7/24");
    assert_eq!(add[1].1["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
    assert_eq!(add[1].1["name"], "rec");

    // A fresh engine (a restarted daemon) finds ADD's result in the cache.
    let cni = engine(dir.path());
    cni.check_list(&list, &rt()).await.expect("check");
    let check = calls(dir.path());
    assert_eq!(
        check.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["CHECK", "CHECK"]
    );
    assert_eq!(
        check[0].1["prevResult"]["ips"][0]["address"],
        "192.0.2.7/24"
    );
    cni.del_list(&list, &rt()).await.expect("del");
    let del = calls(dir.path());
    assert_eq!(
        del.iter().map(|c| c.1["n"].as_i64()).collect::<Vec<_>>(),
        [Some(2), Some(1)]
    );
    assert_eq!(del[0].1["prevResult"]["ips"][0]["address"], "192.0.2.7/24");
    assert!(cni.cache().list().expect("cache").is_empty());
    let err = cni
        .check_list(&list, &rt())
        .await
        .expect_err("nothing cached");
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn older_versions_get_no_cached_result_on_del_and_no_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    recorder(dir.path());
    let cni = engine(dir.path());
    let list = list("0.3.1");
    cni.add_list(&list, &rt()).await.expect("add 0.3.1");
    calls(dir.path());
    let err = cni
        .check_list(&list, &rt())
        .await
        .expect_err("no CHECK in 0.3.1");
    assert!(
        err.to_string()
            .contains("does not support the CHECK command"),
        "{err}"
    );
    cni.del_list(&list, &rt()).await.expect("del");
    for (cmd, stdin) in calls(dir.path()) {
        assert_eq!(cmd, "DEL");
        assert!(stdin.get("prevResult").is_none(), "{stdin}");
    }
}

#[tokio::test]
async fn version_status_and_gc() {
    let dir = tempfile::tempdir().expect("tempdir");
    recorder(dir.path());
    let cni = engine(dir.path());
    let versions = cni.version("recorder").await.expect("version");
    assert!(versions.contains(&"1.1.0".to_string()), "{versions:?}");
    calls(dir.path());
    // STATUS and GC exist from spec 1.1 on; older lists skip them.
    cni.status_list(&list("1.0.0")).await.expect("status 1.0.0");
    cni.gc_list(&list("1.0.0"), &[]).await.expect("gc 1.0.0");
    assert!(calls(dir.path()).is_empty());
    cni.status_list(&list("1.1.0")).await.expect("status");
    cni.gc_list(&list("1.1.0"), &[("c1".into(), "eth0".into())])
        .await
        .expect("gc");
    let seen = calls(dir.path());
    let commands: Vec<&str> = seen.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(commands, ["STATUS", "STATUS", "GC", "GC"]);
    assert_eq!(
        seen[2].1["cni.dev/valid-attachments"],
        serde_json::json!([{"containerID": "c1", "ifname": "eth0"}])
    );
}
