//! No shim is orphaned by a daemon that dies at the wrong moment.
//!
//! A task Delete answers before the shim is sent Shutdown (it goes in the
//! background). A berthd killed inside that window used to leave the shim
//! idling forever: no bundle, nothing in memory. The next berthd must find
//! and stop it. The test hook `BERTH_TEST_RETIRE_DELAY_MS` holds the window
//! open so the kill lands inside it. And a shim whose daemon never comes
//! back idles: no CPU, no growth, its exit kept for a daemon that returns.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::{
    busybox_rootfs, require_ctr, require_root, task_rows, testing_containerd, wait_task_status,
    Daemon,
};

fn alive(pid: u32) -> bool {
    // A zombie has exited: only a running or sleeping process counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after
        .split(' ')
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid")
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_restart_stops_the_shim_of_a_task_deleted_just_before_a_crash() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        eprintln!("skipping: the retire window is berth's");
        return;
    }
    let mut daemon = Daemon::builder()
        .env("BERTH_TEST_RETIRE_DELAY_MS", "60000")
        .start()
        .expect("start berthd");
    let rootfs = daemon.dir().join("rootfs");
    busybox_rootfs(&rootfs).expect("rootfs");
    let rootfs = rootfs.to_str().expect("utf-8");
    daemon
        .ctr(&[
            "run",
            "-d",
            "--rootfs",
            rootfs,
            "orphan",
            "/bin/sleep",
            "300",
        ])
        .assert_success();
    let rows = task_rows(&daemon.ctr(&["tasks", "ls"]).assert_success());
    let pid = rows[0].pid;
    let shim = parent_of(pid);
    daemon
        .ctr(&["tasks", "kill", "-s", "KILL", "orphan"])
        .assert_success();
    let list = || task_rows(&daemon.ctr(&["tasks", "ls"]).assert_success());
    wait_task_status(list, "orphan", "STOPPED", Duration::from_secs(10));
    daemon.ctr(&["tasks", "rm", "orphan"]).assert_success();

    let record = daemon
        .state()
        .join("io.containerd.runtime.v2.task/.retiring/default@orphan");
    assert!(record.exists(), "the retiring shim is recorded");
    assert!(alive(shim), "the shim waits for its Shutdown");
    daemon.kill9().expect("kill -9 berthd");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(shim), "the shim outlives the daemon");

    daemon.restart().expect("restart berthd");
    assert!(
        wait_gone(shim, Duration::from_secs(15)),
        "the restarted daemon stops the orphaned shim {shim}\n{}",
        daemon.log()
    );
    assert!(!Path::new(&record).exists(), "the record is gone");
    // The id is free again.
    daemon.ctr(&["containers", "rm", "orphan"]).assert_success();
    daemon
        .ctr(&["run", "--rm", "--rootfs", rootfs, "orphan", "/bin/true"])
        .assert_success();
    // That run's shim, too, waits out the test hook's delay for its
    // Shutdown: a last restart stops it, so the test leaves no process.
    daemon.kill9().expect("kill -9 berthd");
    daemon.restart().expect("restart berthd");
    let address = daemon.address().display().to_string();
    let shims = || {
        std::process::Command::new("pgrep")
            .args([
                "-f",
                &format!("containerd-shim-berth-v2 .*-address {address}"),
            ])
            .output()
            .expect("pgrep")
            .stdout
    };
    let start = Instant::now();
    while !shims().is_empty() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shims().is_empty(), "a shim of this daemon is left");
}

