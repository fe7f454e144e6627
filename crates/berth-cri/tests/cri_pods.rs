//! Pod sandboxes over CRI, against a private berthd: RunPodSandbox starts
//! berth's built-in pause image in a network namespace attached with
//! Debian's CNI plugins (bridge, host-local, portmap from /usr/lib/cni),
//! Status/List report it, Stop tears the network down, Remove leaves
//! nothing, and a failing CNI plugin leaves nothing either.
//!
//! Each test owns a bridge and a subnet, sends no traffic at all, and
//! checks that no netns, lease, veth, iptables rule, record or task is
//! left.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testkit::{block_on, require_root, CriClient, Daemon};
use k8s_cri::v1::*;

/// A daemon with a CNI network of its own.
struct Pods {
    daemon: Daemon,
    bridge: String,
}

impl Pods {
    /// A daemon whose CRI conf dir holds a bridge network on `bridge`
    /// with `subnet` (host-local leases in the daemon's directory) and
    /// portmap.
    fn new(bridge: &str, subnet: &str) -> Pods {
        let daemon = Daemon::start().expect("start daemon");
        Pods::with_daemon(daemon, bridge, subnet)
    }

    fn with_daemon(daemon: Daemon, bridge: &str, subnet: &str) -> Pods {
        let pods = Pods {
            daemon,
            bridge: bridge.into(),
        };
        pods.write_conflist(&format!(
            r#"{{"cniVersion":"1.0.0","name":"{bridge}","plugins":[
                {{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,
                  "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],
                           "dataDir":"{ipam}"}}}},
                {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
            ipam = pods.ipam().display()
        ));
        pods
    }

    fn write_conflist(&self, text: &str) {
        let dir = self.daemon.dir().join("cni");
        std::fs::create_dir_all(&dir).expect("conf dir");
        std::fs::write(dir.join("10-test.conflist"), text).expect("conflist");
    }

    fn ipam(&self) -> PathBuf {
        self.daemon.dir().join("ipam")
    }

    /// host-local's leases of the test's network.
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.ipam().join(&self.bridge))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .collect()
    }

    fn netns_left(&self) -> Vec<PathBuf> {
        let dir = self.daemon.state().join("netns").join("k8s.io");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    fn veths(&self) -> String {
        sh(&format!(
            "ip -o link show master {} 2>/dev/null",
            self.bridge
        ))
    }

    fn sandbox_root(&self, id: &str) -> PathBuf {
        self.daemon
            .root()
            .join("io.containerd.grpc.v1.cri/sandboxes")
            .join(id)
    }

    /// A label of the built-in pause image's record.
    fn image_label(&self, key: &str) -> Option<String> {
        use berth_core::images::ImageStore;
        block_on(async {
            let client = berth_client::Client::connect(self.daemon.address().display().to_string())
                .await
                .expect("client")
                .with_namespace("k8s.io");
            let image = client
                .images()
                .get("localhost/berth/pause:builtin")
                .await
                .expect("the built-in pause image");
            image.labels.get(key).cloned()
        })
        .expect("runtime")
    }

    /// The k8s.io snapshots of the configured snapshotter.
    fn snapshots(&self) -> Vec<String> {
        block_on(async {
            let client = berth_client::Client::connect(self.daemon.address().display().to_string())
                .await
                .expect("client")
                .with_namespace("k8s.io");
            use berth_core::snapshots::Snapshotter;
            client
                .snapshotter("overlayfs")
                .walk(&[])
                .await
                .expect("walk snapshots")
                .into_iter()
                .map(|info| info.name)
                .collect()
        })
        .expect("runtime")
    }

    /// The k8s.io container records and tasks the daemon has.
    fn records_and_tasks(&self) -> (Vec<String>, Vec<String>) {
        block_on(async {
            let client = berth_client::Client::connect(self.daemon.address().display().to_string())
                .await
                .expect("client")
                .with_namespace("k8s.io");
            let records = client
                .containers()
                .list::<&str>(&[])
                .await
                .expect("containers")
                .into_iter()
                .map(|c| c.id)
                .collect();
            let tasks = client
                .tasks()
                .list("")
                .await
                .expect("tasks")
                .into_iter()
                .map(|t| t.id)
                .collect();
            (records, tasks)
        })
        .expect("runtime")
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        // Whatever a failed test left: every pod removed through CRI, then
        // the bridge.
        let _ = block_on(async {
            let Ok(mut cri) = self.daemon.cri().await else {
                return;
            };
            let Ok(list) = cri
                .runtime
                .list_pod_sandbox(ListPodSandboxRequest::default())
                .await
            else {
                return;
            };
            for pod in list.into_inner().items {
                let _ = cri
                    .runtime
                    .remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: pod.id,
                    })
                    .await;
            }
            // And if removal failed, the tasks (and so their shims) by hand.
            let address = self.daemon.address().display().to_string();
            let Ok(client) = berth_client::Client::connect(address).await else {
                return;
            };
            let tasks = client.with_namespace("k8s.io").tasks();
            for task in tasks.list("").await.unwrap_or_default() {
                let _ = tasks.kill(&task.id, "", 9, true).await;
                let _ = tasks.wait(&task.id, "").await;
                let _ = tasks.delete(&task.id).await;
            }
        });
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
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rules(needle: &str) -> String {
    sh("iptables-save 2>/dev/null")
        .lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pod_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: format!("/var/log/pods/{name}"),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        annotations: HashMap::from([("note".to_string(), "hello".to_string())]),
        ..PodSandboxConfig::default()
    }
}

