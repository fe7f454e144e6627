//! Containers through CRI, end to end on a private berthd: two containers
//! of one pod reach each other on localhost and see each other's
//! processes; output lands in the CRI log format (a long line split into
//! partial entries); StopContainer waits out its timeout before killing;
//! ExecSync returns exit codes and kills on timeout; RemoveContainer
//! removes (a running container too) and is idempotent.

mod support;

use berth_testkit::{require_ctr, require_root, Daemon};
use k8s_cri::v1::*;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

async fn exec(cri: &mut Runtime, id: &str, cmd: &[&str], timeout: i64) -> ExecSyncResponse {
    cri.exec_sync(ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    })
    .await
    .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
    .into_inner()
}

/// The log's entries without their times, each checked to start with an
/// RFC 3339 time.
fn log_entries(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read log");
    text.lines()
        .map(|l| {
            let (time, rest) = l.split_once(' ').expect("entry has a time");
            assert!(time.contains('T') && time.ends_with('Z'), "{time}");
            rest.to_string()
        })
        .collect()
}

#[test]
fn containers_of_a_pod_share_localhost_and_pids_log_stop_exec_and_remove() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;

        // A serves on localhost and ignores SIGTERM; B only sleeps.
        let server = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config(
                "server",
                "trap '' TERM; while true; do echo pong | nc -l -p 8080; done",
            ),
        )
        .await;
        let client = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("client", "sleep 1000"),
        )
        .await;

        // One shim serves the pod: its pause container and both containers
        // (the sandbox id annotation groups them, as with containerd).
        let shims = berth_testkit::shims_of(daemon.address());
        assert_eq!(shims.len(), 1, "{shims:?}");

        // Localhost is the pod's: B reaches A's server.
        let mut reply = Vec::new();
        for _ in 0..50 {
            let out = exec(
                &mut cri,
                &client,
                &["nc", "-w", "2", "127.0.0.1", "8080"],
                10,
            )
            .await;
            reply = out.stdout;
            if reply.starts_with(b"pong") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(String::from_utf8_lossy(&reply).trim(), "pong");
        // So is the PID namespace: B sees A's processes.
        let ps = exec(&mut cri, &client, &["ps"], 10).await;
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(ps.contains("nc -l -p 8080"), "{ps}");

        // A container with a PID namespace of its own, and one that
        // targets it: they see each other, not the pod's.
        let pid_mode = |mode: NamespaceMode, target: &str| {
            Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        pid: mode as i32,
                        target_id: target.into(),
                        ..NamespaceOption::default()
                    }),
                    ..LinuxContainerSecurityContext::default()
                }),
            })
        };
        let mut config = container_config("private", "sleep 2000");
        config.linux = pid_mode(NamespaceMode::Container, "");
        let private = run_container(&mut cri, &pod, &pod_config, config).await;
        let mut config = container_config("targeting", "sleep 3000");
        config.linux = pid_mode(NamespaceMode::Target, &private);
        let targeting = run_container(&mut cri, &pod, &pod_config, config).await;
        let ps = exec(&mut cri, &targeting, &["ps"], 10).await;
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(
            ps.contains("sleep 2000") && ps.contains("sleep 3000"),
            "{ps}"
        );
        assert!(!ps.contains("nc -l"), "{ps}");
        for id in [private, targeting] {
            cri.remove_container(RemoveContainerRequest { container_id: id })
                .await
                .expect("RemoveContainer");
        }

        // ExecSync: exit codes, both streams, and a timeout that kills.
        let out = exec(
            &mut cri,
            &client,
            &["sh", "-c", "echo o; echo e >&2; exit 3"],
            10,
        )
        .await;
        assert_eq!(
            (out.exit_code, out.stdout, out.stderr),
            (3, b"o\n".to_vec(), b"e\n".to_vec())
        );
        let started = Instant::now();
        let err = cri
            .exec_sync(ExecSyncRequest {
                container_id: client.clone(),
                cmd: vec!["sleep".into(), "30".into()],
                timeout: 1,
            })
            .await
            .expect_err("the exec times out");
        assert!(started.elapsed() < Duration::from_secs(15), "not killed");
        assert!(err.message().contains("timeout"), "{err:?}");
        let ps = exec(&mut cri, &client, &["ps"], 10).await;
        assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 30"));

        // Logs: both streams, a line past 16 KiB split, a last line
        // without a newline.
        let logger = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config(
                "logger",
                "echo out; sleep 0.2; echo err >&2; sleep 0.2; printf '%020000d\\n' 0; printf tail",
            ),
        )
        .await;
        let done = wait_exited(&mut cri, &logger).await;
        assert_eq!(done.image.as_ref().map(|i| i.image.as_str()), Some(IMAGE));
        assert!(done.image_ref.starts_with("sha256:"), "{}", done.image_ref);
        assert_eq!((done.exit_code, done.reason.as_str()), (0, "Completed"));
        assert_eq!(
            done.log_path,
            logs.path().join("logger/0.log").to_string_lossy()
        );
        let entries = log_entries(Path::new(&done.log_path));
        let long = "0".repeat(20_000);
        assert_eq!(
            entries,
            vec![
                "stdout F out".to_string(),
                "stderr F err".into(),
                format!("stdout P {}", &long[..16 * 1024]),
                format!("stdout F {}", &long[16 * 1024..]),
                "stdout P tail".into(),
            ]
        );

        // With a terminal, everything comes on stdout, without the \r.
        let mut config = container_config("tty", "echo hi; echo err >&2");
        config.tty = true;
        let tty = run_container(&mut cri, &pod, &pod_config, config).await;
        let done = wait_exited(&mut cri, &tty).await;
        let entries = log_entries(Path::new(&done.log_path));
        assert_eq!(entries, ["stdout F hi", "stdout F err"]);

        // Stop with a timeout: A ignores SIGTERM, so it dies by SIGKILL
        // only once the timeout passed.
        let started = Instant::now();
        cri.stop_container(StopContainerRequest {
            container_id: server.clone(),
            timeout: 2,
        })
        .await
        .expect("StopContainer");
        assert!(started.elapsed() >= Duration::from_secs(2));
        let stopped = status(&mut cri, &server).await;
        assert_eq!(
            stopped.state,
            k8s_cri::v1::ContainerState::ContainerExited as i32
        );
        assert_eq!((stopped.exit_code, stopped.reason.as_str()), (137, "Error"));
        // Stopping again is fine.
        cri.stop_container(StopContainerRequest {
            container_id: server.clone(),
            timeout: 2,
        })
        .await
        .expect("second StopContainer");

        // List with filters.
        let list = |filter: ContainerFilter| ListContainersRequest {
            filter: Some(filter),
        };
        let running = cri
            .list_containers(list(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: k8s_cri::v1::ContainerState::ContainerRunning as i32,
                }),
                ..ContainerFilter::default()
            }))
            .await
            .expect("ListContainers")
            .into_inner()
            .containers;
        assert_eq!(
            running.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![client.clone()]
        );
        let by_label = cri
            .list_containers(list(ContainerFilter {
                label_selector: [("app".to_string(), "logger".to_string())].into(),
                pod_sandbox_id: pod[..12].into(),
                ..ContainerFilter::default()
            }))
            .await
            .expect("ListContainers")
            .into_inner()
            .containers;
        assert_eq!(by_label.len(), 1);
        assert_eq!(by_label[0].id, logger);

        // Remove: exited and running containers alike; again is fine.
        for id in [&logger, &tty, &server, &client] {
            cri.remove_container(RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
            let err = cri
                .container_status(ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: false,
                })
                .await
                .expect_err("removed");
            assert_eq!(err.code(), tonic::Code::NotFound);
        }
        cri.remove_container(RemoveContainerRequest {
            container_id: logger.clone(),
        })
        .await
        .expect("removing again");
        let left = cri
            .list_containers(list(ContainerFilter::default()))
            .await
            .expect("ListContainers")
            .into_inner()
            .containers;
        assert!(left.is_empty(), "{left:?}");
        assert!(!daemon
            .root()
            .join("io.containerd.grpc.v1.cri/containers")
            .join(&client)
            .exists());

        remove_pod(&mut cri, pod).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !berth_testkit::shims_of(daemon.address()).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shims = berth_testkit::shims_of(daemon.address());
        assert!(shims.is_empty(), "the pod's shim exits with it: {shims:?}");
    })
    .expect("runtime");
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let mut config = container_config("hog", "a=x; while true; do a=\"$a$a\"; done");
        config.linux = Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 16 << 20,
                ..LinuxContainerResources::default()
            }),
            security_context: None,
        });
        let hog = run_container(&mut cri, &pod, &pod_config, config).await;
        let done = wait_exited(&mut cri, &hog).await;
        assert_eq!((done.exit_code, done.reason.as_str()), (137, "OOMKilled"));
        cri.remove_container(RemoveContainerRequest { container_id: hog })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn a_running_container_survives_a_daemon_restart() {
    require_root!();
    require_ctr!();
    let mut daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    let pod_config = pod_config(logs.path(), "pod");
    let (pod, id) = berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod = run_pod(&mut cri, &pod_config).await;
        let script = "echo before; trap 'echo after; exit 7' TERM; while true; do sleep 0.1; done";
        let id = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("long", script),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        (pod, id)
    })
    .expect("runtime");
    daemon.restart().expect("restart");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        // The plugin reloads its containers once the socket serves.
        let request = || ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        };
        for _ in 0..100 {
            if cri.container_status(request()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = status(&mut cri, &id).await;
        assert_eq!(
            s.state,
            k8s_cri::v1::ContainerState::ContainerRunning as i32,
            "{s:?}"
        );
        let out = exec(&mut cri, &id, &["echo", "hi"], 10).await;
        assert_eq!(out.stdout, b"hi\n");
        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 10,
        })
        .await
        .expect("StopContainer");
        let s = status(&mut cri, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (7, "Error"));
        let entries = log_entries(Path::new(&s.log_path));
        assert_eq!(entries, ["stdout F before", "stdout F after"]);
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn user_groups_env_workdir_readonly_rootfs_and_mounts_reach_the_process() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("greeting"), "from the host\n").expect("greeting");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let script = "id -u; id -g; id -G; pwd; echo $GREETING; cat /data/greeting; \
                      touch /rootfs-file 2>/dev/null || echo read-only; \
                      touch /data/new 2>/dev/null || echo data-read-only";
        let mut config = container_config("who", script);
        config.working_dir = "/tmp".into();
        config.envs = vec![KeyValue {
            key: "GREETING".into(),
            value: "hello".into(),
        }];
        config.mounts = vec![Mount {
            container_path: "/data".into(),
            host_path: host.path().to_string_lossy().into_owned(),
            readonly: true,
            ..Mount::default()
        }];
        config.linux = Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 4242 }),
                run_as_group: Some(Int64Value { value: 4343 }),
                supplemental_groups: vec![5000],
                readonly_rootfs: true,
                ..LinuxContainerSecurityContext::default()
            }),
        });
        let id = run_container(&mut cri, &pod, &pod_config, config).await;
        let done = wait_exited(&mut cri, &id).await;
        assert_eq!(done.exit_code, 0, "{done:?}");
        let entries = log_entries(Path::new(&done.log_path));
        assert_eq!(
            entries,
            [
                "stdout F 4242",
                "stdout F 4343",
                "stdout F 4343 5000",
                "stdout F /tmp",
                "stdout F hello",
                "stdout F from the host",
                "stdout F read-only",
                "stdout F data-read-only",
            ]
        );
        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn a_failed_create_leaves_nothing_behind_and_frees_the_name() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "pod");
        let pod = run_pod(&mut cri, &pod_config).await;
        let create = |config: ContainerConfig| CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        let records = |daemon: &Daemon| daemon.ctr_ns("k8s.io", &["containers", "ls", "-q"]).stdout;
        let before = records(&daemon);

        // Fails after the snapshot is prepared: the user is looked up in it.
        let mut config = container_config("app", "true");
        config.linux = Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(LinuxContainerSecurityContext {
                run_as_username: "nobody-here".into(),
                ..LinuxContainerSecurityContext::default()
            }),
        });
        let err = cri
            .create_container(create(config))
            .await
            .expect_err("no such user");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        let mut missing = container_config("app", "true");
        missing.image = Some(ImageSpec {
            image: "docker.io/library/not-here:1".into(),
            ..ImageSpec::default()
        });
        let err = cri
            .create_container(create(missing))
            .await
            .expect_err("no image");
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

        assert_eq!(records(&daemon), before);
        let snapshots = daemon.ctr_ns("k8s.io", &["snapshots", "ls"]).stdout;
        assert_eq!(
            snapshots.lines().filter(|l| l.contains("Active")).count(),
            1,
            "{snapshots}"
        );
        let dirs = daemon.root().join("io.containerd.grpc.v1.cri/containers");
        assert!(std::fs::read_dir(&dirs).map(|d| d.count()).unwrap_or(0) == 0);

        // The name is free again; a second container of the name is not.
        let id = cri
            .create_container(create(container_config("app", "true")))
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        let err = cri
            .create_container(create(container_config("app", "true")))
            .await
            .expect_err("name taken");
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
        assert_eq!(
            status(&mut cri, &id).await.state,
            k8s_cri::v1::ContainerState::ContainerCreated as i32
        );
        // Stopping a created container is fine; removing it too.
        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 1,
        })
        .await
        .expect("StopContainer");
        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn seccomp_capabilities_and_privileged_shape_what_a_container_may_do() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let mut pod_config = pod_config(logs.path(), "pod");
        pod_config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                privileged: true,
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let pod = run_pod(&mut cri, &pod_config).await;
        let mount = "mount -t tmpfs none /tmp && echo mounted || echo denied";
        let runtime_default = Some(SecurityProfile {
            profile_type: security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        });
        let seccomp_mode = "grep '^Seccomp:' /proc/self/status";
        let cases = [
            (
                "filtered",
                seccomp_mode,
                LinuxContainerSecurityContext {
                    seccomp: runtime_default.clone(),
                    ..LinuxContainerSecurityContext::default()
                },
                "Seccomp:\t2",
            ),
            (
                "unfiltered",
                seccomp_mode,
                LinuxContainerSecurityContext::default(),
                "Seccomp:\t0",
            ),
            (
                "plain",
                mount,
                LinuxContainerSecurityContext {
                    seccomp: runtime_default.clone(),
                    ..LinuxContainerSecurityContext::default()
                },
                "denied",
            ),
            (
                "admin",
                mount,
                LinuxContainerSecurityContext {
                    seccomp: runtime_default.clone(),
                    capabilities: Some(Capability {
                        add_capabilities: vec!["SYS_ADMIN".into()],
                        ..Capability::default()
                    }),
                    ..LinuxContainerSecurityContext::default()
                },
                "mounted",
            ),
            (
                "hostdevs",
                "test -c /dev/kmsg && echo host-devices || echo none",
                LinuxContainerSecurityContext {
                    privileged: true,
                    ..LinuxContainerSecurityContext::default()
                },
                "host-devices",
            ),
            (
                "nohostdevs",
                "test -c /dev/kmsg && echo host-devices || echo none",
                LinuxContainerSecurityContext::default(),
                "none",
            ),
            (
                "privileged",
                mount,
                LinuxContainerSecurityContext {
                    privileged: true,
                    ..LinuxContainerSecurityContext::default()
                },
                "mounted",
            ),
            (
                "nocaps",
                "chown 1 /tmp && echo chowned || echo denied",
                LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        drop_capabilities: vec!["ALL".into()],
                        ..Capability::default()
                    }),
                    ..LinuxContainerSecurityContext::default()
                },
                "denied",
            ),
        ];
        for (name, script, security, expected) in cases {
            let mut config = container_config(name, script);
            config.linux = Some(LinuxContainerConfig {
                resources: None,
                security_context: Some(security),
            });
            let id = run_container(&mut cri, &pod, &pod_config, config).await;
            let done = wait_exited(&mut cri, &id).await;
            assert_eq!(done.exit_code, 0, "{name}: {done:?}");
            let entries = log_entries(Path::new(&done.log_path));
            let expected = format!("stdout F {expected}");
            assert!(entries.contains(&expected), "{name}: {entries:?}");
            cri.remove_container(RemoveContainerRequest { container_id: id })
                .await
                .expect("RemoveContainer");
        }
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn a_kill_9_of_berthd_loses_nothing_and_an_exit_while_it_was_down_is_reported() {
    require_root!();
    require_ctr!();
    let mut daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    let pod_config = pod_config(logs.path(), "pod");
    let (pod, short, long) = berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod = run_pod(&mut cri, &pod_config).await;
        let short = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("short", "sleep 2; echo done; exit 3"),
        )
        .await;
        let long = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("long", "sleep 2; echo while-down; exec sleep 1000"),
        )
        .await;
        (pod, short, long)
    })
    .expect("runtime");
    // What CRI made is containerd's records in k8s.io.
    let records = daemon.ctr_ns("k8s.io", &["containers", "ls", "-q"]).stdout;
    for id in [&pod, &short, &long] {
        assert!(records.contains(id.as_str()), "{id} not in:\n{records}");
    }
    let tasks = daemon.ctr_ns("k8s.io", &["tasks", "ls"]).stdout;
    assert!(tasks.contains(&long) && tasks.contains(&pod), "{tasks}");

    daemon.kill9().expect("kill -9 berthd");
    std::thread::sleep(Duration::from_secs(3)); // `short` exits meanwhile
    daemon.restart().expect("start berthd again");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pods = cri
            .list_pod_sandbox(k8s_cri::v1::ListPodSandboxRequest { filter: None })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items;
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(pods[0].id, pod);
        assert_eq!(
            pods[0].state,
            k8s_cri::v1::PodSandboxState::SandboxReady as i32
        );
        let s = wait_exited(&mut cri, &short).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");
        assert!(s.finished_at > s.started_at, "{s:?}");
        // (Its "done" went into a FIFO nobody read, closed when it exited:
        // lost, as containerd loses it.) A running container's output
        // waits in its FIFO for the restarted daemon.
        let s = status(&mut cri, &long).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while log_entries(Path::new(&s.log_path)).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no log from the running container"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(log_entries(Path::new(&s.log_path)), ["stdout F while-down"]);
        assert_eq!(
            s.state,
            k8s_cri::v1::ContainerState::ContainerRunning as i32,
            "{s:?}"
        );
        // By a unique prefix, as the kubelet's tools abbreviate ids.
        let out = exec(&mut cri, &long[..12], &["echo", "still here"], 10).await;
        assert_eq!(out.stdout, b"still here\n");
        remove_pod(&mut cri, pod).await;
        let left = cri
            .list_containers(k8s_cri::v1::ListContainersRequest { filter: None })
            .await
            .expect("ListContainers")
            .into_inner()
            .containers;
        assert!(left.is_empty(), "{left:?}");
    })
    .expect("runtime");
    let records = daemon.ctr_ns("k8s.io", &["containers", "ls", "-q"]).stdout;
    assert!(records.trim().is_empty(), "{records}");
}

