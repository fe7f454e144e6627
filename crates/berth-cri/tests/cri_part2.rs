//! CRI part 2 on a private berthd: ReopenContainerLog swaps a running
//! container's log file after rotation without losing or splitting a line;
//! CheckpointContainer says it needs CRIU; UpdateContainerResources changes
//! a running container's cgroup and its status.

mod support;

use berth_testkit::{require_ctr, require_root};
use k8s_cri::v1::*;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// The sequence numbers of a log's `stdout F line-<n>` entries; every
/// entry must be whole and in that form.
fn sequence(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).expect("read log");
    assert!(text.is_empty() || text.ends_with('\n'), "a split entry");
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let time = parts.next().expect("time");
            assert!(time.contains('T') && time.ends_with('Z'), "{l:?}");
            assert_eq!(parts.next(), Some("stdout"), "{l:?}");
            assert_eq!(parts.next(), Some("F"), "{l:?}");
            let text = parts.next().expect("text");
            text.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a whole line: {l:?}"))
        })
        .collect()
}

/// Waits until the log at `path` has at least `n` entries.
async fn wait_entries(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let count = std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {count} entries",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn reopen_container_log_after_rotation_loses_and_splits_no_line() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let id = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config(
                "ticker",
                "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.05; done",
            ),
        )
        .await;
        let log = logs.path().join("ticker/0.log");
        let rotated = logs.path().join("ticker/0.log.20261207-000000");
        wait_entries(&log, 5).await;

        // The kubelet renames the file, then asks for a new one; lines
        // written in between still go to the renamed file.
        std::fs::rename(&log, &rotated).expect("rotate");
        tokio::time::sleep(Duration::from_millis(200)).await;
        cri.reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .expect("ReopenContainerLog");
        wait_entries(&log, 5).await;
        // Rotating twice works the same.
        let rotated_again = logs.path().join("ticker/0.log.20261207-000001");
        std::fs::rename(&log, &rotated_again).expect("rotate again");
        cri.reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .expect("ReopenContainerLog again");
        wait_entries(&log, 5).await;

        // Checkpoints need CRIU, which berth does not support.
        let err = cri
            .checkpoint_container(CheckpointContainerRequest {
                container_id: id.clone(),
                location: logs
                    .path()
                    .join("checkpoint.tar")
                    .to_string_lossy()
                    .into_owned(),
                timeout: 10,
            })
            .await
            .expect_err("CheckpointContainer");
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        assert!(err.message().contains("CRIU"), "{err:?}");
        let err = cri
            .checkpoint_container(CheckpointContainerRequest {
                container_id: "nope".into(),
                ..CheckpointContainerRequest::default()
            })
            .await
            .expect_err("an unknown container");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("StopContainer");

        let first = sequence(&rotated);
        let second = sequence(&rotated_again);
        let third = sequence(&log);
        assert!(first.len() >= 5 && second.len() >= 5 && third.len() >= 5);
        let all: Vec<u64> = first.iter().chain(&second).chain(&third).copied().collect();
        let expected: Vec<u64> = (0..all.len() as u64).collect();
        assert_eq!(all, expected, "lines lost or out of order across files");

        // Only a running container's log can be reopened.
        let err = cri
            .reopen_container_log(ReopenContainerLogRequest {
                container_id: id.clone(),
            })
            .await
            .expect_err("an exited container");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains("container is not running"),
            "{err:?}"
        );
        assert_eq!(
            status(&mut cri, &id).await.state,
            ContainerState::ContainerExited as i32
        );
        let err = cri
            .reopen_container_log(ReopenContainerLogRequest {
                container_id: "nope".into(),
            })
            .await
            .expect_err("an unknown container");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

/// The directory of controller `controller`'s cgroup of process `pid`
/// (cgroup v1).
fn cgroup_dir(pid: u32, controller: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let path = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {text}"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

fn read_number(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).expect("read cgroup file");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text}", path.display()))
}

/// The pid ContainerStatus's verbose info gives.
async fn pid(cri: &mut Runtime, id: &str) -> u32 {
    let info = cri
        .container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).expect("info JSON");
    info["pid"].as_u64().expect("pid") as u32
}

