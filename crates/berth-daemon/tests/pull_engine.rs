//! berth's pull engine (`berth_image::pull`) over the daemon's own local
//! stores — berth-store's content store and the overlayfs (rebase, layers
//! applied at once while they download) and native (layers applied in
//! order) snapshotters — pulling the layered test image from Debian's
//! docker-registry: the mounted top snapshot is exactly the tree the
//! image-spec's rules give, and a second pull fetches and applies nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_core::content::ContentStore;
use berth_core::mount::TempMount;
use berth_core::snapshots::Snapshotter;
use berth_image::diff::LocalApplier;
use berth_image::pull::{pull, Progress, ProgressUpdate, PullOptions, UnpackTarget};
use berth_image::registry::{RegistryOptions, RegistryResolver};
use berth_image::testing::MemImages;
use berth_testkit::{layered_test_image, require_root, Registry, Tree};

/// Counts downloads.
#[derive(Default)]
struct Downloads(Mutex<usize>);

impl Progress for Downloads {
    fn report(&self, update: ProgressUpdate) {
        if update.event == "downloading" && update.progress == 0 {
            *self.0.lock().expect("lock") += 1;
        }
    }
}

/// Pushes the layered test image into a fresh registry with skopeo;
/// (registry, reference, top chain ID).
fn seeded(dir: &Path) -> (Registry, String, String) {
    let registry = Registry::start().expect("registry");
    let archive = layered_test_image()
        .archive("example.com/berth/layered:latest")
        .expect("archive");
    let path = dir.join("layered.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    let reference = format!("{}/berth/layered:latest", registry.host());
    let status = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}:latest", path.display()))
        .arg(format!("docker://{reference}"))
        .status()
        .expect("run skopeo");
    assert!(status.success(), "skopeo copy");
    (registry, reference, archive.top_chain_id().to_string())
}

async fn pull_and_check(native: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_registry, reference, top) = seeded(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let metadata = berth_store::MetadataStore::open(&root.join("metadata.redb")).expect("db");
    let content = berth_store::content::Content::open(&root.join("content"), metadata)
        .expect("content")
        .namespace("default", None)
        .expect("namespace");
    let content: Arc<dyn ContentStore> = Arc::new(content);
    let snapshotter: Box<dyn Snapshotter> = if native {
        Box::new(berth_snapshot::native::open(&root.join("native")).expect("native"))
    } else {
        Box::new(berth_snapshot::overlay::open(&root.join("overlayfs")).expect("overlay"))
    };
    assert_eq!(snapshotter.can_rebase(), !native);
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let applier = LocalApplier::new(content.clone(), &scratch);
    let resolver = RegistryResolver::new(RegistryOptions::default()).expect("resolver");
    let images = MemImages::default();
    let opts = PullOptions {
        unpack: Some(UnpackTarget {
            snapshotter: snapshotter.as_ref(),
            snapshotter_name: "test",
            applier: &applier,
            local_scratch: Some(scratch.clone()),
            platform: None,
        }),
        ..PullOptions::default()
    };
    let downloads = Downloads::default();
    for _ in 0..2 {
        pull(
            content.as_ref(),
            &images,
            &resolver,
            &reference,
            &opts,
            &downloads,
        )
        .await
        .expect("pull");
    }
    // Three layers, downloaded once.
    assert_eq!(*downloads.0.lock().expect("lock"), 3);
    assert_eq!(snapshotter.walk(&[]).await.expect("walk").len(), 3);
    let mounts = snapshotter
        .view("check", &top, HashMap::new())
        .await
        .expect("view");
    let mounted = TempMount::new(&mounts, &scratch).expect("mount");
    let tree = Tree::read(mounted.path()).expect("read tree");
    mounted.unmount().expect("unmount");
    let diffs = tree.differences(&layered_test_image().expected());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn overlay_rebase_pull_unpacks_the_exact_tree() {
    if !require_root() {
        return;
    }
    berth_testkit::require_registry!();
    pull_and_check(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn native_sequential_pull_unpacks_the_exact_tree() {
    if !require_root() {
        return;
    }
    berth_testkit::require_registry!();
    pull_and_check(true).await;
}
