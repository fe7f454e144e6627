//! `kill -9` of berthd while `ctr images import` unpacks a large image:
//! after a restart no half-applied snapshot is visible — `ctr snapshots
//! ls` lists only committed snapshots that are a prefix of the image's
//! chain, nothing active from the extract, and the backend holds no
//! directory no snapshot owns — and importing again completes the unpack
//! with the right tree.

use std::collections::HashMap;
use std::process::{Child, Stdio};

use berth_testkit::pb::services::v1::snapshots::snapshots_client::SnapshotsClient;
use berth_testkit::pb::services::v1::snapshots::{CleanupRequest, Kind, ListSnapshotsRequest};
use berth_testkit::{
    block_on, connect, require_ctr, require_root, testing_containerd, with_namespace, Daemon,
    LayeredImage, Tree,
};

const IMAGE: &str = "example.com/berth/big:latest";

/// Eight gzip layers of two 4 MiB files: applying one takes long enough
/// that the kill lands inside an apply.
fn big_image() -> LayeredImage {
    LayeredImage::bulk(8, 2, 4 << 20)
}

/// (name, parent, kind) of every snapshot in the default namespace.
fn snapshots(daemon: &Daemon) -> Vec<(String, String, i32)> {
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let request = with_namespace(
            ListSnapshotsRequest {
                snapshotter: "overlayfs".into(),
                filters: Vec::new(),
            },
            "default",
        )
        .expect("request");
        let mut stream = SnapshotsClient::new(channel)
            .list(request)
            .await
            .expect("list")
            .into_inner();
        let mut out = Vec::new();
        while let Some(block) = stream.message().await.expect("list stream") {
            out.extend(block.info.into_iter().map(|i| (i.name, i.parent, i.kind)));
        }
        out
    })
    .expect("runtime")
}

/// Whether an extract snapshot on top of a committed layer is being
/// applied: the unpack is past its first layer and inside another.
fn applying_upper_layer(daemon: &Daemon) -> bool {
    snapshots(daemon).iter().any(|(name, parent, kind)| {
        *kind == Kind::Active as i32 && name.starts_with("extract-") && !parent.is_empty()
    })
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_during_unpack_leaves_no_partial_snapshot_and_a_new_import_completes() {
    require_root!();
    require_ctr!();
    let image = big_image();
    let archive = image.archive(IMAGE).expect("archive");
    let mut daemon = Daemon::start().expect("start berthd");
    let _cleanup = Unmount(daemon.dir().to_path_buf());
    let path = daemon.dir().join("big.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    let path = path.to_str().expect("utf-8").to_owned();

    let mut ctr = daemon.ctr_command(None).expect("ctr");
    let import = ctr
        .args(["images", "import", &path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr images import");
    let mut import = KillOnDrop(import);
    let caught = loop {
        if applying_upper_layer(&daemon) {
            break true;
        }
        if import.0.try_wait().expect("wait").is_some() {
            break false;
        }
    };
    daemon.kill9().expect("kill -9 berthd");
    assert!(
        caught,
        "the import finished before the kill: make big_image() bigger"
    );
    let status = import.0.wait().expect("wait for ctr");
    assert!(!status.success(), "ctr saw the daemon die");

    daemon.restart().expect("restart berthd");
    let chain: Vec<String> = archive.chain_ids.iter().map(|c| c.to_string()).collect();
    let listed = snapshots(&daemon);
    assert!(!listed.is_empty(), "the first layer was committed");
    let mut by_name: HashMap<&str, &str> = HashMap::new();
    for (name, parent, kind) in &listed {
        assert_eq!(
            *kind,
            Kind::Committed as i32,
            "only committed snapshots: {listed:?}"
        );
        by_name.insert(name, parent);
    }
    // The committed ones are exactly a prefix of the chain.
    for (i, id) in chain.iter().enumerate().take(listed.len()) {
        let parent = by_name
            .get(id.as_str())
            .unwrap_or_else(|| panic!("layer {i} ({id}) in {listed:?}"));
        let want = if i == 0 { "" } else { chain[i - 1].as_str() };
        assert_eq!(*parent, want, "layer {i}'s parent");
    }
    assert!(listed.len() < chain.len(), "the unpack was cut short");
    if !testing_containerd() {
        // berth removed the interrupted extract at start (containerd keeps
        // it, leased, for a day).
        assert!(
            daemon
                .log()
                .contains("removing snapshot of an unpack interrupted"),
            "the restart found the interrupted extract"
        );
    }
    let ls = daemon.ctr(&["snapshots", "ls"]).assert_success();
    assert!(!ls.stdout.contains("extract-"), "{ls}");
    assert!(!ls.stdout.contains("Active"), "{ls}");

    // Importing again finishes the unpack on top of what was committed.
    daemon.ctr(&["images", "import", &path]).assert_success();
    let listed = snapshots(&daemon);
    let mut names: Vec<String> = listed.iter().map(|s| s.0.clone()).collect();
    names.sort();
    let mut want = chain.clone();
    want.sort();
    assert_eq!(names, want, "the whole chain, once");
    let mnt = daemon.dir().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let target = mnt.to_str().expect("utf-8");
    daemon
        .ctr(&["images", "mount", IMAGE, target])
        .assert_success();
    let tree = Tree::read(&mnt).expect("read the mounted tree");
    daemon
        .ctr(&["images", "unmount", "--rm", target])
        .assert_success();
    let diffs = tree.differences(&image.expected());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));

    // The backend has a directory per committed snapshot and no more once
    // unowned ones are pruned (Cleanup prunes; the restart's reconcile
    // may have done it already).
    cleanup(&daemon);
    let dirs = daemon.root().join("snapshots/overlayfs/snapshots");
    let count = std::fs::read_dir(&dirs).expect("snapshot dirs").count();
    assert_eq!(count, chain.len(), "backend snapshot directories");
}

/// Snapshots.Cleanup of overlayfs.
fn cleanup(daemon: &Daemon) {
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let request = with_namespace(
            CleanupRequest {
                snapshotter: "overlayfs".into(),
            },
            "default",
        )
        .expect("request");
        SnapshotsClient::new(channel)
            .cleanup(request)
            .await
            .expect("cleanup");
    })
    .expect("runtime");
}

/// Unmounts whatever a failed test left mounted under the daemon's dir.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(&self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}
