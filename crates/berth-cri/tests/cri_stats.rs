//! Stats through CRI, end to end on a private berthd with a bridge
//! network: a container holding ~115 MB shows it in its working set; a
//! busy loop's CPU usage grows and its rate is above zero on the second
//! call; a written file shows in the writable layer; ListContainerStats
//! filters by pod, id prefix and labels; PodSandboxStats shows the pod's
//! cgroup and the bytes its eth0 received.

mod support;

use berth_testkit::{require_ctr, require_root, Daemon};
use k8s_cri::v1::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const BRIDGE: &str = "bcri-st1";
const SUBNET: &str = "10.231.81.0/24";

/// Removes the test's bridge and cgroup parent, whatever happened: a
/// failed test leaves its pods' processes, all under the parent, which
/// are killed first.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", BRIDGE])
            .stderr(Stdio::null())
            .status();
        let parent = self.0.trim_start_matches('/');
        let dirs: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path().join(parent))
            .chain([Path::new("/sys/fs/cgroup").join(parent)])
            .filter(|d| d.is_dir())
            .collect();
        for dir in &dirs {
            for procs in cgroup_dirs(dir).iter().map(|d| d.join("cgroup.procs")) {
                for pid in std::fs::read_to_string(procs).unwrap_or_default().lines() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        for dir in &dirs {
            for d in cgroup_dirs(dir).iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// `dir` and the cgroups under it, parents first.
fn cgroup_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let children: Vec<_> = std::fs::read_dir(&out[i])
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        out.extend(children);
        i += 1;
    }
    out
}

/// A daemon with busybox in `k8s.io` and a bridge network.
fn daemon() -> Daemon {
    daemon_with_network(|dir| {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{BRIDGE}","plugins":[
            {{"type":"bridge","bridge":"{BRIDGE}","isGateway":true,"ipMasq":false,
              "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{SUBNET}"}}]],
                       "dataDir":"{ipam}"}}}}]}}"#,
            ipam = dir.join("ipam").display()
        )
    })
}

fn pod_config(name: &str, logs: &Path, cgroup_parent: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        labels: [("pod".to_string(), name.to_string())].into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            ..LinuxPodSandboxConfig::default()
        }),
        ..support::pod_config(logs, name)
    }
}

async fn stats(cri: &mut Runtime, id: &str) -> ContainerStats {
    cri.container_stats(ContainerStatsRequest {
        container_id: id.into(),
    })
    .await
    .expect("ContainerStats")
    .into_inner()
    .stats
    .expect("stats")
}

async fn list(cri: &mut Runtime, filter: ContainerStatsFilter) -> Vec<String> {
    let mut ids: Vec<String> = cri
        .list_container_stats(ListContainerStatsRequest {
            filter: Some(filter),
        })
        .await
        .expect("ListContainerStats")
        .into_inner()
        .stats
        .into_iter()
        .map(|s| s.attributes.expect("attributes").id)
        .collect();
    ids.sort();
    ids
}

async fn pod_stats(cri: &mut Runtime, pod: &str) -> LinuxPodSandboxStats {
    cri.pod_sandbox_stats(PodSandboxStatsRequest {
        pod_sandbox_id: pod.into(),
    })
    .await
    .expect("PodSandboxStats")
    .into_inner()
    .stats
    .expect("stats")
    .linux
    .expect("linux stats")
}

fn value(v: &Option<UInt64Value>) -> u64 {
    v.as_ref().map(|v| v.value).unwrap_or(0)
}

fn eth0_rx(stats: &LinuxPodSandboxStats) -> u64 {
    let network = stats.network.as_ref().expect("network stats");
    value(&network.default_interface.as_ref().expect("eth0").rx_bytes)
}