fn run_request(config: PodSandboxConfig) -> RunPodSandboxRequest {
    RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    }
}

async fn status(cri: &mut CriClient, id: &str) -> (PodSandboxStatus, serde_json::Value) {
    let response = cri
        .runtime
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    let info = serde_json::from_str(&response.info["info"]).expect("verbose info is JSON");
    (response.status.expect("status"), info)
}

async fn list(cri: &mut CriClient, filter: PodSandboxFilter) -> Vec<String> {
    cri.runtime
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect()
}

fn ns_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

fn process_exists(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; look at its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_pod_runs_lists_stops_and_is_removed_without_a_trace() {
    if !require_root() {
        return;
    }
    let pods = Pods::new("bcri-p1", "10.231.61.0/24");
    let port = "18961";
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let mut config = pod_config("web");
        config.port_mappings = vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: 80,
            host_port: port.parse().expect("port"),
            host_ip: "127.0.0.1".into(),
        }];
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(config.clone()))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        assert_eq!(id.len(), 64);

        let (st, info) = status(&mut cri, &id).await;
        assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(st.metadata, config.metadata);
        assert_eq!(st.labels["app"], "web");
        assert_eq!(st.annotations["note"], "hello");
        assert_eq!(st.runtime_handler, "runc");
        assert!(st.created_at > 0);
        let ip = st.network.expect("network").ip;
        assert!(ip.starts_with("10.231.61."), "pod IP {ip:?}");
        assert_eq!(pods.leases(), vec![ip.clone()]);
        let pid = info["pid"].as_u64().expect("pid") as u32;
        assert!(process_exists(pid), "pause pid {pid}");
        assert_eq!(info["processStatus"], "running", "{info}");
        assert_eq!(info["runtimeType"], "io.containerd.runc.v2");
        let netns = PathBuf::from(info["netnsPath"].as_str().expect("netnsPath"));
        assert_eq!(
            ns_inode(&PathBuf::from(format!("/proc/{pid}/ns/net"))),
            ns_inode(&netns),
            "the pause process lives in the pod's netns"
        );
        // `runc start` returns once it has released the init process,
        // which then executes /pause: give it a moment.
        let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while comm().trim() != "pause" {
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} is {}",
                comm()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The pause spec's annotations and hostname, as containerd sets them.
        let spec = &info["runtimeSpec"];
        assert_eq!(spec["hostname"], "web-host");
        assert_eq!(
            spec["annotations"]["io.kubernetes.cri.container-type"],
            "sandbox"
        );
        assert_eq!(
            spec["annotations"]["io.kubernetes.cri.sandbox-id"],
            id.as_str()
        );
        assert_eq!(
            spec["process"]["oomScoreAdj"].as_i64().map(|s| s >= -998),
            Some(true)
        );
        assert!(!rules(port).is_empty(), "portmap rule for {port}");
        let root = pods.sandbox_root(&id);
        assert_eq!(
            std::fs::read_to_string(root.join("hostname")).expect("hostname"),
            "web-host\n"
        );
        let (records, tasks) = pods.records_and_tasks();
        assert!(
            records.contains(&id) && tasks.contains(&id),
            "{records:?} {tasks:?}"
        );
        // The pod runs berth's built-in pause image, pinned.
        assert_eq!(info["image"], "localhost/berth/pause:builtin");
        assert_eq!(
            pods.image_label("io.cri-containerd.pinned"),
            Some("pinned".into())
        );

        // List, with each kind of filter.
        let all = PodSandboxFilter::default();
        assert_eq!(list(&mut cri, all.clone()).await, vec![id.clone()]);
        let by_prefix = PodSandboxFilter {
            id: id[..8].into(),
            ..all.clone()
        };
        assert_eq!(list(&mut cri, by_prefix).await, vec![id.clone()]);
        let unknown = PodSandboxFilter {
            id: "ffffffffffff".into(),
            ..all.clone()
        };
        assert!(list(&mut cri, unknown).await.is_empty());
        let state = |state: PodSandboxState| PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: state as i32,
            }),
            ..PodSandboxFilter::default()
        };
        assert_eq!(
            list(&mut cri, state(PodSandboxState::SandboxReady)).await,
            vec![id.clone()]
        );
        assert!(list(&mut cri, state(PodSandboxState::SandboxNotready))
            .await
            .is_empty());
        let labels = |v: &str| PodSandboxFilter {
            label_selector: HashMap::from([("app".to_string(), v.to_string())]),
            ..PodSandboxFilter::default()
        };
        assert_eq!(list(&mut cri, labels("web")).await, vec![id.clone()]);
        assert!(list(&mut cri, labels("db")).await.is_empty());

        // The name is taken while the pod exists.
        let err = cri
            .runtime
            .run_pod_sandbox(run_request(config.clone()))
            .await
            .expect_err("same metadata again");
        assert!(err.message().contains("is reserved"), "{err:?}");

        // Stop: the network and the pause process go; the pod stays.
        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("StopPodSandbox");
        let (st, info) = status(&mut cri, &id).await;
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
        assert!(!process_exists(pid), "pause still running");
        assert_eq!(info["processStatus"], "deleted");
        assert!(!netns.exists(), "netns {} left", netns.display());
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new(), "IP not released");
        assert_eq!(pods.veths(), "", "veths left");
        assert_eq!(rules(port), "", "portmap rules left");
        assert_eq!(
            list(&mut cri, state(PodSandboxState::SandboxNotready)).await,
            vec![id.clone()]
        );
        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("a second StopPodSandbox is fine");

        // Remove: nothing is left, and removing again is fine.
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
        let err = cri
            .runtime
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
            .expect_err("status of a removed pod");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        assert!(list(&mut cri, all).await.is_empty());
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        assert!(!root.exists(), "{} left", root.display());
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("removing a missing pod is fine");

        // The name is free again.
        let again = cri
            .runtime
            .run_pod_sandbox(run_request(config))
            .await
            .expect("RunPodSandbox after remove")
            .into_inner()
            .pod_sandbox_id;
        assert_ne!(again, id);
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: again,
            })
            .await
            .expect("remove a running pod");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new());
    })
    .expect("runtime");
}

