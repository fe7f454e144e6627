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

/// A user-namespaced container through the Go client: a remapped snapshot
/// (0 → 1000, 2000 ids) and the same mappings in the spec, writable and
/// read-only. The remapped root must reach its rootfs through berthd's
/// state directory, so the daemon's own directory is opened to traversal as
/// `/run` is.
#[test]
fn go_client_runs_user_namespaced_containers() {
    require_go_client!();
    berth_testkit::require_root!();
    if !berth_testkit::require_registry() {
        return;
    }
    let registry = berth_testkit::Registry::start().expect("start registry");
    let image = registry.push_busybox("test/busybox:userns").expect("seed");
    let daemon = Daemon::start().expect("start berthd");
    std::fs::set_permissions(
        daemon.dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    for scenario in ["userns", "userns-readonly"] {
        let out = daemon.go_client(scenario, &["-image", &image]);
        assert!(out.success(), "{scenario}: {out}\n{}", daemon.log());
        assert!(out.stdout.contains(&format!("PASS {scenario}")), "{out}");
    }
}
