//! Runtime handlers that pick another shim or another runc, against a
//! private berthd.
//!
//! - `gorunc`: `runtime_type` is the absolute path of containerd's own Go
//!   shim (`/usr/bin/containerd-shim-runc-v2`, from Debian's containerd),
//!   which berthd runs as is. The pod's pause process is that shim's child;
//!   a container of the pod joins the same shim (the Go shim groups a pod's
//!   containers by their sandbox-id annotation), ExecSync reaches it, and
//!   stopping and removing the pod leaves no shim.
//! - `wrapped`: `runtime_type = "io.containerd.runc.v2"` whose options set
//!   `BinaryName` to a runc wrapper script that records its calls, run by
//!   the Go shim and by berth's own: the options reach the shim, which runs
//!   the wrapper instead of runc. (containerd 1.6 decodes a handler's
//!   options as runc options only for the runc runtime types; for an
//!   absolute path it would not send `BinaryName` at all, so that is not
//!   how one points the Go shim at another runc.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testkit::{
    block_on, busybox_oci_archive, in_ci, require_root, ArchiveNames, CriClient, Daemon,
};
use k8s_cri::v1::*;

/// containerd's Go runc shim, from Debian's `containerd` package.
const GO_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

/// The runc the wrapper calls.
const RUNC: &str = "/usr/sbin/runc";

/// The image the containers run, imported into `k8s.io`.
const IMAGE: &str = "docker.io/library/busybox:handlers";

/// The CRI config section of the runtime handlers.
const RUNTIMES: &str = r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#;

/// Whether containerd's Go shim is installed; if not, says the test is
/// skipped (CI has it: a missing shim fails there).
fn require_go_shim() -> bool {
    if Path::new(GO_SHIM).exists() {
        return true;
    }
    assert!(!in_ci(), "{GO_SHIM} is missing, and CI must not skip this");
    eprintln!("skipping: {GO_SHIM} is missing (Debian's containerd package provides it)");
    false
}

/// containerd's `restrict_oom_score_adj`, which the Go shim needs here:
/// it runs one point above the daemon's `oom_score_adj` (containerd's
/// `AdjustOOMScore`) and, unlike berth's shim, does not raise a spec's
/// score to its own; runc then fails to set the pause container's -998
/// without `CAP_SYS_RESOURCE`, which test machines withhold ("can't get
/// final child's PID from pipe: EOF"). Restricted, the score is the
/// daemon's own, which the kernel lets the shim's children go back to.
fn restricted(config: String) -> String {
    let table = "[plugins.\"io.containerd.grpc.v1.cri\"]\n";
    assert!(config.contains(table), "no CRI table in {config}");
    config.replacen(
        table,
        &format!("{table}    restrict_oom_score_adj = true\n"),
        1,
    )
}

/// The handler `gorunc`: the Go shim by absolute path.
fn with_gorunc(_dir: &Path, config: String) -> String {
    format!(
        "{}\n{RUNTIMES}.gorunc]\n  runtime_type = {GO_SHIM:?}\n",
        restricted(config)
    )
}

/// The handler `wrapped`: runc options whose `BinaryName` is the wrapper.
fn with_wrapped(dir: &Path, config: String) -> String {
    format!(
        "{config}\n{RUNTIMES}.wrapped]\n  runtime_type = \"io.containerd.runc.v2\"\n\
         {RUNTIMES}.wrapped.options]\n  BinaryName = {wrapper:?}\n",
        wrapper = wrapper_path(dir).display().to_string(),
    )
}

/// `wrapped`, with `io.containerd.runc.v2` run by the Go shim (berthd's
/// shim table, as containerd's `shims` map of runtime names to binaries).
fn with_wrapped_go_shim(dir: &Path, config: String) -> String {
    format!(
        "{}\n[plugins.\"io.containerd.runtime.v2.task\".shims]\n  \
         \"io.containerd.runc.v2\" = {GO_SHIM:?}\n",
        with_wrapped(dir, restricted(config))
    )
}

