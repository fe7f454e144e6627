//! berthd's runtime v2 shim (`containerd-shim-berth-v2`) driven through
//! containerd 1.6's own Go client: the behaviours where it must answer as
//! containerd's `containerd-shim-runc-v2` does. The scenarios are the
//! `shim_*.go` files of `tests/go-client`; each pulls busybox from a
//! loopback registry.

use berth_testkit::{require_go_client, require_registry, require_root, Daemon, Registry};

/// A daemon, a registry with busybox, and the image reference.
fn setup() -> (Daemon, Registry, String) {
    let registry = Registry::start().expect("start registry");
    let image = registry
        .push_busybox("test/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::start().expect("start berthd");
    (daemon, registry, image)
}

fn run(scenario: &str) {
    let (daemon, _registry, image) = setup();
    let out = daemon.go_client(scenario, &["-image", &image]);
    assert!(
        out.success() && out.stdout.contains(&format!("PASS {scenario}")),
        "{out}\n--- berthd log ---\n{}",
        daemon.log()
    );
    println!("{out}");
}

#[test]
fn go_client_exec_with_terminal_delivers_a_mebibyte() {
    require_root!();
    require_go_client!();
    require_registry!();
    run("shim-exec-tty");
}

#[test]
fn go_client_resize_without_terminal_is_a_no_op() {
    require_root!();
    require_go_client!();
    require_registry!();
    run("shim-resize");
}

#[test]
fn go_client_failed_exec_leaves_nothing_behind() {
    require_root!();
    require_go_client!();
    require_registry!();
    run("shim-exec-fail");
}

#[test]
fn go_client_shim_cmdline_has_no_start() {
    require_root!();
    require_go_client!();
    require_registry!();
    run("shim-cmdline");
}

#[test]
fn go_client_shim_cgroup_holds_the_shim() {
    require_root!();
    require_go_client!();
    require_registry!();
    run("shim-cgroup");
}