#[test]
fn a_failing_cni_plugin_fails_the_pod_with_its_message_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let pods = Pods::new("bcri-p2", "10.231.62.0/24");
    // bridge rejects this config itself (mtu is not a number).
    pods.write_conflist(
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[
            {"type":"bridge","bridge":"bcri-p2","mtu":"oops",
             "ipam":{"type":"host-local","subnet":"10.231.62.0/24"}}]}"#,
    );
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        for _ in 0..2 {
            let err = cri
                .runtime
                .run_pod_sandbox(run_request(pod_config("broken")))
                .await
                .expect_err("RunPodSandbox with a failing plugin");
            let message = err.message();
            assert!(
                message.contains("failed to setup network for sandbox"),
                "{message}"
            );
            assert!(
                message.contains("cannot unmarshal string into Go struct field NetConf.mtu"),
                "the plugin's own message: {message}"
            );
            // The name was released: the second round fails the same way.
            assert!(!message.contains("is reserved"), "{message}");
            assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
            assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
            assert!(list(&mut cri, PodSandboxFilter::default()).await.is_empty());
            let sandboxes = pods
                .daemon
                .root()
                .join("io.containerd.grpc.v1.cri/sandboxes");
            let left: Vec<_> = std::fs::read_dir(&sandboxes)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "sandbox directories left: {left:?}");
        }
    })
    .expect("runtime");
}

