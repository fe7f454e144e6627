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

/// Lines where berthd answers differently from containerd on purpose:
/// (containerd's line, berthd's line, why).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "task start again: Unknown",
        "task start again: FailedPrecondition",
        "berth's shim classifies starting a process that is not in the created state",
    ),
    (
        "exec after exit: Unknown",
        "exec after exit: FailedPrecondition",
        "berth's shim classifies an exec into a stopped container",
    ),
];

/// Runs probe `scenario` (its output is one line per edge case: the error
/// class and a few fields) and compares it line by line with
/// `SCENARIO.golden` beside the Go files: the same scenario's output from
/// containerd 1.6.20 (`BERTH_TESTKIT_DAEMON=containerd` runs the test
/// against containerd, to check the golden file).
fn assert_matches_containerd(daemon: &Daemon, scenario: &str, args: &[&str]) {
    let golden_path = berth_testkit::go_client_gopath()
        .join("src/berth.test/goclient")
        .join(format!("{scenario}.golden"));
    let golden = std::fs::read_to_string(&golden_path).expect("read the golden file");
    let out = daemon.go_client(scenario, args);
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
        .filter(|(w, g)| {
            w != g
                && !KNOWN_DIFFERENCES
                    .iter()
                    .any(|(kw, kg, _)| kw == *w && kg == *g)
        })
        .map(|(w, g)| format!("containerd: {w}\n    berthd: {g}"))
        .collect();
    assert!(
        differences.is_empty() && got.len() == want.len(),
        "{} lines differ from containerd's ({} lines, want {}):\n{}\n--- output ---\n{}",
        differences.len(),
        got.len(),
        want.len(),
        differences.join("\n"),
        out.stdout
    );
}

/// Runs probe `scenario` with an image pushed to a fresh registry.
fn probe_with_image(scenario: &str) {
    let registry = Registry::start().expect("start registry");
    let image = registry
        .push_busybox("test/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::start().expect("start berthd");
    assert_matches_containerd(&daemon, scenario, &["-image", &image]);
}

/// Metadata services' edge cases (`probe.go`).
#[test]
fn go_client_probe_matches_containerds_answers() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    assert_matches_containerd(&daemon, "probe", &[]);
}

/// Tasks' and processes' edge cases (`probe_tasks.go`).
#[test]
fn go_client_task_probe_matches_containerds_answers() {
    require_root!();
    require_registry!();
    require_go_client!();
    probe_with_image("probe-tasks");
}

/// What a pull with unpack leaves: blob and snapshot labels (`probe_pull.go`).
#[test]
fn go_client_pull_probe_matches_containerds_answers() {
    require_root!();
    require_registry!();
    require_go_client!();
    probe_with_image("probe-pull");
}

/// The events of each step of a container's life (`probe_events.go`).
#[test]
fn go_client_event_probe_matches_containerds_events() {
    require_root!();
    require_registry!();
    require_go_client!();
    probe_with_image("probe-events");
}
