//! The client library end to end: containers from an image, tasks with
//! their stdio, exec, pause, metrics, kill and delete, against a private
//! berthd running real containers through its shim and runc; and the
//! `run_busybox` example binary against the same daemon.
//!
//! The busybox image is built by berth-testkit and imported (and
//! unpacked into overlayfs) with Debian's `ctr images import`. Every test
//! removes what it made; a [`Cleanup`] guard kills and removes leftover
//! tasks and containers when a test fails half way.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_client::cio::Io;
use berth_client::container::NewContainer;
use berth_client::pb::types::v1::Status;
use berth_client::task::SIGKILL;
use berth_client::{Client, ErrorKind};
use berth_testkit::{busybox_oci_archive, require_ctr, require_root, ArchiveNames, Daemon};
use tokio::io::AsyncReadExt;

const BASE: &str = "docker.io/library/busybox";
const IMAGE: &str = "docker.io/library/busybox:latest";

/// A daemon with the busybox image imported and unpacked, and cleanup of
/// every container on drop.
struct Cleanup {
    daemon: Daemon,
}

impl Cleanup {
    fn start() -> Cleanup {
        let daemon = Daemon::start().unwrap_or_else(|e| panic!("start daemon: {e:#}"));
        let archive = busybox_oci_archive(&ArchiveNames {
            ref_name: Some("latest".into()),
            image_name: None,
        })
        .expect("busybox archive");
        let path = daemon.dir().join("busybox.tar");
        std::fs::write(&path, &archive.bytes).expect("write archive");
        let path = path.to_str().expect("utf-8 path");
        daemon
            .ctr(&["images", "import", "--base-name", BASE, path])
            .assert_success();
        Cleanup { daemon }
    }

    async fn client(&self) -> Client {
        Client::connect(self.daemon.address().display().to_string())
            .await
            .expect("connect")
            .with_namespace("default")
    }

    fn fifo_dir(&self) -> PathBuf {
        self.daemon.dir().join("fifo")
    }

    /// What is left in the FIFO directory.
    fn fifos_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.fifo_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(out) = self.daemon.try_ctr(None, &["containers", "ls", "-q"]) else {
            return;
        };
        for id in out.lines() {
            let _ = self
                .daemon
                .try_ctr(None, &["tasks", "kill", "-a", "-s", "KILL", id]);
            for _ in 0..50 {
                let rm = self.daemon.try_ctr(None, &["tasks", "rm", "-f", id]);
                if rm.map_or(true, |o| o.success() || o.stderr.contains("not found")) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = self.daemon.try_ctr(None, &["containers", "rm", id]);
        }
    }
}

/// A reader and the writer end to hand to [`Io::with_streams`].
fn capture() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(1 << 20)
}

async fn read_all(mut reader: tokio::io::DuplexStream) -> String {
    let mut out = String::new();
    reader.read_to_string(&mut out).await.expect("read output");
    out
}

#[test]
fn container_from_image_runs_and_cleans_up() {
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        let container = client
            .new_container(
                "lib-run",
                NewContainer::from_image(IMAGE)
                    .args(["sh", "-c", "echo out $GREETING; echo err >&2; exit 7"])
                    .env(["GREETING=hello"])
                    .label("test", "library"),
            )
            .await
            .expect("new container");

        let info = container.info().await.expect("info");
        assert_eq!(info.image, IMAGE);
        assert_eq!(info.snapshotter, "overlayfs");
        assert_eq!(info.snapshot_key, "lib-run");
        assert_eq!(info.labels.get("test").map(String::as_str), Some("library"));
        let spec = container.spec().await.expect("spec");
        let process = spec.process.as_ref().expect("process");
        assert_eq!(process.args[0], "sh");
        assert!(process.env.iter().any(|e| e.starts_with("PATH=")));
        assert!(process.env.contains(&"GREETING=hello".to_string()));

        let (out_w, out_r) = capture();
        let (err_w, err_r) = capture();
        let io = Io::with_streams(None, Some(Box::new(out_w)), Some(Box::new(err_w)))
            .fifo_dir(h.fifo_dir());
        let task = container.new_task(io).await.expect("new task");
        assert_eq!(task.status().await.expect("status").status, Status::Created);
        let exit = task.wait().await.expect("wait");
        task.start().await.expect("start");
        let status = exit.await.expect("exit");
        assert_eq!(status.code, 7);
        let deleted = task.delete().await.expect("delete task");
        assert_eq!(deleted.code, 7);
        assert_eq!(read_all(out_r).await, "out hello\n");
        assert_eq!(read_all(err_r).await, "err\n");
        assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());

        container.delete(true).await.expect("delete container");
        let err = client
            .snapshots()
            .stat("overlayfs", "lib-run")
            .await
            .expect_err("snapshot removed");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = client.load_container("lib-run").await.expect_err("gone");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(client
            .leases()
            .list::<&str>(&[])
            .await
            .expect("leases")
            .is_empty());
    });
}

