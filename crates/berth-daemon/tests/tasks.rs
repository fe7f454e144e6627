//! Tasks end to end: Debian's `ctr` against a private berthd running real
//! containers through a runtime v2 shim and runc.
//!
//! The shim for `io.containerd.runc.v2` is berth's own
//! `containerd-shim-berth-v2` (the default, found next to berthd);
//! `BERTH_TEST_SHIM=runc` runs the same tests through Debian's
//! `containerd-shim-runc-v2` instead. `BERTH_TESTKIT_DAEMON=containerd` runs
//! them against Debian's containerd.
//!
//! Every test cleans up after itself, failing or not: [`Harness`] kills and
//! deletes every task and container before its daemon goes, and the leak test
//! checks that no shim, bundle or FIFO is left.
//!
//! Commands are absolute paths: a spec `ctr` builds for `--rootfs` has no
//! `PATH`, so runc cannot look a bare name up (containerd behaves the same).

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{
    busybox_rootfs, require_ctr, require_root, task_rows, testing_containerd, wait_task_status,
    CmdOutput, Daemon, TaskRow,
};

/// Debian's runc shim, used when `BERTH_TEST_SHIM=runc`.
const RUNC_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

/// A daemon, a busybox rootfs, and cleanup of every task on drop.
struct Harness {
    daemon: Daemon,
    rootfs: PathBuf,
}

fn use_runc_shim() -> bool {
    std::env::var("BERTH_TEST_SHIM").is_ok_and(|v| v == "runc")
}

fn harness() -> Harness {
    let mut builder = Daemon::builder();
    if use_runc_shim() && !testing_containerd() {
        builder = builder.config(format!(
            "version = 2\n[plugins.\"io.containerd.runtime.v2.task\".shims]\n\"io.containerd.runc.v2\" = {RUNC_SHIM:?}\n"
        ));
    }
    let daemon = builder
        .start()
        .unwrap_or_else(|e| panic!("start daemon: {e:#}"));
    let rootfs = daemon.dir().join("rootfs");
    busybox_rootfs(&rootfs).expect("busybox rootfs");
    Harness { daemon, rootfs }
}

impl Harness {
    fn ctr(&self, args: &[&str]) -> CmdOutput {
        self.daemon.ctr(args)
    }

    fn rootfs(&self) -> &str {
        self.rootfs.to_str().expect("utf-8 path")
    }