#[test]
fn memory_cpu_writable_layer_filters_and_pod_network() {
    require_root!();
    require_ctr!();
    let parent = format!("/berth-stats-test-{}", std::process::id());
    let _cleanup = Cleanup(parent.clone());
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let config = pod_config("stats", logs.path(), &parent);
        let pod = run_pod(&mut cri, &config).await;
        let other_config = pod_config("other", logs.path(), &parent);
        let other = run_pod(&mut cri, &other_config).await;

        // ~115 MB held in a shell variable; 1 MB written to the rootfs.
        let hog = run_container(
            &mut cri,
            &pod,
            &config,
            container_config(
                "hog",
                "head -c 1000000 /dev/zero > /written; \
                 x=$(head -c 120000000 /dev/zero | tr '\\0' a); sleep 1000; echo ${#x}",
            ),
        )
        .await;
        let busy = run_container(
            &mut cri,
            &pod,
            &config,
            container_config("busy", "while :; do :; done"),
        )
        .await;
        let elsewhere = run_container(
            &mut cri,
            &other,
            &other_config,
            container_config("elsewhere", "sleep 1000"),
        )
        .await;

        // The working set reaches 100 MiB within seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        let memory = loop {
            let memory = stats(&mut cri, &hog).await.memory.expect("memory stats");
            if value(&memory.working_set_bytes) >= 100 << 20 || Instant::now() > deadline {
                break memory;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let working_set = value(&memory.working_set_bytes);
        assert!(
            working_set >= 100 << 20,
            "working set {working_set}: {memory:?}"
        );
        assert!(value(&memory.usage_bytes) >= working_set, "{memory:?}");
        // RSS counts anonymous memory only and may lag the working set
        // a little while the shell still builds its variable.
        assert!(value(&memory.rss_bytes) >= 80 << 20, "{memory:?}");
        assert!(value(&memory.page_faults) > 0, "{memory:?}");
        assert!(memory.major_page_faults.is_some(), "{memory:?}");
        assert!(memory.timestamp > 0);

        // The writable layer holds the written file.
        let layer = stats(&mut cri, &hog)
            .await
            .writable_layer
            .expect("writable layer");
        assert!(value(&layer.used_bytes) >= 1_000_000, "{layer:?}");
        assert!(value(&layer.inodes_used) >= 1, "{layer:?}");
        assert!(!layer.fs_id.expect("fs id").mountpoint.is_empty());

        // CPU: usage grows, and the second call has a rate.
        let first = stats(&mut cri, &busy).await.cpu.expect("cpu stats");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = stats(&mut cri, &busy).await.cpu.expect("cpu stats");
        let (a, b) = (
            value(&first.usage_core_nano_seconds),
            value(&second.usage_core_nano_seconds),
        );
        assert!(b > a + 200_000_000, "usage {a} then {b}");
        let rate = value(&second.usage_nano_cores);
        assert!(rate > 200_000_000, "rate {rate}: {second:?}");
        assert!(second.timestamp > first.timestamp);

        // Filters: by pod (a prefix of its id), by id prefix, by labels.
        let mut ours = vec![hog.clone(), busy.clone()];
        ours.sort();
        let by_pod = ContainerStatsFilter {
            pod_sandbox_id: pod[..12].to_string(),
            ..ContainerStatsFilter::default()
        };
        assert_eq!(list(&mut cri, by_pod).await, ours);
        let by_other = ContainerStatsFilter {
            pod_sandbox_id: other.clone(),
            ..ContainerStatsFilter::default()
        };
        assert_eq!(
            list(&mut cri, by_other).await,
            std::slice::from_ref(&elsewhere)
        );
        let by_id = ContainerStatsFilter {
            id: busy[..10].to_string(),
            ..ContainerStatsFilter::default()
        };
        assert_eq!(list(&mut cri, by_id).await, std::slice::from_ref(&busy));
        let by_label = ContainerStatsFilter {
            label_selector: [("app".to_string(), "hog".to_string())].into(),
            ..ContainerStatsFilter::default()
        };
        assert_eq!(list(&mut cri, by_label).await, std::slice::from_ref(&hog));
        let nobody = ContainerStatsFilter {
            pod_sandbox_id: "nonexistent".into(),
            ..ContainerStatsFilter::default()
        };
        assert!(list(&mut cri, nobody).await.is_empty());
        assert_eq!(
            list(&mut cri, ContainerStatsFilter::default()).await.len(),
            3
        );

        // The pod: its cgroup holds its containers' memory and CPU, and
        // its eth0 counts what the host sends it.
        let status = cri
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: false,
            })
            .await
            .expect("PodSandboxStatus")
            .into_inner()
            .status
            .expect("status");
        let ip = status.network.expect("network").ip;
        let before = pod_stats(&mut cri, &pod).await;
        let rx_before = eth0_rx(&before);
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        for _ in 0..20 {
            socket
                .send_to(&[7u8; 1000], (ip.as_str(), 9))
                .expect("send");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = pod_stats(&mut cri, &pod).await;
        let rx_after = eth0_rx(&after);
        assert!(
            rx_after >= rx_before + 20_000,
            "eth0 rx {rx_before} then {rx_after}"
        );
        let pod_memory = after.memory.expect("pod memory");
        assert!(
            value(&pod_memory.working_set_bytes) >= 100 << 20,
            "{pod_memory:?}"
        );
        let pod_cpu = after.cpu.expect("pod cpu");
        assert!(value(&pod_cpu.usage_core_nano_seconds) >= b, "{pod_cpu:?}");
        let mut in_pod: Vec<_> = after
            .containers
            .iter()
            .map(|c| c.attributes.as_ref().expect("attributes").id.clone())
            .collect();
        in_pod.sort();
        assert_eq!(in_pod, ours);

        let listed = cri
            .list_pod_sandbox_stats(ListPodSandboxStatsRequest {
                filter: Some(PodSandboxStatsFilter {
                    label_selector: [("pod".to_string(), "other".to_string())].into(),
                    ..PodSandboxStatsFilter::default()
                }),
            })
            .await
            .expect("ListPodSandboxStats")
            .into_inner()
            .stats;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].attributes.as_ref().expect("attributes").id, other);

        remove_pod(&mut cri, pod).await;
        remove_pod(&mut cri, other).await;
    })
    .expect("runtime");
}