#[test]
fn a_task_is_created_again_the_moment_the_last_one_is_deleted() {
    // The shim of a deleted task may still be running `runc delete` when
    // Delete returns; the next task of the container must not meet runc's
    // "container with id exists". No client is faster than one in-process.
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        let container = client
            .new_container("lib-again", NewContainer::from_image(IMAGE).args(["true"]))
            .await
            .expect("new container");
        for round in 0..5 {
            let io = Io::null().fifo_dir(h.fifo_dir());
            let task = container
                .new_task(io)
                .await
                .unwrap_or_else(|e| panic!("round {round}: new task: {e}"));
            let exit = task.wait().await.expect("wait");
            task.start().await.expect("start");
            assert_eq!(exit.await.expect("exit").code, 0);
            task.delete().await.expect("delete task");
        }
        container.delete(true).await.expect("delete container");
    });
}

#[test]
fn running_task_exec_pause_kill() {
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        let container = client
            .new_container(
                "lib-life",
                NewContainer::from_image(IMAGE).args(["sleep", "1000"]),
            )
            .await
            .expect("new container");
        let task = container
            .new_task(Io::fifos().fifo_dir(h.fifo_dir()))
            .await
            .expect("new task");
        drop(task.take_streams());
        let exit = task.wait().await.expect("wait");
        let pid = task.start().await.expect("start");
        assert!(Path::new(&format!("/proc/{pid}")).exists());

        // A second handle, as another program would load it.
        let loaded = client
            .load_container("lib-life")
            .await
            .expect("load")
            .task(None)
            .await
            .expect("task");
        assert_eq!(loaded.pid(), pid);
        assert_eq!(
            loaded.status().await.expect("status").status,
            Status::Running
        );
        let pids = loaded.pids().await.expect("pids");
        assert!(pids.iter().any(|p| p.pid == pid), "{pids:?}");

        let process_spec = container
            .spec()
            .await
            .expect("spec")
            .process
            .expect("process");
        let mut echo = process_spec.clone();
        echo.args = vec!["echo".into(), "from-exec".into()];
        let exec = task
            .exec("x1", echo, Io::fifos().stdin(false).fifo_dir(h.fifo_dir()))
            .await
            .expect("exec");
        // Keep every end open until the process is done: containerd's own
        // shim waits for a reader on each output FIFO.
        let mut streams = exec.take_streams().expect("streams");
        let stdout = streams.stdout.as_mut().expect("stdout");
        let exec_exit = exec.wait().await.expect("wait exec");
        exec.start().await.expect("start exec");
        assert_eq!(exec_exit.await.expect("exec exit").code, 0);
        let mut out = String::new();
        stdout.read_to_string(&mut out).await.expect("read exec");
        assert_eq!(out, "from-exec\n");
        drop(streams);
        exec.delete().await.expect("delete exec");

        task.pause().await.expect("pause");
        assert_eq!(task.status().await.expect("status").status, Status::Paused);
        task.resume().await.expect("resume");
        assert_eq!(task.status().await.expect("status").status, Status::Running);
        let metric = task.metrics().await.expect("metrics");
        assert_eq!(metric.id, "lib-life");
        assert!(metric.data.is_some());

        let err = task.delete().await.expect_err("running");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(err.message().contains("must be stopped"), "{err}");
        let err = container.delete(true).await.expect_err("task exists");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);

        // pid 1 of a pid namespace ignores SIGTERM it does not handle.
        task.kill(SIGKILL, false).await.expect("kill");
        assert_eq!(exit.await.expect("exit").code, 137);
        let err = task.kill(SIGKILL, false).await.expect_err("exited");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // The loaded handle deletes it and removes the FIFOs it knows of.
        loaded.delete().await.expect("delete task");
        assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
        container.delete(true).await.expect("delete container");
    });
}