#[test]
fn a_host_network_pod_shares_the_hosts_netns_and_gets_its_dns_config() {
    if !require_root() {
        return;
    }
    let pods = Pods::new("bcri-p3", "10.231.63.0/24");
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let mut config = pod_config("hostnet");
        config.dns_config = Some(DnsConfig {
            servers: vec!["192.0.2.53".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        });
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(config))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let (st, info) = status(&mut cri, &id).await;
        assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(st.network.expect("network").ip, "");
        let options = st
            .linux
            .and_then(|l| l.namespaces)
            .and_then(|n| n.options)
            .expect("namespace options");
        assert_eq!(options.network, NamespaceMode::Node as i32);
        let pid = info["pid"].as_u64().expect("pid") as u32;
        assert_eq!(
            ns_inode(Path::new(&format!("/proc/{pid}/ns/net"))),
            ns_inode(Path::new("/proc/self/ns/net")),
            "a host-network pod runs in the host's netns"
        );
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new());
        let want = "search default.svc.cluster.local\nnameserver 192.0.2.53\noptions ndots:5\n";
        let resolv = pods.sandbox_root(&id).join("resolv.conf");
        assert_eq!(std::fs::read_to_string(&resolv).expect("resolv.conf"), want);
        // The pause container sees it as its /etc/resolv.conf.
        let inside = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))
            .expect("resolv.conf inside the pause container");
        assert_eq!(inside, want);

        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("StopPodSandbox");
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
    })
    .expect("runtime");
}

#[test]
fn a_pause_task_that_dies_makes_its_pod_not_ready() {
    if !require_root() {
        return;
    }
    let pods = Pods::new("bcri-p4", "10.231.64.0/24");
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(pod_config("dies")))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let (_, info) = status(&mut cri, &id).await;
        let pid = info["pid"].as_i64().expect("pid") as i32;
        // SIGTERM: the pause program exits 0 on its own.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("kill pause");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (st, _) = status(&mut cri, &id).await;
            if st.state == PodSandboxState::SandboxNotready as i32 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "pod still ready");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Its task is deleted, as containerd's exit handler deletes it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pods.records_and_tasks().1.contains(&id) {
            assert!(
                std::time::Instant::now() < deadline,
                "exited task not deleted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new());
    })
    .expect("runtime");
}

#[test]
fn pods_survive_a_daemon_restart_with_their_state_ip_and_name() {
    if !require_root() {
        return;
    }
    let mut pods = Pods::new("bcri-p5", "10.231.65.0/24");
    let (running, stopped, ip) = block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let mut ids = Vec::new();
        for name in ["keeps", "stopped"] {
            let id = cri
                .runtime
                .run_pod_sandbox(run_request(pod_config(name)))
                .await
                .expect("RunPodSandbox")
                .into_inner()
                .pod_sandbox_id;
            ids.push(id);
        }
        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: ids[1].clone(),
            })
            .await
            .expect("StopPodSandbox");
        let (st, _) = status(&mut cri, &ids[0]).await;
        (
            ids[0].clone(),
            ids[1].clone(),
            st.network.expect("network").ip,
        )
    })
    .expect("runtime");

    pods.daemon.restart().expect("restart berthd");

    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        // berthd runs the plugin's recovery once it serves: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while list(&mut cri, PodSandboxFilter::default()).await.len() < 2 {
            assert!(std::time::Instant::now() < deadline, "pods not recovered");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (st, info) = status(&mut cri, &running).await;
        assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(st.network.expect("network").ip, ip);
        assert_eq!(st.metadata, pod_config("keeps").metadata);
        assert!(info["pid"].as_u64().is_some_and(|p| p > 0), "{info}");
        let (st, _) = status(&mut cri, &stopped).await;
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
        let mut all = list(&mut cri, PodSandboxFilter::default()).await;
        all.sort();
        let mut want = vec![running.clone(), stopped.clone()];
        want.sort();
        assert_eq!(all, want);
        let err = cri
            .runtime
            .run_pod_sandbox(run_request(pod_config("keeps")))
            .await
            .expect_err("the name is still reserved");
        assert!(err.message().contains("is reserved"), "{err:?}");
        for id in [&running, &stopped] {
            cri.runtime
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                .expect("RemovePodSandbox");
        }
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new());
        assert_eq!(pods.veths(), "");
    })
    .expect("runtime");
}

