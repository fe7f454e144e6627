//! The engine with Debian's real plugins (`/usr/lib/cni`) and iptables.
//! Each test owns its bridge, subnet, config, cache, netns and IPAM
//! directories, sends traffic only to loopback and to its own namespaces,
//! and checks that teardown leaves no veth, lease, rule or mount.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_cni::config::DefaultNetwork;
use berth_cni::{AttachRequest, Cni, CniOptions, PortMapping};
use berth_testkit::require_root;

/// A test's private world: directories, a bridge, and the engine. Dropping
/// it detaches what is left and deletes the bridge.
struct World {
    dir: tempfile::TempDir,
    bridge: String,
    cni: Arc<Cni>,
    containers: Vec<(String, String)>,
}

impl World {
    fn new(bridge: &str, subnet: &str, conflist: Option<&str>) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("net.d");
        std::fs::create_dir_all(&conf).expect("conf dir");
        if let Some(text) = conflist {
            let text = text
                .replace("@BRIDGE@", bridge)
                .replace("@SUBNET@", subnet)
                .replace("@IPAM@", &dir.path().join("ipam").display().to_string());
            std::fs::write(conf.join("10-test.conflist"), text).expect("write conflist");
        }
        let options = CniOptions {
            bin_dirs: vec![dir.path().join("bin"), "/usr/lib/cni".into()],
            conf_dir: conf,
            cache_dir: dir.path().join("cache"),
            netns_dir: dir.path().join("netns"),
            timeout: Duration::from_secs(20),
            default_network: DefaultNetwork {
                name: format!("{bridge}-net"),
                bridge: bridge.into(),
                subnet: subnet.into(),
                subnet6: None,
                ipam_data_dir: Some(dir.path().join("ipam")),
            },
        };
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        World {
            dir,
            bridge: bridge.into(),
            cni: Arc::new(Cni::new(options)),
            containers: Vec::new(),
        }
    }

    fn request(&mut self, id: &str, ports: Vec<PortMapping>) -> AttachRequest {
        self.containers.push(("test".into(), id.into()));
        AttachRequest {
            namespace: "test".into(),
            id: id.into(),
            network: None,
            max_networks: 1,
            ports,
            capability_args: Default::default(),
        }
    }

    fn ipam(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// Files of host-local's leases (its `lock` and `last_reserved_ip` files
    /// are bookkeeping, not leases).
    fn leases(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(nets) = std::fs::read_dir(self.ipam()) {
            for net in nets.filter_map(|e| e.ok()) {
                if let Ok(files) = std::fs::read_dir(net.path()) {
                    for f in files.filter_map(|e| e.ok()) {
                        let name = f.file_name().to_string_lossy().into_owned();
                        if name != "lock" && !name.starts_with("last_reserved_ip") {
                            out.push(name);
                        }
                    }
                }
            }
        }
        out
    }

    /// Host interfaces enslaved to the bridge.
    fn veths(&self) -> String {
        sh(&format!(
            "ip -o link show master {} 2>/dev/null",
            self.bridge
        ))
    }

    fn plugin(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let cni = self.cni.clone();
        let containers = std::mem::take(&mut self.containers);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            for (ns, id) in containers {
                if let Err(e) = rt.block_on(cni.detach(&ns, &id)) {
                    eprintln!("cleanup {ns}/{id}: {e}");
                }
            }
        })
        .join();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_netns(netns: &Path, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(args)
        .output()
        .expect("nsenter")
}