    /// `ctr run --rm --rootfs DIR id cmd…`.
    fn run_rm(&self, id: &str, cmd: &[&str]) -> CmdOutput {
        let mut args = vec!["run", "--rm", "--rootfs", self.rootfs(), id];
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// `ctr run -d --rootfs DIR id cmd…`, asserting success.
    fn run_detached(&self, id: &str, cmd: &[&str]) {
        let mut args = vec!["run", "-d", "--rootfs", self.rootfs(), id];
        args.extend_from_slice(cmd);
        self.ctr(&args).assert_success();
    }

    /// `ctr tasks ls` as rows.
    fn rows(&self) -> Vec<TaskRow> {
        task_rows(&self.ctr(&["tasks", "ls"]).assert_success())
    }

    /// `ctr tasks ls` as (id, pid, status).
    fn tasks(&self) -> Vec<(String, u32, String)> {
        self.rows()
            .into_iter()
            .map(|r| (r.id, r.pid, r.status))
            .collect()
    }

    fn status(&self, id: &str) -> Option<(u32, String)> {
        self.tasks()
            .into_iter()
            .find(|(t, _, _)| t == id)
            .map(|(_, pid, status)| (pid, status))
    }

    #[track_caller]
    fn wait_status(&self, id: &str, want: &str) {
        wait_task_status(|| self.rows(), id, want, Duration::from_secs(15));
    }

    /// Kills and deletes `id`'s task and container.
    fn remove(&self, id: &str) {
        if self.status(id).is_some() {
            let _ = self
                .daemon
                .try_ctr(None, &["tasks", "kill", "-a", "-s", "KILL", id]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.status(id).is_some_and(|(_, s)| s != "STOPPED") && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = self.daemon.try_ctr(None, &["tasks", "rm", "-f", id]);
        }
        let _ = self.daemon.try_ctr(None, &["containers", "rm", id]);
    }

    /// The shim processes started for this daemon (their command lines name its socket).
    fn shims(&self) -> Vec<u32> {
        processes_with_arg(self.daemon.address())
    }

    fn bundles(&self) -> Vec<PathBuf> {
        let dir = self.daemon.state().join("io.containerd.runtime.v2.task");
        let Ok(namespaces) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        namespaces
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !self.daemon.is_running() {
            let _ = self.daemon.restart();
        }
        if let Ok(out) = self.daemon.try_ctr(None, &["containers", "ls", "-q"]) {
            for id in out.lines() {
                self.remove(id);
            }
        }
        // Whatever still runs (a daemon that could not clean up) is killed by pid.
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Pids of shim processes (`containerd-shim-*`) whose command line has `arg`
/// as one argument.
fn processes_with_arg(arg: &Path) -> Vec<u32> {
    let want = arg.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let is_shim = args
            .next()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"));
        if is_shim && args.any(|a| a == want) {
            pids.push(pid);
        }
    }
    pids
}

/// FIFOs `ctr` made for containers whose id starts with `prefix`.
fn fifos(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir("/run/containerd/fifo")
        .into_iter()
        .flatten()
        .flatten()
    {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.file_name().to_string_lossy().starts_with(prefix) {
                found.push(file.path());
            }
        }
    }
    found
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn run_rm_prints_output_and_returns() {
    require_root!();
    require_ctr!();
    let h = harness();
    let out = h.run_rm("echo-hi", &["/bin/echo", "hi"]).assert_success();
    assert_eq!(out.stdout, "hi\n");
    assert!(h.tasks().is_empty());
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

#[test]
fn exit_code_is_propagated() {
    require_root!();
    require_ctr!();
    let h = harness();
    let out = h.run_rm("exit-three", &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "{out}");
}

#[test]
fn exit_code_of_an_imported_image_is_propagated() {
    require_root!();
    require_ctr!();
    let h = harness();
    let image = "docker.io/library/busybox:tasks";
    let names = berth_testkit::ArchiveNames {
        ref_name: Some("tasks".into()),
        image_name: Some(image.into()),
    };
    let archive = berth_testkit::busybox_oci_archive(&names).expect("archive");
    let path = h.daemon.dir().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    h.ctr(&["images", "import", path.to_str().expect("utf-8 path")])
        .assert_success();
    // The image's PATH finds `sh`; the rootfs is an overlay of its snapshot.
    let out = h.ctr(&["run", "--rm", image, "image-exit", "sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(h.tasks().is_empty());
    assert!(h.ctr(&["containers", "ls", "-q"]).lines().is_empty());
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
    let snapshots = h.ctr(&["snapshots", "ls"]).assert_success();
    assert!(!snapshots.stdout.contains("image-exit"), "{snapshots}");
    assert!(
        berth_testkit::unmount_under(h.daemon.dir()).is_empty(),
        "mounts left"
    );
}

#[test]
fn fast_exiting_container_output_is_complete() {
    require_root!();
    require_ctr!();
    let h = harness();
    let script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done";
    let out = h
        .run_rm("fast-exit", &["/bin/sh", "-c", script])
        .assert_success();
    let lines = out.lines();
    assert_eq!(lines.len(), 3000, "{}", out.stderr);
    assert_eq!(lines.last(), Some(&"line2999"));
}

#[test]
fn detached_task_lifecycle_through_ctr() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run_detached("life", &["/bin/sleep", "1000"]);
    let (pid, status) = h.status("life").expect("listed");
    assert_eq!(status, "RUNNING");
    assert!(pid_alive(pid));

    let ps = h.ctr(&["tasks", "ps", "life"]).assert_success();
    assert!(ps.stdout.contains(&pid.to_string()), "{ps}");

    let exec = h.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "x",
        "life",
        "/bin/echo",
        "from-exec",
    ]);
    assert_eq!(exec.assert_success().stdout, "from-exec\n");

    h.ctr(&["tasks", "pause", "life"]).assert_success();
    h.wait_status("life", "PAUSED");
    h.ctr(&["tasks", "resume", "life"]).assert_success();
    h.wait_status("life", "RUNNING");

    let metrics = h.ctr(&["tasks", "metrics", "life"]).assert_success();
    assert!(metrics.stdout.contains("life"), "{metrics}");

    h.ctr(&["tasks", "rm", "life"])
        .assert_failure_containing("must be stopped");
    h.ctr(&["tasks", "kill", "-s", "KILL", "life"])
        .assert_success();
    h.wait_status("life", "STOPPED");
    h.ctr(&["tasks", "kill", "-s", "KILL", "life"])
        .assert_failure_containing("not found");
    h.ctr(&["tasks", "rm", "life"]).assert_success();
    h.ctr(&["containers", "rm", "life"]).assert_success();
    assert!(h.tasks().is_empty());
    assert!(!pid_alive(pid));
}

#[test]
fn exec_in_a_stopped_container_fails() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run_detached("stopped", &["/bin/sh", "-c", "exit 0"]);
    h.wait_status("stopped", "STOPPED");
    h.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "late",
        "stopped",
        "/bin/echo",
        "no",
    ])
    .assert_failure_containing("stopped");
    h.remove("stopped");
}