/// Two more runtime handlers: `other` (runc, with a CNI conf dir of its
/// own) and `broken` (a shim that does not exist).
fn with_handlers(dir: &Path, config: String) -> String {
    let section = r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#;
    format!(
        "{config}\n{section}.other]\n  runtime_type = \"io.containerd.runc.v2\"\n  \
         cni_conf_dir = {other:?}\n{section}.broken]\n  \
         runtime_type = \"io.containerd.nope.v1\"\n",
        other = dir.join("cni-other").display().to_string(),
    )
}

#[test]
fn a_failure_after_the_network_rolls_everything_back_and_handlers_have_their_own_cni() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::builder()
        .edit_config(with_handlers)
        .start()
        .expect("start daemon");
    let pods = Pods::with_daemon(daemon, "bcri-p6", "10.231.66.0/24");
    // The `other` handler's network: its own bridge and subnet.
    let other_dir = pods.daemon.dir().join("cni-other");
    std::fs::create_dir_all(&other_dir).expect("other conf dir");
    std::fs::write(
        other_dir.join("10-other.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"bcri-p6o","plugins":[
                {{"type":"bridge","bridge":"bcri-p6o","ipam":{{"type":"host-local",
                  "ranges":[[{{"subnet":"10.231.67.0/24"}}]],"dataDir":"{}"}}}}]}}"#,
            pods.ipam().display()
        ),
    )
    .expect("other conflist");
    let other_bridge = Bridge("bcri-p6o");
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let err = cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("noshim")),
                runtime_handler: "broken".into(),
            })
            .await
            .expect_err("RunPodSandbox with a missing shim");
        assert!(
            err.message().contains("failed to create containerd task"),
            "{err:?}"
        );
        assert!(err.message().contains("nope"), "{err:?}");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.leases(), Vec::<String>::new(), "IP not released");
        assert_eq!(pods.veths(), "", "veths left");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        let snapshots = pods.snapshots();
        assert_eq!(
            snapshots.len(),
            1,
            "only the pause image's layer: {snapshots:?}"
        );
        let sandboxes = pods
            .daemon
            .root()
            .join("io.containerd.grpc.v1.cri/sandboxes");
        assert_eq!(
            std::fs::read_dir(&sandboxes)
                .map(|d| d.count())
                .unwrap_or(0),
            0
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let shm_dir = pods
            .daemon
            .state()
            .join("io.containerd.grpc.v1.cri/sandboxes");
        assert!(
            !mounts.contains(&shm_dir.display().to_string()),
            "shm left mounted"
        );
        assert!(list(&mut cri, PodSandboxFilter::default()).await.is_empty());

        let id = cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("noshim")),
                runtime_handler: "other".into(),
            })
            .await
            .expect("the name was released; the other handler runs")
            .into_inner()
            .pod_sandbox_id;
        let (st, _) = status(&mut cri, &id).await;
        assert_eq!(st.runtime_handler, "other");
        let ip = st.network.expect("network").ip;
        assert!(
            ip.starts_with("10.231.67."),
            "the other handler's network: {ip}"
        );
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        let err = cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("unknown")),
                runtime_handler: "nosuch".into(),
            })
            .await
            .expect_err("an unknown handler");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    })
    .expect("runtime");
    drop(other_bridge);
}

/// `max_conf_num = 2` in the CRI's `[cni]` section.
fn with_two_networks(_dir: &Path, config: String) -> String {
    let section = "[plugins.\"io.containerd.grpc.v1.cri\".cni]\n";
    assert!(config.contains(section), "{config}");
    config.replace(section, &format!("{section}      max_conf_num = 2\n"))
}

