//! berthd as a systemd service sees it: `Type=notify` readiness over
//! `$NOTIFY_SOCKET`, and `--version`. No systemd is needed: the test plays
//! systemd's part with its own datagram socket.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::Duration;

use berth_testkit::{testing_containerd, Daemon};

/// The next notification, or a failure after `timeout`.
fn next_state(receiver: &UnixDatagram, timeout: Duration) -> String {
    receiver
        .set_read_timeout(Some(timeout))
        .expect("set timeout");
    let mut buf = [0u8; 256];
    let n = receiver.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn assert_ready_then_stopping(receiver: &UnixDatagram, notify_socket: &str) {
    let mut daemon = Daemon::builder()
        .env("NOTIFY_SOCKET", notify_socket)
        .start()
        .expect("start berthd");
    // `start` returns once Version answers, so READY=1 is already queued.
    let ready = next_state(receiver, Duration::from_secs(5));
    assert_eq!(ready, "READY=1", "{}", daemon.log());
    let status = daemon.stop().expect("stop berthd");
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    let stopping = next_state(receiver, Duration::from_secs(5));
    assert_eq!(stopping, "STOPPING=1", "{}", daemon.log());
    receiver.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    assert!(
        receiver.recv(&mut buf).is_err(),
        "an unexpected further notification"
    );
}

#[test]
fn notifies_ready_then_stopping_on_a_path_socket() {
    if testing_containerd() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let receiver = UnixDatagram::bind(&path).expect("bind the notify socket");
    assert_ready_then_stopping(&receiver, path.to_str().expect("utf-8 path"));
}

#[test]
fn notifies_ready_then_stopping_on_an_abstract_socket() {
    if testing_containerd() {
        return;
    }
    let name = format!("berth-test-notify-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let receiver = UnixDatagram::bind_addr(&address).expect("bind the notify socket");
    assert_ready_then_stopping(&receiver, &format!("@{name}"));
}

#[test]
fn version_flag_prints_version_and_revision() {
    let bin = berth_testkit::berthd_bin().expect("berthd binary");
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("run berthd");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{text:?}");
    assert_eq!(
        words[..2],
        ["berthd", env!("CARGO_PKG_VERSION")],
        "{text:?}"
    );
    assert!(
        words[2] == "unknown" || words[2].chars().all(|c| c.is_ascii_hexdigit()),
        "revision {:?} is neither a git hash nor unknown",
        words[2]
    );
}

/// `packaging/berthd.service`, the unit the Debian package installs.
fn unit_file() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/berthd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_unit_is_shaped_like_containerds() {
    let unit = unit_file();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for directive in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=process",
        "LimitNOFILE=infinity",
        "OOMScoreAdjust=-999",
        "ExecStartPre=-/sbin/modprobe overlay",
        "ExecStart=/usr/bin/berthd --config /etc/berth/config.toml",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&directive), "no {directive:?} in the unit");
    }
}

/// systemd's own checker, on a copy whose ExecStart is the binary under
/// test (`verify` insists the command exists). Locally skipped without
/// `systemd-analyze`; Debian's `systemd` package provides it.
#[test]
fn systemd_analyze_verifies_the_unit() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        assert!(
            !berth_testkit::in_ci(),
            "CI needs systemd-analyze (Debian's systemd)"
        );
        eprintln!("skipping: no /usr/bin/systemd-analyze");
        return;
    }
    let bin = berth_testkit::berthd_bin().expect("berthd binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let verify = |unit: &str| {
        let path = dir.path().join("berthd.service");
        std::fs::write(&path, unit).expect("write unit");
        Command::new(analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .expect("run systemd-analyze")
    };
    let unit = unit_file().replace("/usr/bin/berthd", bin.to_str().expect("utf-8 path"));
    let out = verify(&unit);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.is_empty(), "{said}");
    // The checker does read the file: a bad value is reported.
    let broken = verify(&unit.replace("Type=notify", "Type=notifyy"));
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(
        said.contains("notifyy"),
        "systemd-analyze missed a bad Type: {said:?}"
    );
}