#[test]
fn a_stop_cancelled_by_its_deadline_leaves_the_container_stoppable() {
    require_root!();
    require_ctr!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    let pod_config = pod_config(logs.path(), "pod");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod = run_pod(&mut cri, &pod_config).await;
        let script = "trap '' TERM; while true; do sleep 0.1; done";
        let id = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config("stubborn", script),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut request = tonic::Request::new(StopContainerRequest {
            container_id: id.clone(),
            timeout: 60,
        });
        request.set_timeout(Duration::from_millis(500));
        let err = cri
            .stop_container(request)
            .await
            .expect_err("the stop outlives its deadline");
        // (tonic's client gives up on its own: Cancelled, or the
        // server's DeadlineExceeded, whichever comes first.)
        assert!(
            matches!(
                err.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ),
            "{err}"
        );
        let s = status(&mut cri, &id).await;
        assert_eq!(
            s.state,
            k8s_cri::v1::ContainerState::ContainerRunning as i32,
            "SIGTERM is ignored: {s:?}"
        );
        let started = Instant::now();
        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 1,
        })
        .await
        .expect("a second StopContainer");
        assert!(started.elapsed() >= Duration::from_secs(1));
        let s = status(&mut cri, &id).await;
        assert_eq!(s.exit_code, 137, "{s:?}");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}