#[test]
fn task_errors_carry_containerd_codes() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.ctr(&[
        "containers",
        "create",
        "--rootfs",
        h.rootfs(),
        "notask",
        "/bin/sleep",
        "100",
    ])
    .assert_success();
    h.ctr(&["tasks", "kill", "notask"])
        .assert_failure_containing("not found");
    h.ctr(&["tasks", "start", "-d", "notask"]).assert_success();
    h.ctr(&["tasks", "start", "-d", "notask"])
        .assert_failure_containing("already exists");
    h.ctr(&["tasks", "kill", "nocontainer"])
        .assert_failure_containing("not found");
    h.remove("notask");
}

#[test]
fn kill_all_signals_every_process() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run_detached(
        "killall",
        &["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"],
    );
    h.wait_status("killall", "RUNNING");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.ctr(&["tasks", "ps", "killall"]).lines().len() < 4 {
        assert!(Instant::now() < deadline, "children never started");
        thread::sleep(Duration::from_millis(50));
    }
    let pids: Vec<u32> = h
        .ctr(&["tasks", "ps", "killall"])
        .lines()
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    h.ctr(&["tasks", "kill", "-a", "-s", "KILL", "killall"])
        .assert_success();
    h.wait_status("killall", "STOPPED");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "processes survived kill --all: {pids:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    h.remove("killall");
}

#[test]
fn task_events_reach_subscribers() {
    require_root!();
    require_ctr!();
    let h = harness();
    let mut events = h.daemon.ctr_stream(None, &["events"]).expect("ctr events");
    thread::sleep(Duration::from_millis(300));
    h.run_rm("evented", &["/bin/true"]).assert_success();
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        let seen = events.wait_for(|l| l.contains(topic), Duration::from_secs(10));
        assert!(seen.is_some(), "no {topic} event: {:?}", events.stdout());
    }
}