#[test]
fn image_not_unpacked_is_failed_precondition() {
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("packed".into()),
        image_name: None,
    })
    .expect("archive");
    let path = h.daemon.dir().join("packed.tar");
    std::fs::write(&path, &archive.bytes).expect("write");
    let path = path.to_str().expect("utf-8");
    h.daemon
        .ctr(&["images", "import", "--base-name", BASE, path])
        .assert_success();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        let err = client
            .new_container(
                "lib-native",
                NewContainer::from_image(format!("{BASE}:packed")).snapshotter("native"),
            )
            .await
            .expect_err("not unpacked for native");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
        assert!(err.message().contains("not unpacked"), "{err}");
        let err = client
            .new_container("lib-none", NewContainer::from_image("example.com/none:1"))
            .await
            .expect_err("no such image");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(client
            .containers()
            .list::<&str>(&[])
            .await
            .expect("list")
            .is_empty());
    });
}

/// `target/debug/examples/run_busybox`, built by `cargo build --examples`.
fn example_bin() -> Option<PathBuf> {
    let berth = berth_testkit::berth_bin().ok()?;
    let path = berth.parent()?.join("examples").join("run_busybox");
    path.exists().then_some(path)
}

#[test]
fn run_busybox_example_runs_against_a_private_daemon() {
    require_root!();
    require_ctr!();
    let Some(bin) = example_bin() else {
        assert!(
            !berth_testkit::in_ci(),
            "run_busybox not built: run `cargo build --examples`"
        );
        eprintln!("skipping: run_busybox not built (cargo build -p berth-client --examples)");
        return;
    };
    let h = Cleanup::start();
    let out = berth_testkit::run_with_timeout(
        Command::new(bin).args([
            "--address",
            h.daemon.address().to_str().expect("utf-8"),
            "--namespace",
            "default",
            "--no-pull",
            IMAGE,
        ]),
        berth_testkit::DEFAULT_COMMAND_TIMEOUT,
    )
    .expect("run example")
    .assert_success();
    assert!(
        out.stdout.contains("created container run-busybox"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("run-busybox\tdocker.io/library/busybox:latest"),
        "{out}"
    );
    assert!(out.stdout.contains("RUNNING"), "{out}");
    assert!(out.stdout.contains("exited with status 137"), "{out}");
    assert!(
        out.stdout.contains("deleted container run-busybox"),
        "{out}"
    );
    h.daemon
        .ctr(&["snapshots", "info", "run-busybox"])
        .assert_failure();
    let containers = h.daemon.ctr(&["containers", "ls", "-q"]).assert_success();
    assert!(containers.stdout.trim().is_empty(), "{containers}");
}

#[test]
fn run_busybox_example_pulls_from_a_loopback_registry() {
    require_root!();
    require_ctr!();
    if !berth_testkit::require_registry() {
        return;
    }
    if berth_testkit::testing_containerd() {
        eprintln!("skipping: containerd 1.6 has no transfer service to pull with");
        return;
    }
    let Some(bin) = example_bin() else {
        assert!(
            !berth_testkit::in_ci(),
            "run_busybox not built: run `cargo build --examples`"
        );
        eprintln!("skipping: run_busybox not built (cargo build -p berth-client --examples)");
        return;
    };
    let registry = berth_testkit::Registry::start().expect("registry");
    let h = Cleanup::start();
    // Seed the registry with Debian's ctr from another namespace.
    let base = format!("{}/test/busybox", registry.host());
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("1".into()),
        image_name: None,
    })
    .expect("archive");
    let path = h.daemon.dir().join("seed.tar");
    std::fs::write(&path, &archive.bytes).expect("write");
    let path = path.to_str().expect("utf-8");
    let name = format!("{base}:1");
    h.daemon
        .ctr_ns(
            "seed",
            &[
                "images",
                "import",
                "--no-unpack",
                "--base-name",
                &base,
                path,
            ],
        )
        .assert_success();
    h.daemon
        .ctr_ns("seed", &["images", "push", "--plain-http", &name])
        .assert_success();

    let out = berth_testkit::run_with_timeout(
        Command::new(bin).args([
            "--address",
            h.daemon.address().to_str().expect("utf-8"),
            "--namespace",
            "pulled",
            "--plain-http",
            "--id",
            "pulled-busybox",
            &name,
        ]),
        berth_testkit::DEFAULT_COMMAND_TIMEOUT,
    )
    .expect("run example")
    .assert_success();
    assert!(out.stdout.contains(&format!("pulling {name}")), "{out}");
    assert!(out.stdout.contains("RUNNING"), "{out}");
    assert!(
        out.stdout.contains("deleted container pulled-busybox"),
        "{out}"
    );
    let images = h
        .daemon
        .ctr_ns("pulled", &["images", "ls", "-q"])
        .assert_success();
    assert_eq!(images.stdout.trim(), name, "{images}");
    let containers = h
        .daemon
        .ctr_ns("pulled", &["containers", "ls", "-q"])
        .assert_success();
    assert!(containers.stdout.trim().is_empty(), "{containers}");
}

