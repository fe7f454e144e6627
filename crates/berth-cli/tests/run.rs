//! `berth run` and `berth tasks` against a private berthd running real
//! containers through its shim and runc.
//!
//! The busybox image is built by berth-testkit and imported (and unpacked)
//! with Debian's `ctr images import`; `--rootfs` runs use a busybox
//! directory. Every `berth` command here uses a FIFO directory inside the
//! daemon's temporary directory, so the tests can check that no FIFO is
//! left behind; a [`Harness`] removes every task and container on drop,
//! failing or not.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{
    busybox_oci_archive, busybox_rootfs, require_ctr, require_root, task_rows, wait_task_status,
    ArchiveNames, CmdOutput, Daemon, TaskRow,
};

const BASE: &str = "docker.io/library/busybox";
const IMAGE: &str = "docker.io/library/busybox:latest";

struct Harness {
    daemon: Daemon,
    fifo_dir: String,
}

fn harness() -> Harness {
    let daemon = Daemon::start().unwrap_or_else(|e| panic!("start daemon: {e:#}"));
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: None,
    })
    .expect("busybox archive");
    let path = daemon.dir().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    daemon
        .ctr(&[
            "images",
            "import",
            "--base-name",
            BASE,
            path.to_str().expect("utf-8"),
        ])
        .assert_success();
    let fifo_dir = daemon.dir().join("fifo").display().to_string();
    Harness { daemon, fifo_dir }
}

impl Harness {
    /// `berth run --fifo-dir DIR args…`.
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["run", "--fifo-dir", &self.fifo_dir];
        all.extend_from_slice(args);
        self.daemon.berth(&all)
    }

    /// `berth tasks SUB --fifo-dir DIR args…` for the subcommands that
    /// take it, else `berth tasks SUB args…`.
    fn tasks(&self, sub: &str, args: &[&str]) -> CmdOutput {
        let mut all = vec!["tasks", sub];
        if matches!(sub, "exec" | "start") {
            all.extend_from_slice(&["--fifo-dir", &self.fifo_dir]);
        }
        all.extend_from_slice(args);
        self.daemon.berth(&all)
    }

    /// `berth tasks ls` as (id, pid, status).
    fn rows(&self) -> Vec<TaskRow> {
        let out = self.tasks("ls", &[]).assert_success();
        assert_eq!(
            out.lines()
                .first()
                .map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["TASK", "PID", "STATUS"]),
            "{out}"
        );
        task_rows(&out)
    }

    fn listed(&self) -> Vec<(String, u32, String)> {
        self.rows()
            .into_iter()
            .map(|r| (r.id, r.pid, r.status))
            .collect()
    }

    fn status(&self, id: &str) -> Option<(u32, String)> {
        self.listed()
            .into_iter()
            .find(|(t, _, _)| t == id)
            .map(|(_, pid, status)| (pid, status))
    }

    #[track_caller]
    fn wait_status(&self, id: &str, want: &str) {
        wait_task_status(|| self.rows(), id, want, Duration::from_secs(20));
    }

    fn fifos_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.fifo_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    fn containers(&self) -> Vec<String> {
        let out = self.daemon.berth(&["containers", "ls", "-q"]);
        out.lines().iter().map(|l| l.to_string()).collect()
    }

    fn rootfs(&self) -> String {
        let dir = self.daemon.dir().join("rootfs");
        busybox_rootfs(&dir).expect("busybox rootfs");
        dir.display().to_string()
    }
}

impl Drop for Harness {
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
                thread::sleep(Duration::from_millis(100));
            }
            let _ = self.daemon.try_ctr(None, &["containers", "rm", id]);
        }
    }
}