#[test]
fn update_container_resources_changes_the_cgroup_and_the_status() {
    require_root!();
    require_ctr!();
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        eprintln!("skipped: needs cgroup v1");
        return;
    }
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let mut config = container_config(
            "limited",
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40; sleep 1000",
        );
        config.linux = Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 256 << 20,
                ..LinuxContainerResources::default()
            }),
            security_context: None,
        });
        let id = run_container(&mut cri, &pod, &pod_config, config).await;
        let pid = pid(&mut cri, &id).await;
        assert_ne!(pid, 0);
        let memory = cgroup_dir(pid, "memory");
        let cpu = cgroup_dir(pid, "cpu");
        let limit = memory.join("memory.limit_in_bytes");
        let quota = cpu.join("cpu.cfs_quota_us");
        assert_eq!(read_number(&limit), 256 << 20);
        assert_eq!(read_number(&quota), 50_000);

        // Live: more memory, less CPU, one CPU.
        cri.update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                cpu_quota: 20_000,
                memory_limit_in_bytes: 300 << 20,
                cpuset_cpus: "0".into(),
                ..LinuxContainerResources::default()
            }),
            ..UpdateContainerResourcesRequest::default()
        })
        .await
        .expect("UpdateContainerResources");
        assert_eq!(read_number(&limit), 300 << 20);
        assert_eq!(read_number(&quota), 20_000);
        assert_eq!(read_number(&cpu.join("cpu.cfs_period_us")), 100_000);
        assert_eq!(read_number(&cpu.join("cpu.shares")), 512);
        let cpus =
            std::fs::read_to_string(cgroup_dir(pid, "cpuset").join("cpuset.cpus")).expect("cpuset");
        assert_eq!(cpus.trim(), "0");
        let shown = status(&mut cri, &id).await;
        let linux = shown
            .resources
            .and_then(|r| r.linux)
            .expect("status resources");
        assert_eq!(
            (
                linux.cpu_period,
                linux.cpu_quota,
                linux.cpu_shares,
                linux.memory_limit_in_bytes,
                linux.cpuset_cpus.as_str()
            ),
            (100_000, 20_000, 512, 300 << 20, "0")
        );

        // Below what it uses (40 MiB in /dev/shm, no swap): runc refuses,
        // and nothing changes.
        let usage = memory.join("memory.usage_in_bytes");
        let deadline = Instant::now() + Duration::from_secs(20);
        while read_number(&usage) < 40 << 20 {
            assert!(
                Instant::now() < deadline,
                "the container did not fill its shm"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let err = cri
            .update_container_resources(UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(LinuxContainerResources {
                    memory_limit_in_bytes: 8 << 20,
                    ..LinuxContainerResources::default()
                }),
                ..UpdateContainerResourcesRequest::default()
            })
            .await
            .expect_err("a limit below the usage");
        assert!(
            err.message().contains("failed to update resources"),
            "{err:?}"
        );
        assert!(err.message().contains("memory"), "{err:?}");
        assert_eq!(read_number(&limit), 300 << 20);
        let shown = status(&mut cri, &id).await;
        let linux = shown.resources.and_then(|r| r.linux).expect("resources");
        assert_eq!(linux.memory_limit_in_bytes, 300 << 20);

        // An exited container cannot be updated.
        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("StopContainer");
        let err = cri
            .update_container_resources(UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(LinuxContainerResources {
                    cpu_quota: 10_000,
                    ..LinuxContainerResources::default()
                }),
                ..UpdateContainerResourcesRequest::default()
            })
            .await
            .expect_err("an exited container");
        assert!(err.message().contains("CONTAINER_EXITED"), "{err:?}");

        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn get_container_events_streams_created_started_stopped_deleted() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let mut events = cri
            .get_container_events(GetEventsRequest {})
            .await
            .expect("GetContainerEvents")
            .into_inner();
        let id = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("brief", "sleep 0.3"),
        )
        .await;
        let mut seen = Vec::new();
        let deadline = Duration::from_secs(20);
        while seen.len() < 3 {
            let event = tokio::time::timeout(deadline, events.message())
                .await
                .expect("an event in time")
                .expect("the stream")
                .expect("not ended");
            if event.container_id == id {
                seen.push(event);
            }
        }
        cri.remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("RemoveContainer");
        while seen.len() < 4 {
            let event = tokio::time::timeout(deadline, events.message())
                .await
                .expect("an event in time")
                .expect("the stream")
                .expect("not ended");
            if event.container_id == id {
                seen.push(event);
            }
        }
        let kinds: Vec<i32> = seen.iter().map(|e| e.container_event_type).collect();
        assert_eq!(
            kinds,
            [
                ContainerEventType::ContainerCreatedEvent as i32,
                ContainerEventType::ContainerStartedEvent as i32,
                ContainerEventType::ContainerStoppedEvent as i32,
                ContainerEventType::ContainerDeletedEvent as i32,
            ]
        );
        for event in &seen {
            assert!(event.created_at > 0);
            let pod_status = event.pod_sandbox_status.as_ref().expect("pod status");
            assert_eq!(pod_status.id, pod);
        }
        // Each event carries the pod's containers as they were then.
        let state_of = |event: &ContainerEventResponse| {
            event
                .containers_statuses
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.state)
        };
        assert_eq!(
            seen.iter().map(state_of).collect::<Vec<_>>(),
            [
                Some(ContainerState::ContainerCreated as i32),
                Some(ContainerState::ContainerRunning as i32),
                Some(ContainerState::ContainerExited as i32),
                None,
            ]
        );
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}
