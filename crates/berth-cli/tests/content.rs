//! `berth content` against a private daemon, with Debian's `ctr` as the
//! independent client: ingest from stdin (size and digest verified), list,
//! read, label, remove, and the active-ingest table.
//!
//! Run them against containerd with `BERTH_TESTKIT_DAEMON=containerd`.

use std::process::Stdio;

use berth_client::berth_image::Digest;
use berth_testkit::{require_ctr, CmdOutput, Daemon};

/// A private daemon with a content service, or `None` (with a note) while
/// the daemon under test has none yet.
fn daemon() -> Option<Daemon> {
    let daemon = match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    };
    let probe = daemon.berth(&["content", "ls", "-q"]);
    if !probe.success() && probe.stderr.to_lowercase().contains("not implemented") {
        eprintln!("skipping: the daemon has no content service yet\n{probe}");
        return None;
    }
    Some(daemon)
}

/// `berth content ingest ARGS…` with `data` on stdin.
fn ingest(daemon: &Daemon, data: &[u8], args: &[&str]) -> CmdOutput {
    let input = daemon.dir().join("stdin");
    std::fs::write(&input, data).expect("write stdin");
    let mut cmd = daemon.berth_command(None).expect("berth");
    cmd.args(["content", "ingest"]).args(args);
    cmd.stdin(Stdio::from(
        std::fs::File::open(&input).expect("open stdin"),
    ));
    let out = cmd.output().expect("run berth");
    CmdOutput {
        command: format!("berth content ingest {}", args.join(" ")),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn ingest_list_get_label_and_remove() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    // Content ingested outside a lease (as ctr ingests it) is garbage the
    // moment a collection runs; containerd runs one 100 ms after it
    // starts. Let that pass first.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let data = b"hello from berth\n";
    let digest = Digest::sha256_of(data).to_string();
    let size = data.len().to_string();
    let out = ingest(
        &daemon,
        data,
        &[
            "--expected-size",
            &size,
            "--expected-digest",
            &digest,
            "ref-1",
        ],
    );
    out.assert_success();

    // Seen by both clients, listed alike.
    let by_berth = daemon.berth(&["content", "ls", "-q"]).assert_success();
    let by_ctr = daemon.ctr(&["content", "ls", "-q"]).assert_success();
    assert_eq!(by_berth.stdout, by_ctr.stdout);
    assert!(by_berth.stdout.contains(&digest), "{by_berth}");
    let table = daemon.berth(&["content", "ls"]).assert_success();
    let ctr_table = daemon.ctr(&["content", "ls"]).assert_success();
    assert_eq!(table.lines()[0], ctr_table.lines()[0], "same header");
    assert!(
        table.stdout.contains(&format!("{digest}\t17B\t")),
        "size as go-units prints it:\n{table}"
    );

    let got = daemon.berth(&["content", "get", &digest]).assert_success();
    assert_eq!(got.stdout.as_bytes(), data);
    let got = daemon.ctr(&["content", "get", &digest]).assert_success();
    assert_eq!(got.stdout.as_bytes(), data);

    let out = daemon
        .berth(&["content", "label", &digest, "b=2", "a"])
        .assert_success();
    assert_eq!(out.stdout, "a=true,b=2\n");
    let out = daemon
        .berth(&["content", "label", &digest, "a="])
        .assert_success();
    assert_eq!(out.stdout, "b=2\n");
    let labelled = daemon.ctr(&["content", "ls"]).assert_success();
    assert!(labelled.stdout.contains("\tb=2\n"), "{labelled}");
    let filtered = daemon
        .berth(&["content", "ls", "-q", "labels.b==2"])
        .assert_success();
    assert_eq!(filtered.lines(), [digest.as_str()]);

    // Ingesting it again is a no-op; a wrong digest is refused.
    ingest(&daemon, data, &["--expected-digest", &digest, "ref-2"]).assert_success();
    let wrong = Digest::sha256_of(b"something else").to_string();
    ingest(&daemon, data, &["--expected-digest", &wrong, "ref-3"]).assert_failure();
    let missing = daemon.berth(&["content", "get", &wrong]);
    missing.assert_failure_containing("not found");

    let out = daemon
        .berth(&["content", "rm", &digest, &wrong])
        .assert_success();
    assert_eq!(out.stdout, format!("{digest}\n"));
    let left = daemon.berth(&["content", "ls", "-q"]).assert_success();
    assert!(!left.stdout.contains(&digest), "{left}");
}

#[test]
fn active_ingests_table_matches_ctr() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    let by_berth = daemon.berth(&["content", "active"]).assert_success();
    let by_ctr = daemon.ctr(&["content", "active"]).assert_success();
    assert_eq!(by_berth.stdout, by_ctr.stdout);
    assert_eq!(by_berth.stdout, "REF\tSIZE\tAGE\t\n");
}