#[test]
fn run_rm_exits_with_the_containers_code() {
    require_root!();
    require_ctr!();
    let h = harness();
    let out = h.run(&["--rm", IMAGE, "exit-three", "sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    assert!(h.containers().is_empty(), "{:?}", h.containers());
    assert!(h.listed().is_empty());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
    h.daemon
        .ctr(&["snapshots", "info", "exit-three"])
        .assert_failure();
}

#[test]
fn run_rootfs_prints_output() {
    require_root!();
    require_ctr!();
    let h = harness();
    let rootfs = h.rootfs();
    let out = h
        .run(&["--rm", "--rootfs", &rootfs, "echo-hi", "echo", "hi"])
        .assert_success();
    assert_eq!(out.stdout, "hi\n");
    assert!(h.containers().is_empty());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn run_output_of_a_fast_exit_is_complete_and_options_apply() {
    require_root!();
    require_ctr!();
    let h = harness();
    let script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; echo done >&2";
    let out = h
        .run(&["--rm", IMAGE, "fast", "sh", "-c", script])
        .assert_success();
    let lines = out.lines();
    assert_eq!(lines.len(), 3000, "{}", out.stderr);
    assert_eq!(lines.last(), Some(&"line2999"));
    assert_eq!(out.stderr, "done\n");

    let out = h
        .run(&[
            "--rm",
            "--env",
            "GREETING=hello",
            "--cwd",
            "/tmp",
            "--user",
            "1:2",
            "--label",
            "a=b",
            IMAGE,
            "opts",
            "sh",
            "-c",
            "echo $GREETING $(pwd) $(id -u) $(id -g)",
        ])
        .assert_success();
    assert_eq!(out.stdout, "hello /tmp 1 2\n");

    // stdin is /dev/null here: its end reaches the container, so cat ends.
    let out = h.run(&["--rm", IMAGE, "cat", "cat"]).assert_success();
    assert_eq!(out.stdout, "");
    assert!(h.containers().is_empty());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn detached_run_and_tasks_lifecycle() {
    require_root!();
    require_ctr!();
    let h = harness();
    let out = h
        .run(&["-d", IMAGE, "life", "sleep", "1000"])
        .assert_success();
    assert_eq!(out.stdout, "");
    let (pid, status) = h.status("life").expect("listed");
    assert_eq!(status, "RUNNING");
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    let quiet = h.tasks("ls", &["-q"]).assert_success();
    assert_eq!(quiet.stdout, "life\n");

    let ps = h.tasks("ps", &["life"]).assert_success();
    assert_eq!(
        ps.lines()
            .first()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["PID", "INFO"])
    );
    assert!(
        ps.lines()
            .iter()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );

    let exec = h
        .tasks("exec", &["--exec-id", "x", "life", "echo", "from-exec"])
        .assert_success();
    assert_eq!(exec.stdout, "from-exec\n");
    let exec = h.tasks("exec", &["--exec-id", "y", "life", "sh", "-c", "exit 5"]);
    assert_eq!(exec.code(), Some(5), "{exec}");

    h.tasks("pause", &["life"]).assert_success();
    h.wait_status("life", "PAUSED");
    h.tasks("resume", &["life"]).assert_success();
    h.wait_status("life", "RUNNING");

    let metrics = h.tasks("metrics", &["life"]).assert_success();
    assert!(metrics.stdout.starts_with("ID"), "{metrics}");
    assert!(metrics.stdout.contains("life"), "{metrics}");
    // cgroups v1 (this kind of host) as ctr's table; other data by type.
    assert!(
        metrics.stdout.contains("pids.current") || metrics.stdout.contains("DATA"),
        "{metrics}"
    );

    h.tasks("rm", &["life"])
        .assert_failure_containing("must be stopped");
    h.daemon
        .berth(&["containers", "rm", "life"])
        .assert_failure();
    h.tasks("kill", &["-s", "KILL", "life"]).assert_success();
    h.wait_status("life", "STOPPED");
    h.tasks("kill", &["-s", "KILL", "life"])
        .assert_failure_containing("not found");
    let rm = h.tasks("rm", &["life"]).assert_success();
    assert!(rm.stderr.contains("exit code 137"), "{rm}");
    h.daemon
        .berth(&["containers", "rm", "life"])
        .assert_success();
    assert!(h.listed().is_empty());
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn tasks_start_and_rm_force() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.daemon
        .ctr(&["containers", "create", IMAGE, "started", "sleep", "1000"])
        .assert_success();
    h.tasks("start", &["-d", "started"]).assert_success();
    h.wait_status("started", "RUNNING");
    h.tasks("start", &["-d", "started"])
        .assert_failure_containing("already exists");
    h.tasks("rm", &["-f", "started"]).assert_success();
    assert!(h.listed().is_empty());

    // In the foreground, `tasks start` prints the output, waits and exits
    // with the code.
    h.daemon
        .ctr(&["containers", "create", IMAGE, "fg", "echo", "fg"])
        .assert_success();
    let out = h.tasks("start", &["fg"]).assert_success();
    assert_eq!(out.stdout, "fg\n");
    h.daemon
        .ctr(&["containers", "create", IMAGE, "fails", "false"])
        .assert_success();
    let out = h.tasks("start", &["fails"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(h.listed().is_empty());
    h.daemon
        .berth(&["containers", "rm", "started", "fg", "fails"])
        .assert_success();
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn run_errors_are_clear() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run(&["--rm", "example.com/missing:1", "nope", "true"])
        .assert_failure_containing("not found");
    h.run(&["-d", "--rm", IMAGE, "both", "true"])
        .assert_failure_containing("cannot be specified together");
    h.run(&["-d", IMAGE, "dup", "sleep", "1000"])
        .assert_success();
    h.run(&["-d", IMAGE, "dup", "sleep", "1000"])
        .assert_failure_containing("already exists");
    h.tasks("kill", &["--all", "-s", "KILL", "dup"])
        .assert_success();
    h.wait_status("dup", "STOPPED");
    h.tasks("rm", &["dup"]).assert_success();
    h.daemon
        .berth(&["containers", "rm", "dup"])
        .assert_success();
    assert!(h.containers().is_empty());
}

#[test]
fn attach_follows_a_detached_task_to_its_exit() {
    require_root!();
    require_ctr!();
    let h = harness();
    h.run(&[
        "-d",
        IMAGE,
        "ticker",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ])
    .assert_success();
    let mut attach = h
        .daemon
        .berth_stream(None, &["tasks", "attach", "ticker"])
        .expect("berth tasks attach");
    let tick = attach.wait_for(|l| l == "tick", Duration::from_secs(20));
    assert!(tick.is_some(), "{}", attach.report());
    h.tasks("kill", &["-s", "KILL", "ticker"]).assert_success();
    let deadline = Instant::now() + Duration::from_secs(20);
    while attach.is_running() {
        assert!(
            Instant::now() < deadline,
            "attach did not end: {}",
            attach.report()
        );
        thread::sleep(Duration::from_millis(50));
    }
    h.tasks("rm", &["ticker"]).assert_success();
    h.daemon
        .berth(&["containers", "rm", "ticker"])
        .assert_success();
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn run_with_a_terminal() {
    require_root!();
    require_ctr!();
    let h = harness();
    // `script` gives berth a pty as its stdin and stdout, as a user's
    // terminal would.
    let berth = berth_testkit::berth_bin().expect("berth binary");
    let command = format!(
        "{} --address {} run -t --rm --fifo-dir {} {IMAGE} tty-run sh -c 'tty; echo on-tty'",
        berth.display(),
        h.daemon.address().display(),
        h.fifo_dir,
    );
    let out = berth_testkit::run_with_timeout(
        std::process::Command::new("script").args(["-qec", &command, "/dev/null"]),
        berth_testkit::DEFAULT_COMMAND_TIMEOUT,
    )
    .expect("script")
    .assert_success();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    // The pty turns "\n" into "\r\n". `script` answers the end of its own
    // stdin with an end-of-file character, which berth's raw terminal passes
    // on and the container's tty may echo (as `^@`) before the output.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_end_matches('\r').ends_with("on-tty")),
        "{out:?}"
    );
    assert!(h.containers().is_empty());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}

#[test]
fn foreground_run_forwards_signals() {
    require_root!();
    require_ctr!();
    let h = harness();
    let berth = berth_testkit::berth_bin().expect("berth binary");
    let mut child = std::process::Command::new(berth)
        .args(["--address", h.daemon.address().to_str().expect("utf-8")])
        .args(["run", "--rm", "--fifo-dir", &h.fifo_dir, IMAGE, "trapper"])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth run");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    if ready.as_deref() != Ok("ready") {
        let _ = child.kill();
        panic!("container never got ready: {ready:?}");
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth run did not exit after SIGTERM");
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(42));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).as_deref(),
        Ok("got-term")
    );
    assert!(h.containers().is_empty());
    assert!(h.fifos_left().is_empty(), "{:?}", h.fifos_left());
}
