//! The `rebase` capability: overlayfs layers prepared without a parent and
//! committed onto one later (containerd 2.x's parallel unpack).

use berth_core::snapshots::{Kind, Snapshotter};
use berth_core::ErrorKind;
use std::collections::HashMap;
use std::path::Path;

fn option<'m>(options: &'m [String], key: &str) -> Option<&'m str> {
    options
        .iter()
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test]
async fn overlay_layers_prepared_apart_chain_at_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = berth_snapshot::overlay::open(dir.path()).expect("open");
    assert!(s.can_rebase());

    // Two layers applied side by side, neither knowing its parent yet.
    let mut uppers = Vec::new();
    for key in ["l0", "l1"] {
        let mounts = s
            .prepare_rebase(key, HashMap::new())
            .await
            .expect("prepare");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_type, "overlay");
        assert!(option(&mounts[0].options, "lowerdir").is_none());
        let upper = option(&mounts[0].options, "upperdir").expect("upperdir");
        std::fs::write(Path::new(upper).join(key), key).expect("write");
        uppers.push(upper.to_owned());
        // mounts() answers the same while it waits.
        assert_eq!(s.mounts(key).await.expect("mounts"), mounts);
    }
    s.commit_rebase("c0", "l0", "", HashMap::new())
        .await
        .expect("commit l0");
    s.commit_rebase("c1", "l1", "c0", HashMap::new())
        .await
        .expect("commit l1 onto c0");
    let info = s.stat("c1").await.expect("stat");
    assert_eq!(info.kind, Kind::Committed);
    assert_eq!(info.parent, "c0");

    // A container on top sees both layers, newest first.
    let mounts = s
        .prepare("rw", "c1", HashMap::new())
        .await
        .expect("prepare");
    let lower = option(&mounts[0].options, "lowerdir").expect("lowerdir");
    assert_eq!(lower, format!("{}:{}", uppers[1], uppers[0]));
}

#[tokio::test]
async fn commit_rebase_checks_the_snapshot_and_the_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = berth_snapshot::overlay::open(dir.path()).expect("open");
    s.prepare("plain", "", HashMap::new())
        .await
        .expect("prepare");
    let err = s
        .commit_rebase("c", "plain", "", HashMap::new())
        .await
        .expect_err("not prepared for a rebase");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");

    s.prepare_rebase("r", HashMap::new())
        .await
        .expect("prepare");
    let err = s
        .commit_rebase("c", "r", "plain", HashMap::new())
        .await
        .expect_err("active parent");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = s
        .commit_rebase("c", "r", "missing", HashMap::new())
        .await
        .expect_err("missing parent");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // Still there to retry or remove.
    s.remove("r").await.expect("remove");
}

#[tokio::test]
async fn native_cannot_rebase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = berth_snapshot::native::open(dir.path()).expect("open");
    assert!(!s.can_rebase());
    let err = s
        .prepare_rebase("k", HashMap::new())
        .await
        .expect_err("native");
    assert_eq!(err.kind(), ErrorKind::NotImplemented, "{err}");
}
