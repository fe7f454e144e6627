//! The remote diff service ([`berth_client::diff::RemoteDiff`]) through a
//! private daemon: the layer `compare` writes between two snapshots,
//! applied with `apply` on the lower one, gives the upper tree again
//! (deletions included, as whiteouts).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use berth_client::berth_core::diff::{Applier, MEDIA_TYPE_LAYER};
use berth_client::berth_core::mount::{Mount, TempMount};
use berth_client::berth_core::snapshots::Snapshotter;
use berth_client::diff::CompareOptions;
use berth_client::Client;
use berth_testkit::{require_root, Daemon, Tree};

fn none() -> HashMap<String, String> {
    HashMap::new()
}

/// Mounts `mounts` under `scratch`, runs `f` on the tree, unmounts.
fn with_mounted<T>(mounts: &[Mount], scratch: &Path, f: impl FnOnce(&Path) -> T) -> T {
    let root = TempMount::new(mounts, scratch).expect("mount");
    let out = f(root.path());
    root.unmount().expect("unmount");
    out
}

#[test]
fn compare_then_apply_gives_the_upper_tree_again() {
    require_root!();
    let daemon = Daemon::start().unwrap_or_else(|err| panic!("starting the daemon: {err:#}"));
    let scratch = daemon.dir().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let address = daemon.address().display().to_string();
        let client = Client::connect(address).await.expect("connect");
        let (client, _) = client
            .with_new_lease(Duration::from_secs(600))
            .await
            .expect("lease");
        let s = client.snapshotter("overlayfs");

        let base = s.prepare("base-a", "", none()).await.expect("prepare");
        with_mounted(&base, &scratch, |root| {
            std::fs::write(root.join("hello"), "hello").expect("write");
            std::fs::create_dir(root.join("d")).expect("mkdir");
            std::fs::write(root.join("d/x"), "x").expect("write");
        });
        s.commit("base", "base-a", none()).await.expect("commit");

        let upper = s.prepare("upper", "base", none()).await.expect("prepare");
        let want = with_mounted(&upper, &scratch, |root| {
            std::fs::remove_file(root.join("hello")).expect("rm");
            std::fs::write(root.join("d/y"), "y").expect("write");
            let perm = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(root.join("d/x"), perm).expect("chmod");
            Tree::read(root).expect("read")
        });

        let lower = s.view("base-view", "base", none()).await.expect("view");
        let layer = client
            .diff()
            .compare(&lower, &upper, CompareOptions::default())
            .await
            .expect("compare");
        assert!(layer.media_type.ends_with("tar+gzip"), "{layer:?}");

        let again = s.prepare("again", "base", none()).await.expect("prepare");
        let applied = client
            .diff()
            .apply(&layer, &again, HashMap::new())
            .await
            .expect("apply");
        assert_eq!(applied.media_type, MEDIA_TYPE_LAYER);
        let got = with_mounted(&again, &scratch, |root| Tree::read(root).expect("read"));
        let diffs = got.differences(&want);
        assert!(diffs.is_empty(), "{}", diffs.join("\n"));
        assert!(!got.0.contains_key("hello"), "the deletion applied");
    });
    drop(runtime);
    drop(daemon);
}