#[test]
fn berthd_publish_forwards_an_event() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        return;
    }
    use prost::Message;
    use std::io::Write;
    let h = harness();
    let mut events = h.daemon.ctr_stream(None, &["events"]).expect("ctr events");
    thread::sleep(Duration::from_millis(300));
    let event = berth_api::typeurl::pack(&berth_api::pb::events::TaskOom {
        container_id: "published".into(),
    });
    let mut child = std::process::Command::new(berth_testkit::berthd_bin().expect("berthd"))
        .arg("--address")
        .arg(h.daemon.address())
        .args(["publish", "--topic", "/tasks/oom", "--namespace", "default"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("berthd publish");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(&event.encode_to_vec())
        .expect("write event");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    let seen = events.wait_for(|l| l.contains("/tasks/oom"), Duration::from_secs(10));
    assert!(
        seen.is_some_and(|l| l.contains("published")),
        "{:?}",
        events.stdout()
    );
}

/// How many containers the leak test starts and removes at once.
const CONCURRENT: usize = 50;

#[test]
fn fifty_concurrent_containers_leak_nothing() {
    require_root!();
    require_ctr!();
    let h = harness();
    let outputs: Vec<CmdOutput> = thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let h = &h;
                s.spawn(move || {
                    h.run_rm(&format!("many-{i}"), &["/bin/echo", &format!("hello-{i}")])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    for (i, out) in outputs.into_iter().enumerate() {
        assert_eq!(out.assert_success().stdout, format!("hello-{i}\n"));
    }
    assert!(h.tasks().is_empty());
    assert!(h.ctr(&["containers", "ls", "-q"]).lines().is_empty());
    assert!(h.bundles().is_empty(), "bundles left: {:?}", h.bundles());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.shims().is_empty() {
        assert!(Instant::now() < deadline, "shims left: {:?}", h.shims());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        fifos("many-").is_empty(),
        "fifos left: {:?}",
        fifos("many-")
    );
    let runc_root = if testing_containerd() {
        "/run/containerd/runc/default"
    } else {
        "/run/berth/runc/default"
    };
    let runc_left: Vec<_> = std::fs::read_dir(runc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("many-"))
        .map(|e| e.path())
        .collect();
    assert!(runc_left.is_empty(), "runc state left: {runc_left:?}");
    assert!(
        berth_testkit::unmount_under(h.daemon.dir()).is_empty(),
        "mounts left"
    );
}

#[test]
fn restarted_daemon_adopts_running_containers() {
    require_root!();
    require_ctr!();
    let mut h = harness();
    let ids = ["adopt-a", "adopt-b", "adopt-c"];
    for id in ids {
        h.run_detached(id, &["/bin/sleep", "1000"]);
    }
    let before: Vec<(u32, String)> = ids.iter().map(|id| h.status(id).expect("task")).collect();
    h.daemon.kill9().expect("kill -9 the daemon");
    h.daemon.restart().expect("restart");
    for (id, (pid, _)) in ids.iter().zip(&before) {
        assert_eq!(h.status(id), Some((*pid, "RUNNING".to_string())), "{id}");
        assert!(pid_alive(*pid));
    }
    let exec = h.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "after",
        "adopt-b",
        "/bin/echo",
        "still-here",
    ]);
    assert_eq!(exec.assert_success().stdout, "still-here\n");
    h.ctr(&["tasks", "kill", "-s", "KILL", "adopt-a"])
        .assert_success();
    h.wait_status("adopt-a", "STOPPED");
    for id in ids {
        h.remove(id);
    }
    assert!(h.tasks().is_empty());
    assert!(h.bundles().is_empty());
}

/// Containers whose specs name one shim group (`io.containerd.runc.v2.group`,
/// as the CRI's sandbox id does for a pod) share one shim, as with
/// containerd's runc shim: it survives the daemon's restart, outlives the
/// container that started it, and exits with the group's last container.
#[test]
fn containers_of_one_group_share_one_shim() {
    require_root!();
    require_ctr!();
    let mut h = harness();
    let group = "io.containerd.runc.v2.group=pod-1";
    for id in ["group-a", "group-b"] {
        let rootfs = h.rootfs().to_string();
        h.ctr(&[
            "run",
            "-d",
            "--annotation",
            group,
            "--rootfs",
            &rootfs,
            id,
            "/bin/sleep",
            "1000",
        ])
        .assert_success();
    }
    let shim = h.shims();
    assert_eq!(shim.len(), 1, "one shim for the group: {shim:?}");
    h.run_detached("group-c", &["/bin/sleep", "1000"]);
    assert_eq!(
        h.shims().len(),
        2,
        "a container outside the group has its own"
    );
    h.remove("group-c");
    wait_for_shims(&h, 1);

    let before: Vec<(u32, String)> = ["group-a", "group-b"]
        .iter()
        .map(|id| h.status(id).expect("task"))
        .collect();
    h.daemon.kill9().expect("kill -9 the daemon");
    h.daemon.restart().expect("restart");
    for (id, (pid, _)) in ["group-a", "group-b"].iter().zip(&before) {
        assert_eq!(h.status(id), Some((*pid, "RUNNING".to_string())), "{id}");
    }

    // The container that started the shim goes; the shim stays for the other.
    h.remove("group-a");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(h.shims(), shim, "the group's shim serves group-b still");
    let exec = h.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "group-b",
        "/bin/echo",
        "here",
    ]);
    assert_eq!(exec.assert_success().stdout, "here\n");
    let (pid, status) = h.status("group-b").expect("task");
    assert_eq!((pid, status.as_str()), (before[1].0, "RUNNING"));

    h.remove("group-b");
    wait_for_shims(&h, 0);
    assert!(h.tasks().is_empty());
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

