//! The CRI plugin is served on berthd's socket, as containerd's is: the
//! kubelet's first calls (Version, Status) answer, NetworkReady follows the
//! CNI configuration directory, and the plugin is listed by introspection.

use berth_testkit::{block_on, require_ctr, testing_containerd, Daemon};
use k8s_cri::v1::{StatusRequest, VersionRequest};

#[test]
fn version_and_status_answer_and_network_readiness_follows_the_cni_config() {
    let daemon = Daemon::start().expect("start daemon");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        let version = cri
            .runtime
            .version(VersionRequest {
                version: "v1".into(),
            })
            .await
            .expect("Version")
            .into_inner();
        assert_eq!(version.runtime_api_version, "v1");
        assert!(!version.runtime_name.is_empty());

        let conditions = |status: k8s_cri::v1::StatusResponse| {
            status
                .status
                .expect("status")
                .conditions
                .into_iter()
                .map(|c| (c.r#type, (c.status, c.reason)))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let status = cri
            .runtime
            .status(StatusRequest { verbose: false })
            .await
            .expect("Status")
            .into_inner();
        let found = conditions(status);
        assert!(found["RuntimeReady"].0);
        assert!(!found["NetworkReady"].0, "no CNI config yet: {found:?}");
        assert_eq!(found["NetworkReady"].1, "NetworkPluginNotReady");

        // The testkit's config points the CRI conf_dir at <dir>/cni.
        let conf_dir = daemon.dir().join("cni");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        std::fs::write(
            conf_dir.join("10-test.conflist"),
            r#"{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"loopback"}]}"#,
        )
        .expect("conflist");
        let status = cri
            .runtime
            .status(StatusRequest { verbose: false })
            .await
            .expect("Status")
            .into_inner();
        assert!(conditions(status)["NetworkReady"].0);
    })
    .expect("runtime");
}

#[test]
fn the_cri_plugin_is_listed_by_ctr() {
    require_ctr!();
    if testing_containerd() {
        eprintln!("skipping: containerd's own CRI plugin is checked elsewhere");
        return;
    }
    let daemon = Daemon::start().expect("start daemon");
    let out = daemon.ctr(&["plugins", "ls"]);
    assert!(out.success(), "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("io.containerd.grpc.v1") && l.contains(" cri "))
        .unwrap_or_else(|| panic!("no cri plugin in:\n{}", out.stdout));
    assert!(row.trim_end().ends_with("ok"), "{row}");
}

#[test]
fn update_runtime_config_fills_the_cni_template_with_the_pod_cidr() {
    let daemon = Daemon::builder()
        .edit_config(|dir, config| {
            let template = dir.join("cni-template.json");
            std::fs::write(
                &template,
                r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],"routes":[{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}]}}]}"#,
            )
            .expect("template");
            config.replace(
                "      bin_dir = \"/usr/lib/cni\"\n",
                &format!("      bin_dir = \"/usr/lib/cni\"\n      conf_template = {template:?}\n"),
            )
        })
        .start()
        .expect("start daemon");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        cri.runtime
            .update_runtime_config(k8s_cri::v1::UpdateRuntimeConfigRequest {
                runtime_config: Some(k8s_cri::v1::RuntimeConfig {
                    network_config: Some(k8s_cri::v1::NetworkConfig {
                        pod_cidr: "10.244.1.0/24,fd10:244:1::/64".into(),
                    }),
                }),
            })
            .await
            .expect("UpdateRuntimeConfig");
        let written = daemon.dir().join("cni").join("10-containerd-net.conflist");
        let conf: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written).expect("conflist written"))
                .expect("valid JSON");
        let ipam = &conf["plugins"][0]["ipam"];
        assert_eq!(ipam["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(ipam["ranges"][1][0]["subnet"], "fd10:244:1::/64");
        assert_eq!(ipam["routes"][1]["dst"], "::/0");
        let status = cri
            .runtime
            .status(StatusRequest { verbose: false })
            .await
            .expect("Status")
            .into_inner();
        let network = status
            .status
            .expect("status")
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .expect("NetworkReady");
        assert!(network.status, "the written config makes the network ready");
    })
    .expect("runtime");
}