fn wrapper_path(dir: &Path) -> PathBuf {
    dir.join("runc-wrapper")
}

fn wrapper_log(dir: &Path) -> PathBuf {
    dir.join("runc-wrapper.log")
}

/// Writes the runc wrapper: it appends its arguments to a log, then runs
/// runc with them.
fn write_wrapper(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = wrapper_path(dir);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log:?}\nexec {RUNC} \"$@\"\n",
            log = wrapper_log(dir).display().to_string()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A daemon with `edit`'s handlers, a loopback-only CNI network and
/// busybox in `k8s.io`; on drop, every pod left is removed through CRI.
struct Handlers {
    daemon: Daemon,
}

impl Handlers {
    fn start(edit: fn(&Path, String) -> String) -> Handlers {
        let daemon = Daemon::builder()
            .edit_config(edit)
            .start()
            .expect("start daemon");
        let conf_dir = daemon.dir().join("cni");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        std::fs::write(
            conf_dir.join("10-loopback.conflist"),
            r#"{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}"#,
        )
        .expect("conflist");
        let archive = busybox_oci_archive(&ArchiveNames {
            ref_name: Some("handlers".into()),
            image_name: Some(IMAGE.into()),
        })
        .expect("archive");
        let path = daemon.dir().join("busybox.tar");
        std::fs::write(&path, &archive.bytes).expect("write archive");
        let path = path.to_string_lossy().into_owned();
        daemon
            .ctr_ns("k8s.io", &["images", "import", &path])
            .assert_success();
        Handlers { daemon }
    }

    /// Pids of shim processes (`containerd-shim-*`) started for this
    /// daemon: their command line has its socket as one argument.
    fn shims(&self) -> Vec<u32> {
        let want = self.daemon.address().as_os_str().as_encoded_bytes();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let mut args = cmdline.split(|b| *b == 0);
            let is_shim = args.next().is_some_and(|arg0| {
                Path::new(&*String::from_utf8_lossy(arg0))
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim"))
            });
            if is_shim && args.any(|arg| arg == want) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits (up to 10 s) until no shim of this daemon is left.
    fn assert_no_shim_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.shims().is_empty() {
            assert!(
                Instant::now() < deadline,
                "shims left: {:?}",
                self.shims()
                    .iter()
                    .map(|pid| (*pid, exe(*pid)))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
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
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: pod.id.clone(),
                    })
                    .await;
                let _ = cri
                    .runtime
                    .remove_pod_sandbox(RemovePodSandboxRequest {
                        pod_sandbox_id: pod.id,
                    })
                    .await;
            }
        });
        // A shim a failed test left behind is killed by pid.
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A process's parent pid, from `/proc/PID/stat`.
fn parent(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("stat of {pid}: {e}"));
    // The fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    rest.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no parent in {stat:?}"))
}

/// The binary a process runs.
fn exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default()
}

fn pod_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: format!("/var/log/pods/{name}"),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..PodSandboxConfig::default()
    }
}

