//! berthd driven by containerd 1.6's own Go client (Debian's source
//! package), the client every Go program on containerd — dockerd included —
//! is built on. The scenarios are Go files in `tests/go-client`.

use berth_testkit::{require_go_client, Daemon};

#[test]
fn go_client_finds_berthd_serving() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_client("serving", &[]).assert_success();
    assert!(out.stdout.contains("PASS serving"), "{out}");
}