#[test]
fn max_conf_num_attaches_that_many_networks_as_eth0_eth1_and_stop_frees_them_all() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::builder()
        .edit_config(with_two_networks)
        .start()
        .expect("start daemon");
    let pods = Pods::with_daemon(daemon, "bcri-pa", "10.231.70.0/24");
    let conf_dir = pods.daemon.dir().join("cni");
    // Two more networks; with max_conf_num = 2 only the first of them
    // (by file name) is attached.
    for (file, bridge, subnet) in [
        ("20-second.conflist", "bcri-pb", "10.231.71.0/24"),
        ("30-third.conflist", "bcri-pc", "10.231.72.0/24"),
    ] {
        std::fs::write(
            conf_dir.join(file),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"{bridge}","plugins":[
                    {{"type":"bridge","bridge":"{bridge}","ipam":{{"type":"host-local",
                      "ranges":[[{{"subnet":"{subnet}"}}]],"dataDir":"{}"}}}}]}}"#,
                pods.ipam().display()
            ),
        )
        .expect("conflist");
    }
    let bridges = (Bridge("bcri-pb"), Bridge("bcri-pc"));
    let second_leases = || {
        std::fs::read_dir(pods.ipam().join("bcri-pb"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .count()
    };
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let id = cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("twonets")),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let (st, info) = status(&mut cri, &id).await;
        let ip = st.network.expect("network").ip;
        assert!(ip.starts_with("10.231.70."), "the pod's IP is eth0's: {ip}");
        let interfaces = &info["cniResult"]["Interfaces"];
        let first_ip = |name: &str| interfaces[name]["IPConfigs"][0]["IP"].clone();
        assert_eq!(first_ip("eth0"), serde_json::json!(ip), "{info}");
        let eth1 = first_ip("eth1");
        assert!(
            eth1.as_str().is_some_and(|a| a.starts_with("10.231.71.")),
            "{info}"
        );
        let netns = info["netnsPath"].as_str().expect("netns path").to_string();
        let show = |dev: &str| {
            Command::new("nsenter")
                .arg(format!("--net={netns}"))
                .args(["ip", "-o", "addr", "show", dev])
                .output()
                .expect("nsenter")
        };
        let eth1_addr = show("eth1");
        assert!(
            String::from_utf8_lossy(&eth1_addr.stdout).contains("10.231.71."),
            "{eth1_addr:?}"
        );
        assert!(!show("eth2").status.success(), "a third network attached");
        assert_eq!((pods.leases().len(), second_leases()), (1, 1));

        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("StopPodSandbox");
        assert_eq!((pods.leases().len(), second_leases()), (0, 0));
        assert_eq!(pods.veths(), "");
        assert_eq!(sh("ip -o link show master bcri-pb 2>/dev/null"), "");
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
    })
    .expect("runtime");
    drop(bridges);
}

/// Deletes a bridge when dropped.
struct Bridge(&'static str);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// The CRI plugins' bin dir moved to `<dir>/cnibin` (Debian's plugins
/// linked in, plus the test's own).
fn with_own_bin_dir(dir: &Path, config: String) -> String {
    config.replace(
        r#"bin_dir = "/usr/lib/cni""#,
        &format!("bin_dir = {:?}", dir.join("cnibin").display().to_string()),
    )
}

/// Fills `<dir>/cnibin` ([`with_own_bin_dir`]) with Debian's plugins and
/// the test's plugin `name`, a shell script.
fn own_cni_plugin(daemon: &Daemon, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = daemon.dir().join("cnibin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    for plugin in ["bridge", "host-local", "loopback", "portmap"] {
        std::os::unix::fs::symlink(Path::new("/usr/lib/cni").join(plugin), bin.join(plugin))
            .expect("link plugin");
    }
    std::fs::write(bin.join(name), script).expect("write plugin");
    std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
}

#[test]
fn a_failed_cni_del_fails_the_stop_and_the_next_stop_retries_it() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::builder()
        .edit_config(with_own_bin_dir)
        .start()
        .expect("start daemon");
    let marker = daemon.dir().join("refuse-del");
    let flaky = format!(
        r#"#!/bin/sh
case "$CNI_COMMAND" in
VERSION) cat >/dev/null; echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}}' ;;
ADD) /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))' ;;
DEL) cat >/dev/null
     if [ -e {marker:?} ]; then
         echo '{{"cniVersion":"1.0.0","code":11,"msg":"DEL refused while the marker exists"}}'; exit 1
     fi ;;