/// Runs a pod with `handler`; returns its id and the pause process's pid.
async fn run_pod(cri: &mut CriClient, config: &PodSandboxConfig, handler: &str) -> (String, u32) {
    let id = cri
        .runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox with {handler}: {e:?}"))
        .into_inner()
        .pod_sandbox_id;
    let status = cri
        .runtime
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    let state = status.status.as_ref().expect("status");
    assert_eq!(state.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(state.runtime_handler, handler);
    let info: serde_json::Value =
        serde_json::from_str(&status.info["info"]).expect("verbose info is JSON");
    let pid = info["pid"].as_u64().expect("pid") as u32;
    (id, pid)
}

/// Stops and removes a pod.
async fn remove_pod(cri: &mut CriClient, id: &str) {
    cri.runtime
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("StopPodSandbox");
    cri.runtime
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("RemovePodSandbox");
}

#[test]
fn a_pod_runs_under_containerds_go_shim_named_by_path() {
    if !require_root() || !require_go_shim() {
        return;
    }
    let handlers = Handlers::start(with_gorunc);
    block_on(async {
        let mut cri = handlers.daemon.cri().await.expect("cri client");
        let config = pod_config("gorunc");
        let (pod, pause) = run_pod(&mut cri, &config, "gorunc").await;
        let shim = parent(pause);
        assert_eq!(
            exe(shim),
            Path::new(GO_SHIM),
            "the pause process {pause}'s parent {shim}"
        );

        // A container of the pod: the Go shim groups it with its pod.
        let container = cri
            .runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "sleeper".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: IMAGE.into(),
                        ..ImageSpec::default()
                    }),
                    command: vec!["sleep".into(), "1000".into()],
                    ..ContainerConfig::default()
                }),
                sandbox_config: Some(config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        cri.runtime
            .start_container(StartContainerRequest {
                container_id: container.clone(),
            })
            .await
            .expect("StartContainer");
        let exec = cri
            .runtime
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: vec!["sh".into(), "-c".into(), "echo $$ from $(hostname)".into()],
                timeout: 10,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        assert_eq!(exec.exit_code, 0, "{exec:?}");
        let out = String::from_utf8_lossy(&exec.stdout);
        assert!(out.ends_with(" from gorunc\n"), "{out:?}");
        let status = cri
            .runtime
            .container_status(ContainerStatusRequest {
                container_id: container.clone(),
                verbose: true,
            })
            .await
            .expect("ContainerStatus")
            .into_inner();
        let info: serde_json::Value =
            serde_json::from_str(&status.info["info"]).expect("verbose info is JSON");
        let sleeper = info["pid"].as_u64().expect("container pid") as u32;
        assert_eq!(
            parent(sleeper),
            shim,
            "the container runs under its pod's Go shim"
        );

        // Stop and remove: the container, then the pod, then no shim.
        cri.runtime
            .stop_container(StopContainerRequest {
                container_id: container.clone(),
                timeout: 0,
            })
            .await
            .expect("StopContainer");
        cri.runtime
            .remove_container(RemoveContainerRequest {
                container_id: container,
            })
            .await
            .expect("RemoveContainer");
        remove_pod(&mut cri, &pod).await;
    })
    .expect("runtime");
    handlers.assert_no_shim_left();
}

/// Runs a pod with the `wrapped` handler under a daemon configured by
/// `edit`; checks the pause process's parent runs `shim` and that the
/// wrapper created, started and deleted the pause container.
fn wrapped_runc_is_called(edit: fn(&Path, String) -> String, shim: &str) {
    let handlers = Handlers::start(edit);
    let dir = handlers.daemon.dir().to_path_buf();
    write_wrapper(&dir);
    let pod = block_on(async {
        let mut cri = handlers.daemon.cri().await.expect("cri client");
        let (pod, pause) = run_pod(&mut cri, &pod_config("wrapped"), "wrapped").await;
        let parent_exe = exe(parent(pause));
        assert!(
            parent_exe.to_string_lossy().ends_with(shim),
            "the pause process's parent runs {parent_exe:?}"
        );
        remove_pod(&mut cri, &pod).await;
        pod
    })
    .expect("runtime");
    handlers.assert_no_shim_left();
    let log = std::fs::read_to_string(wrapper_log(&dir)).unwrap_or_default();
    for verb in ["create", "start", "delete"] {
        assert!(
            log.lines()
                .any(|l| l.split_whitespace().any(|w| w == verb) && l.contains(&pod)),
            "the wrapper was not called to {verb} {pod}:\n{log}"
        );
    }
}

#[test]
fn binary_name_of_a_handler_reaches_containerds_go_shim() {
    if !require_root() || !require_go_shim() {
        return;
    }
    wrapped_runc_is_called(with_wrapped_go_shim, "containerd-shim-runc-v2");
}

#[test]
fn binary_name_of_a_handler_reaches_berths_shim() {
    if !require_root() {
        return;
    }
    wrapped_runc_is_called(with_wrapped, "containerd-shim-berth-v2");
}