#[test]
fn user_names_are_resolved_in_the_snapshot() {
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        // The rootfs is mounted for a moment to read /etc/passwd, as
        // containerd's WithUser does.
        let container = client
            .new_container(
                "lib-user",
                NewContainer::from_image(IMAGE)
                    .user("root")
                    .cwd("/tmp")
                    .args(["true"]),
            )
            .await
            .expect("new container");
        let spec = container.spec().await.expect("spec");
        let process = spec.process.as_ref().expect("process");
        assert_eq!((process.user.uid, process.user.gid), (0, 0));
        assert_eq!(process.cwd, "/tmp");
        let err = client
            .new_container(
                "lib-nobody",
                NewContainer::from_image(IMAGE).user("no-such-user"),
            )
            .await
            .expect_err("unknown user");
        assert!(err.message().contains("no-such-user"), "{err}");
        // The failed create removed its snapshot.
        let err = client
            .snapshots()
            .stat("overlayfs", "lib-nobody")
            .await
            .expect_err("no snapshot left");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        container.delete(true).await.expect("delete");
    });
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    // This process's temporary mounts are named after its pid.
    let ours = format!("berth-mount-{}-", std::process::id());
    assert!(!mounts.contains(&ours), "a temporary mount is left");
}

#[test]
fn stdin_reaches_the_process_and_its_end_closes_it() {
    require_root!();
    require_ctr!();
    let h = Cleanup::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = h.client().await;
        let container = client
            .new_container("lib-cat", NewContainer::from_image(IMAGE).args(["cat"]))
            .await
            .expect("new container");
        let input: Vec<u8> = (0..2000)
            .flat_map(|i| format!("line{i}\n").into_bytes())
            .collect();
        let (out_w, out_r) = capture();
        let io = Io::with_streams(
            Some(Box::new(std::io::Cursor::new(input.clone()))),
            Some(Box::new(out_w)),
            None,
        )
        .fifo_dir(h.fifo_dir());
        let task = container.new_task(io).await.expect("new task");
        let exit = task.wait().await.expect("wait");
        task.start().await.expect("start");
        // cat ends only if the end of the input reached it (CloseIO).
        assert_eq!(exit.await.expect("exit").code, 0);
        task.delete().await.expect("delete task");
        assert_eq!(read_all(out_r).await.into_bytes(), input);
        assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
        container.delete(true).await.expect("delete container");
    });
}
