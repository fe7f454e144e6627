//! The seed flow and the rest of the API through containerd 1.6's own Go
//! client: each test runs one scenario of `tests/go-client` (a Go file of
//! the same name) against a private berthd and a loopback registry.

use berth_testkit::{require_go_client, require_registry, require_root, Daemon, Registry};

/// Runs `scenario` with an image pushed to a fresh registry; panics with
/// the program's output and the daemon's log unless it passes.
fn run(scenario: &str) {
    let registry = Registry::start().expect("start registry");
    let image = registry
        .push_busybox("test/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_client(scenario, &["-image", &image]);
    assert!(
        out.success() && out.stdout.contains(&format!("PASS {scenario}")),
        "{out}\n--- berthd log ---\n{}",
        daemon.log()
    );
}

#[test]
fn go_client_runs_the_seed_flow_with_events() {
    require_root!();
    require_registry!();
    require_go_client!();
    run("flow");
}

#[test]
fn go_client_kills_a_task() {
    require_root!();
    require_registry!();
    require_go_client!();
    run("kill");
}

#[test]
fn go_client_execs_with_stdio() {
    require_root!();
    require_registry!();
    require_go_client!();
    run("exec");
}

#[test]
fn go_client_leases_hold_content_until_deleted() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_client("leases", &[]);
    assert!(out.success() && out.stdout.contains("PASS leases"), "{out}");
}

#[test]
fn go_client_filters_container_lists() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_client("filters", &[]);
    assert!(
        out.success() && out.stdout.contains("PASS filters"),
        "{out}"
    );
}

#[test]
fn go_client_lists_and_labels_images() {
    require_root!();
    require_registry!();
    require_go_client!();
    run("images");
}

/// The probe scenario prints one line per edge case of the metadata
/// services (error class and a few fields); `probe.golden` beside it is
/// that output from containerd 1.6.20. berthd must print the same lines.
#[test]
fn go_client_probe_matches_containerds_answers() {
    require_go_client!();
    let golden_path =
        berth_testkit::go_client_gopath().join("src/berth.test/goclient/probe.golden");
    let golden = std::fs::read_to_string(&golden_path).expect("read probe.golden");
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_client("probe", &[]);
    assert!(out.success(), "{out}");
    let got: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("PASS "))
        .collect();
    let want: Vec<&str> = golden.lines().collect();
    let differences: Vec<String> = want
        .iter()
        .zip(got.iter())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("containerd: {w}\n    berthd: {g}"))
        .collect();
    assert!(
        differences.is_empty() && got.len() == want.len(),
        "{} lines differ from containerd's ({} lines, want {}):\n{}",
        differences.len(),
        got.len(),
        want.len(),
        differences.join("\n")
    );
}
