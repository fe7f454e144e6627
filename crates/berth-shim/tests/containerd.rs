//! containerd 1.6 (Debian's) running containers through
//! `containerd-shim-berth-v2`: the shim protocol as containerd speaks it.
//! Root only; each test has its own daemon and namespace.

mod common;

use std::time::Duration;

use berth_testkit::require_root;
use common::Containerd;

fn containerd() -> Option<Containerd> {
    if which("containerd").is_none() || which("runc").is_none() {
        assert!(!berth_testkit::in_ci(), "CI needs containerd and runc");
        eprintln!("skipping: containerd or runc is not installed");
        return None;
    }
    Some(Containerd::start())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.exists())
    })
}

#[test]
fn run_rm_prints_output_and_returns_exit_codes() {
    require_root!();
    let Some(c) = containerd() else { return };
    let out = c.run(&["--rm"], "echo", &["/bin/echo", "hi"]);
    assert!(out.success(), "{out:?}\n{}", c.log());
    assert_eq!(out.stdout, "hi\n");
    let out = c.run(&["--rm"], "exit3", &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(out.code(), Some(3), "{out:?}");
    c.wait_no_shims();
    assert!(c.ctr(&["tasks", "ls", "-q"]).stdout.trim().is_empty());
}

#[test]
fn output_of_fast_exiting_container_is_complete() {
    require_root!();
    let Some(c) = containerd() else { return };
    let script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; echo err >&2";
    for n in 0..5 {
        let id = format!("fast{n}");
        let out = c.run(&["--rm"], &id, &["/bin/sh", "-c", script]);
        assert!(out.success(), "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 3000, "run {n} lost output");
        assert_eq!(lines.last(), Some(&"line2999"));
        assert_eq!(out.stderr.trim(), "err");
    }
}

#[test]
fn detached_task_lifecycle_exec_pause_metrics_kill() {
    require_root!();
    let Some(c) = containerd() else { return };
    let mut events = c.events();
    let out = c.run(&["-d"], "life", &["/bin/sleep", "1000"]);
    assert!(out.success(), "{out:?}\n{}", c.log());
    c.wait_status("life", |s| s == Some("RUNNING"));

    let ps = c.ctr(&["tasks", "ps", "life"]).assert_success();
    assert_eq!(ps.stdout.lines().count(), 2, "{}", ps.stdout);

    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "x1",
        "life",
        "/bin/sh",
        "-c",
        "echo fromexec; exit 5",
    ]);
    assert_eq!(out.stdout, "fromexec\n");
    assert_eq!(out.code(), Some(5), "{out:?}");

    c.ctr(&["tasks", "pause", "life"]).assert_success();
    c.wait_status("life", |s| s == Some("PAUSED"));
    c.ctr(&["tasks", "resume", "life"]).assert_success();
    c.wait_status("life", |s| s == Some("RUNNING"));

    let m = c.ctr(&["tasks", "metrics", "life"]).assert_success();
    assert!(
        m.stdout.contains("memory.usage_in_bytes") || m.stdout.contains("memory.usage"),
        "{}",
        m.stdout
    );
    assert!(m.stdout.contains("pids.current"), "{}", m.stdout);

    c.ctr(&["tasks", "kill", "-s", "KILL", "life"])
        .assert_success();
    c.wait_status("life", |s| s == Some("STOPPED"));
    c.ctr(&["tasks", "kill", "-s", "KILL", "life"])
        .assert_failure();
    c.ctr(&["tasks", "rm", "life"]).assert_success();
    c.ctr(&["containers", "rm", "life"]).assert_success();

    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        let seen = events.wait_for(|l| l.contains(topic), Duration::from_secs(10));
        assert!(seen.is_some(), "no {topic} event: {}", events.report());
    }
    let lines = events.stdout().to_vec();
    let pos = |t: &str| {
        lines
            .iter()
            .position(|l| l.contains(t))
            .unwrap_or(usize::MAX)
    };
    assert!(
        pos("/tasks/start") < pos("/tasks/exit"),
        "exit before start: {lines:?}"
    );
    c.wait_no_shims();
}