/// The other window: berthd killed after it started a task's shim and
/// before the shim's Create. The bundle is there and the shim answers, but
/// it has no task; the restarted daemon used to clean up the bundle as for a
/// dead shim and leave the shim idling forever (found by the soak). The test
/// makes that state by hand: a bundle and a shim started in it, as berthd's
/// create does, with no Create.
#[test]
fn a_restart_stops_a_shim_whose_task_was_never_created() {
    require_root!();
    if testing_containerd() {
        eprintln!("skipping: berth's bundle layout");
        return;
    }
    let mut daemon = Daemon::start().expect("start berthd");
    let berthd = berth_testkit::berthd_bin().expect("berthd");
    let shim_bin = berthd.with_file_name("containerd-shim-berth-v2");
    let bundle = daemon
        .state()
        .join("io.containerd.runtime.v2.task/default/uncreated");
    std::fs::create_dir_all(&bundle).expect("bundle");
    std::fs::write(bundle.join("config.json"), "{}").expect("config.json");
    std::fs::write(
        bundle.join("shim-binary-path"),
        shim_bin.to_str().expect("utf-8"),
    )
    .expect("shim-binary-path");
    let out = std::process::Command::new(&shim_bin)
        .args(["-namespace", "default", "-address"])
        .arg(daemon.address())
        .arg("-publish-binary")
        .arg(&berthd)
        .args(["-id", "uncreated", "start"])
        .current_dir(&bundle)
        .env(
            "TTRPC_ADDRESS",
            format!("{}.ttrpc", daemon.address().display()),
        )
        .env("NAMESPACE", "default")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("shim start");
    assert!(out.status.success(), "shim start: {out:?}");
    let shims = berth_testkit::shims_of(daemon.address());
    assert_eq!(shims.len(), 1, "one shim serves the bundle: {shims:?}");
    let shim = shims[0].pid as u32;

    daemon.kill9().expect("kill -9 berthd");
    daemon.restart().expect("restart berthd");
    assert!(
        wait_gone(shim, Duration::from_secs(15)),
        "the restarted daemon stops the shim {shim} that has no task\n{}",
        daemon.log()
    );
    assert!(!bundle.exists(), "the bundle is removed");
}

/// `utime + stime` of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_shim_whose_daemon_never_returns_neither_spins_nor_grows() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        eprintln!("skipping: berth's shim is the subject");
        return;
    }
    let mut daemon = Daemon::start().expect("start berthd");
    let rootfs = daemon.dir().join("rootfs");
    busybox_rootfs(&rootfs).expect("rootfs");
    let rootfs = rootfs.to_str().expect("utf-8");
    // Output keeps coming after the daemon is gone, then the container
    // exits with nobody to tell: the shim has an exit event it cannot
    // publish and output nobody reads.
    daemon
        .ctr(&[
            "run",
            "-d",
            "--rootfs",
            rootfs,
            "lonely",
            "/bin/sh",
            "-c",
            "i=0; while [ $i -lt 20 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; exit 3",
        ])
        .assert_success();
    let rows = task_rows(&daemon.ctr(&["tasks", "ls"]).assert_success());
    let shim = parent_of(rows[0].pid);
    daemon.kill9().expect("kill -9 berthd");
    std::thread::sleep(Duration::from_secs(4)); // the container has exited
    let (ticks, rss) = (cpu_ticks(shim), rss_kb(shim));
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        alive(shim),
        "the shim keeps the exit for a daemon that may return"
    );
    let spent = cpu_ticks(shim) - ticks;
    assert!(
        spent <= 5,
        "the shim used {spent} ticks of CPU in 10 s alone"
    );
    let grown = rss_kb(shim).saturating_sub(rss);
    assert!(grown <= 256, "the shim grew by {grown} kB in 10 s alone");

    // A daemon that does come back finds the exit.
    daemon.restart().expect("restart berthd");
    let list = || task_rows(&daemon.ctr(&["tasks", "ls"]).assert_success());
    wait_task_status(list, "lonely", "STOPPED", Duration::from_secs(10));
    let deleted = daemon.ctr(&["tasks", "rm", "lonely"]);
    assert!(deleted.stderr.contains("exit code 3"), "{deleted:?}");
    daemon.ctr(&["containers", "rm", "lonely"]).assert_success();
    assert!(
        wait_gone(shim, Duration::from_secs(15)),
        "the shim exits after delete"
    );
}
