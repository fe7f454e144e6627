//! What the CRI container suites share: a private berthd with busybox in
//! `k8s.io` and a CNI network, and the kubelet's calls for a pod and its
//! containers through `k8s-cri`'s client.

// Each suite includes this module and uses only part of it.
#![allow(dead_code)]

use berth_testkit::{busybox_oci_archive, ArchiveNames, Daemon, DaemonBuilder};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The image the suites run.
pub const IMAGE: &str = "docker.io/library/busybox:latest";

/// The RuntimeService client.
pub type Runtime = RuntimeServiceClient<Channel>;

/// A loopback-only network.
pub const LOOPBACK_CONFLIST: &str =
    r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#;

/// A daemon whose CRI conf dir holds `conflist(daemon's dir)`, with
/// busybox in `k8s.io`.
pub fn daemon_with_network(conflist: impl FnOnce(&Path) -> String) -> Daemon {
    prepare(Daemon::start().expect("start daemon"), conflist)
}

/// A daemon like [`daemon`] started from `builder`.
pub fn daemon_from(builder: DaemonBuilder) -> Daemon {
    let daemon = builder.start().expect("start daemon");
    prepare(daemon, |_| LOOPBACK_CONFLIST.to_string())
}

fn prepare(daemon: Daemon, conflist: impl FnOnce(&Path) -> String) -> Daemon {
    let conf_dir = daemon.dir().join("cni");
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    std::fs::write(conf_dir.join("10-test.conflist"), conflist(daemon.dir())).expect("conflist");
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: Some(IMAGE.into()),
    })
    .expect("archive");
    let path = daemon.dir().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    let path = path.to_string_lossy().into_owned();
    daemon
        .ctr_ns("k8s.io", &["images", "import", &path])
        .assert_success();
    daemon
}

/// A daemon with busybox in `k8s.io` and a loopback-only CNI network.
pub fn daemon() -> Daemon {
    daemon_with_network(|_| LOOPBACK_CONFLIST.to_string())
}

/// A pod named `name` (uid `uid-<name>`) logging under `logs`.
pub fn pod_config(logs: &Path, name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..PodSandboxConfig::default()
    }
}

/// A busybox container labelled `app=<name>` running `sh -c script`,
/// logging to `<name>/0.log`.
pub fn container_config(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..ImageSpec::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}/0.log"),
        labels: [("app".to_string(), name.to_string())].into(),
        ..ContainerConfig::default()
    }
}

/// RunPodSandbox; the pod's id.
pub async fn run_pod(cri: &mut Runtime, config: &PodSandboxConfig) -> String {
    cri.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    })
    .await
    .expect("RunPodSandbox")
    .into_inner()
    .pod_sandbox_id
}

/// StopPodSandbox, then RemovePodSandbox.
pub async fn remove_pod(cri: &mut Runtime, pod: String) {
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .expect("RemovePodSandbox");
}

/// CreateContainer and StartContainer; the container's id.
pub async fn run_container(
    cri: &mut Runtime,
    pod: &str,
    pod_config: &PodSandboxConfig,
    config: ContainerConfig,
) -> String {
    let id = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    id
}

/// ContainerStatus.
pub async fn status(cri: &mut Runtime, id: &str) -> k8s_cri::v1::ContainerStatus {
    cri.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("status")
}

/// ContainerStatus once the container has exited (20 s at most).
pub async fn wait_exited(cri: &mut Runtime, id: &str) -> k8s_cri::v1::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(cri, id).await;
        if s.state == k8s_cri::v1::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