*) cat >/dev/null ;;
esac
"#
    );
    own_cni_plugin(&daemon, "flaky", &flaky);
    let pods = Pods::with_daemon(daemon, "bcri-p7", "10.231.68.0/24");
    pods.write_conflist(&format!(
        r#"{{"cniVersion":"1.0.0","name":"bcri-p7","plugins":[
            {{"type":"bridge","bridge":"bcri-p7","ipam":{{"type":"host-local",
              "ranges":[[{{"subnet":"10.231.68.0/24"}}]],"dataDir":"{}"}}}},
            {{"type":"flaky"}}]}}"#,
        pods.ipam().display()
    ));
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(pod_config("flaky")))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        assert_eq!(pods.leases().len(), 1);
        std::fs::write(&marker, "").expect("marker");
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        };
        let err = cri
            .runtime
            .stop_pod_sandbox(stop.clone())
            .await
            .expect_err("a stop whose CNI DEL fails");
        assert!(
            err.message()
                .contains("failed to destroy network for sandbox"),
            "{err:?}"
        );
        assert!(err.message().contains("DEL refused"), "{err:?}");
        let (st, _) = status(&mut cri, &id).await;
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);

        std::fs::remove_file(&marker).expect("remove marker");
        cri.runtime
            .stop_pod_sandbox(stop)
            .await
            .expect("the next stop runs DEL again");
        assert_eq!(
            pods.leases(),
            Vec::<String>::new(),
            "IP released by the retried DEL"
        );
        assert_eq!(pods.veths(), "");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
    })
    .expect("runtime");
}

#[test]
fn the_security_context_sysctls_namespaces_cgroup_and_shm_shape_the_pause_process() {
    if !require_root() {
        return;
    }
    let pods = Pods::new("bcri-p8", "10.231.69.0/24");
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let mut config = pod_config("secure");
        config.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: "/berth-cri-test".into(),
            sysctls: HashMap::from([(
                "net.ipv4.ip_unprivileged_port_start".to_string(),
                "0".to_string(),
            )]),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                run_as_user: Some(Int64Value { value: 1234 }),
                run_as_group: Some(Int64Value { value: 5678 }),
                supplemental_groups: vec![42],
                seccomp: Some(SecurityProfile {
                    profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(config))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let (_, info) = status(&mut cri, &id).await;
        let pid = info["pid"].as_u64().expect("pid");
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            proc_status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(field("Uid:")[0], "1234", "{proc_status}");
        assert_eq!(field("Gid:")[0], "5678", "{proc_status}");
        assert!(field("Groups:").contains(&"42"), "{proc_status}");
        assert_eq!(
            field("Seccomp:"),
            vec!["2"],
            "runtime/default filters syscalls"
        );
        // PID namespace of the host; network namespace of its own.
        assert_eq!(
            ns_inode(Path::new(&format!("/proc/{pid}/ns/pid"))),
            ns_inode(Path::new("/proc/self/ns/pid"))
        );
        assert_ne!(
            ns_inode(Path::new(&format!("/proc/{pid}/ns/net"))),
            ns_inode(Path::new("/proc/self/ns/net"))
        );
        // The sysctl is set in the pod's network namespace.
        let netns = info["netnsPath"].as_str().expect("netnsPath");
        let out = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])
            .output()
            .expect("nsenter");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
        // Its cgroup is under the pod's parent.
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        assert!(
            cgroups.contains(&format!("/berth-cri-test/{id}")),
            "{cgroups}"
        );
        // Its /dev/shm is the pod's tmpfs.
        let shm = pods
            .daemon
            .state()
            .join("io.containerd.grpc.v1.cri/sandboxes")
            .join(&id)
            .join("shm");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let line = mountinfo
            .lines()
            .find(|l| l.contains(&shm.display().to_string()))
            .expect("the pod's shm is mounted");
        assert!(line.contains(" - tmpfs shm "), "{line}");
        let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
        assert!(
            inside
                .lines()
                .any(|l| l.split_whitespace().nth(4) == Some("/dev/shm")
                    && l.contains(" - tmpfs shm ")),
            "{inside}"
        );
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mountinfo.contains(&shm.display().to_string()),
            "shm left mounted"
        );
    })
    .expect("runtime");
    // runc made the parent cgroups; they are the test's to remove.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join("berth-cri-test"));
    }
}

