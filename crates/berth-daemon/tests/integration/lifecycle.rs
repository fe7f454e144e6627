//! Starting, stopping and crashing the daemon around its socket.

use std::os::unix::fs::FileTypeExt;
use std::process::Command;
use std::time::Duration;

use berth_testkit::{berthd_bin, require_ctr, run_with_timeout, testing_containerd, Daemon};

use crate::{ctr_create, ctr_ids, daemon, rootfs};

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    require_ctr!();
    if testing_containerd() {
        return; // containerd unlinks a live socket; this is berth's contract.
    }
    let daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "first").assert_success();
    let other = tempfile::tempdir().expect("tempdir");
    let bin = berthd_bin().expect("berthd binary");
    let mut second = Command::new(bin);
    second
        .arg("--address")
        .arg(daemon.address())
        .arg("--root")
        .arg(other.path().join("root"))
        .arg("--state")
        .arg(other.path().join("state"));
    let out = run_with_timeout(&mut second, Duration::from_secs(30))
        .expect("the second berthd must exit by itself")
        .assert_failure();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(daemon.address().to_str().expect("utf-8")),
        "the refusal should name the socket:\n{out}"
    );
    assert!(
        daemon
            .address()
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_socket()),
        "the first daemon's socket is gone"
    );
    assert_eq!(ctr_ids(&daemon, "default"), ["first"], "{}", daemon.log());
    daemon.version().expect("the first daemon still answers");
}

#[test]
fn a_stale_socket_from_a_killed_daemon_is_replaced() {
    require_ctr!();
    let mut daemon = daemon();
    let rootfs = rootfs(&daemon);
    ctr_create(&daemon, "default", &rootfs, "survivor").assert_success();
    daemon.kill9().expect("kill -9");
    assert!(
        daemon.address().exists(),
        "SIGKILL leaves the socket file behind"
    );
    daemon.restart().expect("restart over a stale socket");
    assert_eq!(ctr_ids(&daemon, "default"), ["survivor"]);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut daemon = daemon();
    let status = daemon.stop().expect("stop");
    assert!(status.success(), "exit status {status}\n{}", daemon.log());
    daemon.restart().expect("restart after a clean stop");
    daemon.version().expect("version after restart");
}

#[test]
fn a_bad_config_value_is_refused_naming_file_line_and_key() {
    if testing_containerd() {
        return; // berth's messages.
    }
    let err = Daemon::builder()
        .config("version = 2\n[grpc]\n  max_recv_message_size = \"big\"\n")
        .ready_timeout(Duration::from_secs(10))
        .start()
        .expect_err("berthd must refuse a bad value");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("config.toml line 3: key grpc.max_recv_message_size"),
        "{msg}"
    );
    assert!(
        msg.contains("exited"),
        "berthd should exit, not hang:\n{msg}"
    );
}