#[test]
fn kill_all_stops_the_task() {
    require_root!();
    let Some(c) = containerd() else { return };
    c.run(
        &["-d"],
        "all",
        &["/bin/sh", "-c", "sleep 1000 & sleep 1000"],
    )
    .assert_success();
    c.wait_status("all", |s| s == Some("RUNNING"));
    c.ctr(&["tasks", "kill", "-a", "-s", "KILL", "all"])
        .assert_success();
    c.wait_status("all", |s| s == Some("STOPPED"));
}

#[test]
fn tty_run_goes_through_a_pty() {
    require_root!();
    let Some(c) = containerd() else { return };
    if which("script").is_none() {
        eprintln!("skipping: script(1) is not installed");
        return;
    }
    let mut ctr = c.command();
    let rootfs = c.rootfs();
    ctr.args([
        "run",
        "-t",
        "--rm",
        "--runtime",
        common::RUNTIME,
        "--rootfs",
    ])
    .arg(&rootfs)
    .args(["tty1", "/bin/sh", "-c", "'tty; echo done'"]);
    let line = format!("{:?}", ctr).replace('"', "");
    let out = berth_testkit::run_with_timeout(
        std::process::Command::new("script").args(["-qec", &line, "/dev/null"]),
        Duration::from_secs(60),
    )
    .expect("script");
    assert!(out.stdout.contains("/dev/pts/"), "{out:?}\n{}", c.log());
    assert!(out.stdout.contains("done"), "{out:?}");
}

#[test]
fn killed_shim_is_reported_as_exited() {
    require_root!();
    let Some(c) = containerd() else { return };
    let mut events = c.events();
    c.run(&["-d"], "k9", &["/bin/sleep", "1000"])
        .assert_success();
    c.wait_status("k9", |s| s == Some("RUNNING"));
    let pids = c.shim_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill shim");
    let exit = events.wait_for(|l| l.contains("/tasks/exit"), Duration::from_secs(15));
    assert!(
        exit.is_some(),
        "no exit event: {}\n{}",
        events.report(),
        c.log()
    );
    assert!(
        exit.unwrap_or_default().contains("137"),
        "{}",
        events.report()
    );
    c.wait_status("k9", |s| s != Some("RUNNING"));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounts.contains(&c.dir.path().display().to_string()),
        "mounts left"
    );
}

#[test]
fn out_of_memory_is_reported() {
    require_root!();
    let Some(c) = containerd() else { return };
    if !std::path::Path::new("/sys/fs/cgroup/memory/cgroup.event_control").exists() {
        eprintln!("skipping: no cgroup v1 memory controller");
        return;
    }
    let mut events = c.events();
    let out = c.run(
        &["--rm", "--memory-limit", "16777216"],
        "oom",
        &["/bin/sh", "-c", "a=aaaaaaaa; while true; do a=$a$a; done"],
    );
    assert_eq!(out.code(), Some(137), "{out:?}");
    let oom = events.wait_for(|l| l.contains("/tasks/oom"), Duration::from_secs(10));
    assert!(oom.is_some(), "no oom event: {}", events.report());
}

#[test]
fn file_and_binary_log_uris() {
    require_root!();
    let Some(c) = containerd() else { return };
    let dir = c.dir.path().to_path_buf();
    let file = dir.join("out.log");
    let uri = format!("file://{}", file.display());
    let out = c.run(
        &["--rm", "--log-uri", &uri],
        "logfile",
        &["/bin/sh", "-c", "echo tofile; echo err >&2"],
    );
    assert!(out.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).expect("log file");
    assert!(text.contains("tofile") && text.contains("err"), "{text}");

    let logger = dir.join("logger.sh");
    let captured = dir.join("captured");
    std::fs::write(
        &logger,
        format!("#!/bin/sh\nexec 5>&-\ncat <&3 > {0}\n", captured.display()),
    )
    .expect("logger");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&logger)
        .status()
        .expect("chmod");
    let uri = format!("binary://{}", logger.display());
    let out = c.run(
        &["--rm", "--log-uri", &uri],
        "logbin",
        &["/bin/echo", "tobinary"],
    );
    assert!(out.success(), "{out:?}\n{}", c.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&captured).unwrap_or_default() != "tobinary\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "logger did not capture the output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
