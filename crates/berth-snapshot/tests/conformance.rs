//! containerd's snapshotter scenarios (berth-core's testsuite) against the
//! overlayfs and native snapshotters; the mounting scenarios run as root.

use berth_core::snapshots::testsuite::{self, Fixture};
use berth_core::snapshots::Snapshotter;
use std::sync::Arc;

fn fixture(open: fn(&std::path::Path) -> Arc<dyn Snapshotter>, can_mount: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let snapshotter = open(dir.path());
    Fixture {
        snapshotter,
        can_mount,
        guard: Box::new(dir),
    }
}

fn overlay(root: &std::path::Path) -> Arc<dyn Snapshotter> {
    Arc::new(berth_snapshot::overlay::open(root).expect("open overlayfs"))
}

fn native(root: &std::path::Path) -> Arc<dyn Snapshotter> {
    Arc::new(berth_snapshot::native::open(root).expect("open native"))
}

#[tokio::test(flavor = "multi_thread")]
async fn overlayfs_passes_the_snapshotter_suite() {
    let can_mount = berth_testkit::require_root();
    testsuite::run(|| async move { fixture(overlay, can_mount) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn native_passes_the_snapshotter_suite() {
    let can_mount = berth_testkit::require_root();
    testsuite::run(|| async move { fixture(native, can_mount) }).await;
}