/// iptables rules that mention `needle`.
fn rules(needle: &str) -> String {
    let all = sh("iptables-save 2>/dev/null; ip6tables-save 2>/dev/null");
    all.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

const BRIDGE_PORTMAP_FIREWALL: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "@BRIDGE@-list",
  "plugins": [
    {"type": "bridge", "bridge": "@BRIDGE@", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "@SUBNET@"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "@IPAM@"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}"#;

#[tokio::test]
async fn two_containers_ping_each_other_and_teardown_leaves_nothing() {
    require_root!();
    let mut world = World::new("bcni-e1", "10.231.1.0/24", Some(BRIDGE_PORTMAP_FIREWALL));
    let a = world.request("a", vec![]);
    let b = world.request("b", vec![]);
    let at_a = world.cni.attach(&a).await.expect("attach a");
    let at_b = world.cni.attach(&b).await.expect("attach b");
    assert_eq!(at_a.primary().network, "bcni-e1-list");
    let (ip_a, ip_b) = (at_a.ips()[0], at_b.ips()[0]);
    assert_ne!(ip_a, ip_b);
    assert!(ip_a.to_string().starts_with("10.231.1."), "{ip_a}");
    assert!(berth_cni::netns::is_netns(&at_a.netns));
    let lo = in_netns(&at_a.netns, &["ip", "-o", "addr", "show", "lo"]);
    assert!(String::from_utf8_lossy(&lo.stdout).contains("127.0.0.1"));
    let ping = in_netns(
        &at_a.netns,
        &["busybox", "ping", "-c1", "-W2", &ip_b.to_string()],
    );
    assert!(ping.status.success(), "ping {ip_b}: {:?}", ping);

    // The cache answers as ADD did, and CHECK passes.
    let cached = world
        .cni
        .attachment("test", "a")
        .expect("cache")
        .expect("cached");
    assert_eq!(cached.ips(), at_a.ips());
    let list = world.cni.network(None).expect("network");
    let rt = berth_cni::RuntimeConf {
        container_id: Cni::container_key("test", "a"),
        netns: at_a.netns.clone(),
        if_name: "eth0".into(),
        args: vec![("IgnoreUnknown".into(), "1".into())],
        capability_args: Default::default(),
    };
    world.cni.check_list(&list, &rt).await.expect("check");
    assert_eq!(world.leases().len(), 2);
    assert_eq!(world.cni.attached().expect("attached").len(), 2);

    for id in ["a", "b"] {
        world.cni.detach("test", id).await.expect("detach");
        world.cni.detach("test", id).await.expect("detach again");
    }
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert!(!at_a.netns.exists() && !at_b.netns.exists());
    assert_eq!(rules(&Cni::container_key("test", "a")), "");
    assert_eq!(rules(&format!("{ip_a}/32")), "");
    assert_eq!(world.cni.attached().expect("attached"), vec![]);
}

#[tokio::test]
async fn a_published_port_answers_on_loopback_and_a_second_claim_fails() {
    require_root!();
    let mut world = World::new("bcni-e2", "10.231.2.0/24", None);
    let port = PortMapping {
        host_port: 18931,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: "127.0.0.1".into(),
    };
    let web = world.request("web", vec![port.clone()]);
    let at = world
        .cni
        .attach(&web)
        .await
        .expect("attach on the default network");
    assert_eq!(at.primary().network, "bcni-e2-net");
    let root = world.dir.path().join("www");
    std::fs::create_dir_all(&root).expect("www");
    std::fs::write(root.join("index.html"), "hello from the netns\n").expect("index");
    let mut httpd = Command::new("nsenter")
        .arg(format!("--net={}", at.netns.display()))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
        .arg(&root)
        .spawn()
        .expect("httpd");
    let ip = at.ips()[0];
    let direct = berth_testkit::http_get(&format!("{ip}:80"));
    let published = berth_testkit::http_get("127.0.0.1:18931");
    let other = world.request("other", vec![port]);
    let conflict = world.cni.attach(&other).await.expect_err("port taken");
    let _ = httpd.kill();
    let _ = httpd.wait();
    assert_eq!(direct, "hello from the netns\n");
    assert_eq!(published, "hello from the netns\n");
    assert_eq!(conflict.kind(), berth_core::ErrorKind::AlreadyExists);
    assert!(conflict.message().contains("18931"), "{conflict}");
    assert!(!world.cni.netns_path("test", "other").exists());

    world.cni.detach("test", "web").await.expect("detach");
    assert_eq!(rules("18931"), "");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
}

#[tokio::test]
async fn a_plugin_failing_mid_chain_rolls_everything_back() {
    require_root!();
    let conflist =
        BRIDGE_PORTMAP_FIREWALL.replace(r#"{"type": "firewall"}"#, r#"{"type": "failing"}"#);
    let mut world = World::new("bcni-e3", "10.231.3.0/24", Some(&conflist));
    world.plugin(
        "failing",
        r#"cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0
echo '{"cniVersion":"1.0.0","code":999,"msg":"refused on purpose","details":"by the test"}'; exit 1"#,
    );
    let port = PortMapping {
        host_port: 18932,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: String::new(),
    };
    let req = world.request("x", vec![port]);
    let err = world.cni.attach(&req).await.expect_err("fails");
    let text = err.to_string();
    for want in [
        "bcni-e3-list",
        "10-test.conflist",
        "failing",
        "code 999",
        "refused on purpose",
        "by the test",
    ] {
        assert!(text.contains(want), "{text} should say {want}");
    }
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert_eq!(rules(&Cni::container_key("test", "x")), "");
    assert_eq!(rules("18932"), "");
    assert!(!world.cni.netns_path("test", "x").exists());
    assert_eq!(world.cni.cache().list().expect("cache"), vec![]);
}

#[tokio::test]
async fn several_networks_attach_as_eth0_eth1_and_a_failing_one_rolls_all_back() {
    require_root!();
    let mut world = World::new("bcni-e7", "10.231.7.0/24", Some(BRIDGE_PORTMAP_FIREWALL));
    let second = BRIDGE_PORTMAP_FIREWALL
        .replace("@BRIDGE@", "bcni-e7b")
        .replace("@SUBNET@", "10.231.8.0/24")
        .replace("@IPAM@", &world.ipam().display().to_string());
    let conf = world.dir.path().join("net.d");
    std::fs::write(conf.join("20-second.conflist"), second).expect("second conflist");
    let _second_bridge = DeleteBridge("bcni-e7b");

    // max_networks 0: every network, in file-name order.
    let mut req = world.request("a", vec![]);
    req.max_networks = 0;
    let at = world.cni.attach(&req).await.expect("attach both");
    let names: Vec<_> = at
        .networks
        .iter()
        .map(|n| (n.if_name.as_str(), n.network.as_str()))
        .collect();
    assert_eq!(names, [("eth0", "bcni-e7-list"), ("eth1", "bcni-e7b-list")]);
    assert!(at.ips()[0].to_string().starts_with("10.231.7."), "{at:?}");
    let eth1 = in_netns(&at.netns, &["ip", "-o", "addr", "show", "eth1"]);
    assert!(
        String::from_utf8_lossy(&eth1.stdout).contains("10.231.8."),
        "{eth1:?}"
    );
    let cached = world.cni.attachment("test", "a").expect("cache");
    assert_eq!(cached.expect("cached").networks.len(), 2);
    assert_eq!(world.leases().len(), 2);
    world.cni.detach("test", "a").await.expect("detach");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(sh("ip -o link show master bcni-e7b 2>/dev/null"), "");

    // max_networks 1: the first only.
    let mut req = world.request("b", vec![]);
    req.max_networks = 1;
    let at = world.cni.attach(&req).await.expect("attach one");
    assert_eq!(at.networks.len(), 1);
    world.cni.detach("test", "b").await.expect("detach");

    // A third network that fails undoes the two made before it.
    world.plugin(
        "failing",
        r#"cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0
echo '{"cniVersion":"1.0.0","code":999,"msg":"third refused"}'; exit 1"#,
    );
    std::fs::write(
        conf.join("30-third.conflist"),
        r#"{"cniVersion":"1.0.0","name":"third","plugins":[{"type":"failing"}]}"#,
    )
    .expect("third conflist");
    let mut req = world.request("c", vec![]);
    req.max_networks = 0;
    let err = world.cni.attach(&req).await.expect_err("third fails");
    assert!(err.to_string().contains("third refused"), "{err}");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert_eq!(sh("ip -o link show master bcni-e7b 2>/dev/null"), "");
    assert!(!world.cni.netns_path("test", "c").exists());
    assert_eq!(world.cni.cache().list().expect("cache"), vec![]);
}

/// Deletes a bridge when dropped.
struct DeleteBridge(&'static str);

impl Drop for DeleteBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn a_missing_or_hanging_plugin_is_a_clear_error() {
    require_root!();
    let missing =
        BRIDGE_PORTMAP_FIREWALL.replace(r#"{"type": "firewall"}"#, r#"{"type": "nosuchplugin"}"#);
    let mut world = World::new("bcni-e4", "10.231.4.0/24", Some(&missing));
    let req = world.request("m", vec![]);
    let err = world.cni.attach(&req).await.expect_err("missing plugin");
    assert!(err.to_string().contains("nosuchplugin"), "{err}");
    assert!(err.to_string().contains("10-test.conflist"), "{err}");
    assert!(!err.to_string().contains("cleanup"), "{err}");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert!(!world.cni.netns_path("test", "m").exists());

    let hanging = BRIDGE_PORTMAP_FIREWALL.replace(r#"{"type": "firewall"}"#, r#"{"type": "hang"}"#);
    std::fs::write(
        world.dir.path().join("net.d/10-test.conflist"),
        hanging
            .replace("@BRIDGE@", "bcni-e4")
            .replace("@SUBNET@", "10.231.4.0/24")
            .replace("@IPAM@", &world.ipam().display().to_string()),
    )
    .expect("rewrite");
    world.plugin(
        "hang",
        r#"cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0; exec sleep 60"#,
    );
    let mut options = world.cni.options().clone();
    options.timeout = Duration::from_secs(2);
    world.cni = Arc::new(Cni::new(options));
    let req = world.request("h", vec![]);
    let err = world.cni.attach(&req).await.expect_err("times out");
    assert_eq!(err.kind(), berth_core::ErrorKind::DeadlineExceeded, "{err}");
    assert!(err.to_string().contains("hang"), "{err}");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert!(!world.cni.netns_path("test", "h").exists());
}

/// The real default network (`berth0` on 10.88.0.0/16), with IPv6 asked
/// for. The bridge is this test's: it skips if `berth0` exists already
/// (someone else's) and deletes it at the end.
#[tokio::test]
async fn the_default_network_is_berth0_and_speaks_ipv6_when_asked() {
    require_root!();
    if Command::new("ip")
        .args(["link", "show", "berth0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: a berth0 bridge exists already and is not this test's");
        return;
    }
    let mut world = World::new("berth0", "10.88.0.0/16", None);
    let mut options = world.cni.options().clone();
    options.default_network = DefaultNetwork {
        subnet6: Some("fd00:bc:88::/64".into()),
        ipam_data_dir: Some(world.ipam()),
        ..DefaultNetwork::default()
    };
    world.cni = Arc::new(Cni::new(options));
    let a = world.request("v6a", vec![]);
    let b = world.request("v6b", vec![]);
    let at_a = world.cni.attach(&a).await.expect("attach a");
    let at_b = world.cni.attach(&b).await.expect("attach b");
    assert_eq!(at_a.primary().network, "berth");
    let ips = at_b.ips();
    assert!(ips[0].to_string().starts_with("10.88."), "{ips:?}");
    let v6 = ips.iter().find(|ip| ip.is_ipv6()).expect("an IPv6 address");
    assert!(v6.to_string().starts_with("fd00:bc:88:"), "{v6}");
    // Duplicate address detection may hold a new address back briefly.
    let mut ping = in_netns(
        &at_a.netns,
        &["busybox", "ping", "-c1", "-W2", &v6.to_string()],
    );
    for _ in 0..20 {
        if ping.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        ping = in_netns(
            &at_a.netns,
            &["busybox", "ping", "-c1", "-W2", &v6.to_string()],
        );
    }
    assert!(ping.status.success(), "ping {v6}: {ping:?}");
    for id in ["v6a", "v6b"] {
        world.cni.detach("test", id).await.expect("detach");
    }
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
    assert_eq!(rules(&Cni::container_key("test", "v6a")), "");
}

#[tokio::test]
async fn attach_prepared_uses_the_namespace_made_before_and_removes_it_on_failure() {
    require_root!();
    let conflist =
        BRIDGE_PORTMAP_FIREWALL.replace(r#"{"type": "firewall"}"#, r#"{"type": "failing"}"#);
    let mut world = World::new("bcni-e9", "10.231.9.0/24", Some(BRIDGE_PORTMAP_FIREWALL));
    let req = world.request("p", Vec::new());
    let netns = world.cni.create_netns("test", "p").expect("create netns");
    assert!(berth_cni::netns::is_netns(&netns));
    let extra = [("K8S_POD_NAME".to_string(), "p".to_string())];
    let attached = world
        .cni
        .attach_prepared(&req, &extra)
        .await
        .expect("attach in the prepared netns");
    assert_eq!(attached.netns, netns);
    assert!(!attached.ips().is_empty());
    let cached = world.cni.cache().list().expect("cache");
    assert!(
        cached.iter().all(|e| e.arg("K8S_POD_NAME") == Some("p")),
        "the extra CNI_ARGS are cached for DEL"
    );
    world.cni.detach("test", "p").await.expect("detach");
    assert!(!netns.exists());
    assert_eq!(world.leases(), Vec::<String>::new());

    // A failing chain removes the prepared namespace too.
    std::fs::write(
        world.dir.path().join("net.d/10-test.conflist"),
        conflist
            .replace("@BRIDGE@", "bcni-e9")
            .replace("@SUBNET@", "10.231.9.0/24")
            .replace("@IPAM@", &world.ipam().display().to_string()),
    )
    .expect("failing conflist");
    world.plugin("failing", "cat >/dev/null; [ \"$CNI_COMMAND\" = DEL ] && exit 0\necho '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"no\"}'; exit 1");
    let req = world.request("q", Vec::new());
    let netns = world.cni.create_netns("test", "q").expect("create netns");
    let err = world
        .cni
        .attach_prepared(&req, &[])
        .await
        .expect_err("a failing plugin");
    assert!(err.to_string().contains("failing"), "{err}");
    assert!(!netns.exists(), "the prepared netns is removed");
    assert_eq!(world.leases(), Vec::<String>::new());
    assert_eq!(world.veths(), "");
}