/// The handler `fragile`: berth's shim behind a wrapper that refuses the
/// shim's `delete` command (the cleanup of a shim that died).
fn with_fragile_shim(dir: &Path, config: String) -> String {
    let section = r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#;
    format!(
        "{config}\n{section}.fragile]\n  runtime_type = {wrapper:?}\n",
        wrapper = dir.join("fragile-shim").display().to_string(),
    )
}

/// The pids of processes whose command line has `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn a_pod_whose_shim_dies_and_whose_shim_delete_fails_is_still_stopped_and_removed() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::builder()
        .edit_config(with_fragile_shim)
        .start()
        .expect("start daemon");
    let shim = berth_testkit::berthd_bin()
        .expect("berthd")
        .with_file_name("containerd-shim-berth-v2");
    let wrapper = daemon.dir().join("fragile-shim");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do last=$a; done\n\
                 if [ \"$last\" = delete ]; then echo 'shim delete refused by the test' >&2; exit 1; fi\n\
                 exec {shim:?} \"$@\"\n"
            ),
        )
        .expect("write wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let pods = Pods::with_daemon(daemon, "bcri-p8", "10.231.69.0/24");
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let id = cri
            .runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("fragile")),
                runtime_handler: "fragile".into(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        assert_eq!(pods.leases().len(), 1);
        // The shim dies with everything it started.
        let shims: Vec<u32> = pids_with(&format!("-id {id}"))
            .into_iter()
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == shim))
            .collect();
        assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
        let pause = {
            let (st, info) = status(&mut cri, &id).await;
            assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
            info["pid"].as_u64().expect("pause pid") as u32
        };
        for pid in [pause, shims[0]] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (st, _) = status(&mut cri, &id).await;
            if st.state == PodSandboxState::SandboxNotready as i32 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the pod stays ready");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("StopPodSandbox of a pod whose shim died");
        assert_eq!(pods.leases(), Vec::<String>::new(), "IP released");
        assert_eq!(pods.veths(), "");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
        assert!(!pods.sandbox_root(&id).exists());
    })
    .expect("runtime");
}

#[test]
fn a_slow_cni_teardown_still_stops_the_pod_and_frees_its_ip() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::builder()
        .edit_config(with_own_bin_dir)
        .start()
        .expect("start daemon");
    let finished = daemon.dir().join("slow-del-finished");
    let slow = format!(
        r#"#!/bin/sh
case "$CNI_COMMAND" in
VERSION) cat >/dev/null; echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}}' ;;
ADD) /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))' ;;
DEL) cat >/dev/null; sleep 3; touch {finished:?} ;;
*) cat >/dev/null ;;
esac
"#
    );
    own_cni_plugin(&daemon, "slow", &slow);
    let pods = Pods::with_daemon(daemon, "bcri-p9", "10.231.70.0/24");
    pods.write_conflist(&format!(
        r#"{{"cniVersion":"1.0.0","name":"bcri-p9","plugins":[
            {{"type":"bridge","bridge":"bcri-p9","ipam":{{"type":"host-local",
              "ranges":[[{{"subnet":"10.231.70.0/24"}}]],"dataDir":"{}"}}}},
            {{"type":"slow"}}]}}"#,
        pods.ipam().display()
    ));
    block_on(async {
        let mut cri = pods.daemon.cri().await.expect("cri client");
        let id = cri
            .runtime
            .run_pod_sandbox(run_request(pod_config("slow")))
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        assert_eq!(pods.leases().len(), 1);
        cri.runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .expect("StopPodSandbox with a slow DEL");
        assert!(finished.exists(), "the stop waited for the slow DEL");
        assert_eq!(pods.leases(), Vec::<String>::new(), "IP released");
        assert_eq!(pods.netns_left(), Vec::<PathBuf>::new());
        cri.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .expect("RemovePodSandbox");
        assert_eq!(pods.records_and_tasks(), (vec![], vec![]));
    })
    .expect("runtime");
}