/// Waits (10 s at most) until the daemon has `want` shims.
#[track_caller]
fn wait_for_shims(h: &Harness, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.shims().len() != want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.shims().len(), want, "{:?}", h.shims());
}

#[test]
fn killed_shim_is_reported_as_exited() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run_detached("doomed", &["/bin/sleep", "1000"]);
    let (pid, _) = h.status("doomed").expect("task");
    let mut events = h.daemon.ctr_stream(None, &["events"]).expect("ctr events");
    thread::sleep(Duration::from_millis(300));
    let shims = h.shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the shim");
    let exit = events.wait_for(|l| l.contains("/tasks/exit"), Duration::from_secs(15));
    assert!(
        exit.is_some_and(|l| l.contains("doomed")),
        "{:?}",
        events.stdout()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.status("doomed").is_some() || pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "task still there: {:?}",
            h.status("doomed")
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(h.bundles().is_empty());
    h.remove("doomed");
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// A `ctr` left running in the background, its output going to files.
struct Background {
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn spawn(h: &Harness, name: &str, args: &[&str]) -> Background {
        let stdout = h.daemon.dir().join(format!("{name}.out"));
        let stderr = h.daemon.dir().join(format!("{name}.err"));
        let child = h
            .daemon
            .ctr_command(None)
            .expect("ctr")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn ctr");
        Background {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }

    /// Waits for the exit (a deadline, not a timing assertion: a hang fails).
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ctr") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ctr still running: {:?}",
                self.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn attach_reopens_the_stdio_of_a_detached_task() {
    require_root!();
    require_ctr!();
    let h = harness();
    // The task writes only once the test says so, after `ctr tasks attach`
    // has opened its FIFOs: output written while no client holds them open
    // is the shim's to drop once the task exits.
    let script = "while [ ! -e /tmp/attach-go ]; do sleep 0.05; done; \
                  echo out-after-attach; echo err-after-attach >&2; exit 5";
    h.run_detached("attached", &["/bin/sh", "-c", script]);
    let stdout_fifo = fifos("attached-stdout")
        .into_iter()
        .next()
        .expect("ctr's stdout FIFO of the detached task");

    let mut attach = Background::spawn(&h, "attach", &["tasks", "attach", "attached"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !has_open(attach.child.id(), &stdout_fifo) {
        let exited = attach.child.try_wait().is_ok_and(|s| s.is_some());
        assert!(
            Instant::now() < deadline && !exited,
            "ctr tasks attach never opened {}: {:?}",
            stdout_fifo.display(),
            attach.output()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let go = h.rootfs.join("tmp/attach-go");
    std::fs::write(&go, "").expect("signal the task");
    let status = attach.wait();
    let _ = std::fs::remove_file(&go);
    let (stdout, stderr) = attach.output();
    assert_eq!(status.code(), Some(5), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, "out-after-attach\n", "stderr: {stderr}");
    assert!(stderr.contains("err-after-attach"), "{stderr}");
    // attach deletes the task once it has exited, and removes the FIFOs.
    assert_eq!(h.status("attached"), None);
    assert!(fifos("attached-").is_empty(), "{:?}", fifos("attached-"));
    h.remove("attached");
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

#[test]
fn waiting_client_fails_as_with_containerd_when_the_shim_dies() {
    require_root!();
    require_ctr!();
    let h = harness();
    // A foreground `ctr run` waits for the task's exit through Tasks.Wait.
    let mut waiting = Background::spawn(
        &h,
        "waiting",
        &[
            "run",
            "--rootfs",
            h.rootfs(),
            "waited",
            "/bin/sleep",
            "1000",
        ],
    );
    h.wait_status("waited", "RUNNING");
    let shims = h.shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the shim");
    // containerd 1.6 answers the Wait with its lost-connection error
    // (Unknown, "ttrpc: closed"): ctr prints it and exits 1. The task's exit
    // reaches event subscribers (see killed_shim_is_reported_as_exited).
    let status = waiting.wait();
    let (stdout, stderr) = waiting.output();
    assert_eq!(status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("code = Unknown desc = ttrpc: closed"),
        "{stderr}"
    );
    // The daemon cleans up after the dead shim (its `delete`, the bundle).
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.status("waited").is_some() || !h.bundles().is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            h.status("waited"),
            h.bundles()
        );
        thread::sleep(Duration::from_millis(50));
    }
    h.remove("waited");
}

#[test]
fn run_with_a_terminal_through_a_pty() {
    require_root!();
    require_ctr!();
    let h = harness();
    let ctr = berth_testkit::ctr_bin().expect("ctr");
    let line = format!(
        "{} --address {} run -t --rm --rootfs {} tty-run /bin/sh -c 'tty; echo $TERM; exit 4'",
        ctr.display(),
        h.daemon.address().display(),
        h.rootfs()
    );
    // `script` gives ctr a pseudo-terminal, as a user's shell would.
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null());
    let out = berth_testkit::run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("script");
    assert_eq!(out.code(), Some(4), "{out}");
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    assert!(out.stdout.contains("xterm"), "{out}");
}

/// A `runc create` that fails after the container's cgroup was made (as
/// runc does when its `runc init` is killed mid-create and the init's
/// later stage outlives runc's clean-up) leaves no cgroup behind: berth's
/// shim removes what runc left.
#[test]
fn a_failed_create_leaves_no_cgroup_behind() {
    require_root!();
    require_ctr!();
    if use_runc_shim() || testing_containerd() {
        return;
    }
    let h = harness();
    let (ns, id) = ("failedcreate", "cgroup-left");
    let hierarchies: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect();
    assert!(!hierarchies.is_empty(), "no cgroup hierarchy mounted");
    let wrapper = h.daemon.dir().join("runc-failing-create");
    let dirs: Vec<String> = hierarchies
        .iter()
        .map(|m| m.join(ns).join(id).display().to_string())
        .collect();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = create ]; then\n    \
             mkdir -p {}\n    echo 'init killed mid-create' >&2\n    exit 1\n  fi\ndone\n\
             exec /usr/sbin/runc \"$@\"\n",
            dirs.join(" ")
        ),
    )
    .expect("write wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let wrapper = wrapper.display().to_string();
    h.daemon
        .ctr_ns(
            ns,
            &[
                "run",
                "--rm",
                "--runc-binary",
                &wrapper,
                "--rootfs",
                h.rootfs(),
                id,
                "/bin/true",
            ],
        )
        .assert_failure_containing("init killed mid-create");
    let _ = h.daemon.try_ctr(Some(ns), &["containers", "rm", id]);
    let left: Vec<&String> = dirs.iter().filter(|d| Path::new(d).exists()).collect();
    for dir in &left {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
