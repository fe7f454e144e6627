//! containerd 1.6's own conformance suites for content stores and
//! snapshotters (`content/testsuite`, `snapshots/testsuite`), run through
//! the Go client's remote `ContentStore()` and `SnapshotService("overlayfs")`
//! against a private berthd, as containerd's `integration/client` runs them
//! against containerd. The Go side is `tests/go-client/src/berth.test/suites`.

use berth_testkit::{require_go_client, require_root, CmdOutput, Daemon};

/// Asserts the run passed and that each of `subtests` ran and passed (a
/// suite that skipped or lost a test must not look green).
fn assert_passed(out: &CmdOutput, daemon: &Daemon, subtests: &[&str]) {
    let log = || daemon.log();
    assert!(
        out.success() && !out.stdout.contains("--- FAIL"),
        "{out}\n--- berthd log ---\n{}",
        log()
    );
    for name in subtests {
        assert!(
            out.stdout.contains(&format!("--- PASS: {name} ")),
            "{name} did not pass:\n{out}"
        );
    }
}

#[test]
fn containerds_content_suite_passes_through_the_go_client() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_suite("^TestContent$");
    let subtests = [
        "Writer",
        "UpdateStatus",
        "CommitExists",
        "Resume",
        "ResumeTruncate",
        "ResumeDiscard",
        "ResumeCopy",
        "ResumeCopySeeker",
        "ResumeCopyReaderAt",
        "SmallBlob",
        "Labels",
        "CommitErrorState",
    ]
    .map(|t| format!("TestContent/{t}"));
    let subtests: Vec<&str> = subtests.iter().map(String::as_str).collect();
    assert_passed(&out, &daemon, &subtests);
}

#[test]
fn containerds_cross_namespace_sharing_suite_passes_through_the_go_client() {
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_suite("^TestContentCrossNSShared$");
    assert_passed(
        &out,
        &daemon,
        &[
            "TestContentCrossNSShared/CrossNamespaceAppend",
            "TestContentCrossNSShared/CrossNamespaceShare",
        ],
    );
}

#[test]
fn containerds_snapshotter_suite_passes_on_overlayfs_through_the_go_client() {
    require_root!();
    require_go_client!();
    let daemon = Daemon::start().expect("start berthd");
    let out = daemon.go_suite("^TestSnapshotter$");
    // Rename is skipped by the suite itself on overlay ("still fails on
    // some kernels"), as it is for containerd.
    let subtests = [
        "Basic",
        "StatActive",
        "StatComitted",
        "TransitivityTest",
        "PreareViewFailingtest",
        "Update",
        "Remove",
        "Walk",
        "LayerFileupdate",
        "RemoveDirectoryInLowerLayer",
        "Chown",
        "DirectoryPermissionOnCommit",
        "RemoveIntermediateSnapshot",
        "DeletedFilesInChildSnapshot",
        "MoveFileFromLowerLayer",
        "ViewReadonly",
        "StatInWalk",
        "CloseTwice",
        "RootPermission",
        "128LayersMount",
    ]
    .map(|t| format!("TestSnapshotter/{t}"));
    let subtests: Vec<&str> = subtests.iter().map(String::as_str).collect();
    assert_passed(&out, &daemon, &subtests);
}
