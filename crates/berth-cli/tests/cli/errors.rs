//! Errors print one line and exit non-zero.

use std::process::Command;

use berth_testkit::{berth_bin, run_with_timeout, DEFAULT_COMMAND_TIMEOUT};

use crate::{create, daemon};

#[track_caller]
fn one_line(out: &berth_testkit::CmdOutput) {
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "one line expected:\n{out}"
    );
}

#[test]
fn rpc_errors_are_one_line_with_containerds_class() {
    let daemon = daemon();
    create(&daemon, "default", "dup", &[]);
    let cases: &[(&[&str], &str)] = &[
        (&["c", "info", "absent"], "not found"),
        (&["c", "label", "absent", "a=b"], "not found"),
        (&["c", "ls", "id=="], "invalid argument"),
        (&["ns", "create", "Bad!"], "invalid argument"),
        (&["ns", "rm", "default"], "failed precondition"),
    ];
    for (args, class) in cases {
        let out = daemon.berth(args).assert_failure_containing(class);
        one_line(&out);
        assert!(out.stderr.starts_with("berth: "), "{out}");
    }
    daemon.berth(&["ns", "create", "twice"]).assert_success();
    let out = daemon
        .berth(&["ns", "create", "twice"])
        .assert_failure_containing("already exists");
    one_line(&out);
}

#[test]
fn an_unreachable_daemon_is_one_line() {
    let missing = std::env::temp_dir().join(format!("berth-no-daemon-{}.sock", std::process::id()));
    let mut cmd = Command::new(berth_bin().expect("berth binary"));
    cmd.arg("--address").arg(&missing).arg("version");
    let out = run_with_timeout(&mut cmd, DEFAULT_COMMAND_TIMEOUT)
        .expect("berth must give up by itself")
        .assert_failure();
    one_line(&out);
    assert!(
        out.stderr.contains(missing.to_str().expect("utf-8")),
        "name the address:\n{out}"
    );
}

#[test]
fn usage_errors_exit_non_zero() {
    let daemon = daemon();
    daemon.berth(&["containers", "frobnicate"]).assert_failure();
    daemon.berth(&["namespaces", "create"]).assert_failure();
}
