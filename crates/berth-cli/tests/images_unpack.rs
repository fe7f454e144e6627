//! Unpacking with berth's own CLI, checked through Debian's `ctr`:
//! `berth images import` unpacks a layered image by default, `images
//! unpack` fills another snapshotter, `images mount/unmount` show and
//! release the exact tree, and `containers create/rm` prepare and remove
//! the rootfs snapshot.

use std::path::{Path, PathBuf};

use berth_testkit::{
    layered_test_image, require_ctr, require_root, same_inode, Daemon, LayeredArchive, Tree,
};

const IMAGE: &str = "example.com/berth/cli-layered:latest";

/// A directory whose mounts are undone on drop, panics included.
struct MountDir(PathBuf);

impl Drop for MountDir {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(&self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}

fn write_archive(daemon: &Daemon, archive: &LayeredArchive) -> String {
    let path = daemon.dir().join("layered.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    path.to_str().expect("utf-8").to_owned()
}

/// Snapshot names of `snapshotter`, as ctr lists them.
fn snapshot_names(daemon: &Daemon, snapshotter: &str) -> Vec<String> {
    let ls = daemon
        .ctr(&["snapshots", "--snapshotter", snapshotter, "ls"])
        .assert_success();
    let mut names: Vec<String> = ls
        .lines()
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    names.sort();
    names
}

fn chain(archive: &LayeredArchive) -> Vec<String> {
    let mut names: Vec<String> = archive.chain_ids.iter().map(|c| c.to_string()).collect();
    names.sort();
    names
}

fn mounted_tree(dir: &Path) -> Tree {
    Tree::read(dir).expect("read the mounted tree")
}

#[test]
fn berth_imports_unpacks_mounts_and_creates_containers() {
    require_root!();
    require_ctr!();
    let image = layered_test_image();
    let archive = image.archive(IMAGE).expect("archive");
    let daemon = Daemon::start().expect("start berthd");
    let _mounts = MountDir(daemon.dir().to_path_buf());
    let path = write_archive(&daemon, &archive);

    let out = daemon.berth(&["images", "import", &path]).assert_success();
    assert!(out.stdout.contains("unpacking"), "{out}");
    assert!(out.stdout.contains("done"), "{out}");
    assert_eq!(snapshot_names(&daemon, "overlayfs"), chain(&archive));

    // mount: a view keyed by the directory, the image's exact tree.
    let mnt = daemon.dir().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let target = mnt.to_str().expect("utf-8");
    daemon
        .berth(&["images", "mount", IMAGE, target])
        .assert_success();
    let diffs = mounted_tree(&mnt).differences(&image.expected());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(same_inode(&mnt, "bin/tool", "bin/tool-hard").expect("stat"));
    let info = daemon.ctr(&["snapshots", "info", target]).assert_success();
    assert!(info.stdout.contains("\"View\""), "{info}");
    let leases = daemon.ctr(&["leases", "ls"]).assert_success();
    assert!(
        leases.stdout.contains(target),
        "a lease named after the target: {leases}"
    );
    daemon
        .berth(&["images", "unmount", "--rm", target])
        .assert_success();
    assert!(mounted_tree(&mnt).0.is_empty(), "unmounted");
    daemon
        .ctr(&["snapshots", "info", target])
        .assert_failure_containing("not found");
    let leases = daemon.ctr(&["leases", "ls"]).assert_success();
    assert!(!leases.stdout.contains(target), "{leases}");

    // unpack into the native snapshotter, and mount from it.
    daemon
        .berth(&["images", "unpack", "--snapshotter", "native", IMAGE])
        .assert_success();
    assert_eq!(snapshot_names(&daemon, "native"), chain(&archive));
    daemon
        .berth(&["images", "mount", "--snapshotter", "native", IMAGE, target])
        .assert_success();
    let diffs = mounted_tree(&mnt).differences(&image.expected());
    daemon
        .berth(&[
            "images",
            "unmount",
            "--snapshotter",
            "native",
            "--rm",
            target,
        ])
        .assert_success();
    assert!(diffs.is_empty(), "native: {}", diffs.join("\n"));

    // containers: the rootfs snapshot is the id, on the top chain ID.
    daemon
        .berth(&["containers", "create", IMAGE, "c1", "sh", "-c", "true"])
        .assert_success();
    let c1 = daemon.ctr(&["snapshots", "info", "c1"]).assert_success();
    let json: serde_json::Value = serde_json::from_str(&c1.stdout).expect("info is JSON");
    assert_eq!(json["Kind"], "Active", "{c1}");
    assert_eq!(json["Parent"], archive.top_chain_id().as_str(), "{c1}");
    let spec = daemon
        .berth(&["containers", "info", "--spec", "c1"])
        .assert_success();
    assert!(spec.stdout.contains("\"sh\""), "{spec}");
    daemon.berth(&["containers", "rm", "c1"]).assert_success();
    daemon
        .ctr(&["snapshots", "info", "c1"])
        .assert_failure_containing("not found");

    // --no-unpack imports without snapshots; an image not unpacked for a
    // snapshotter cannot make containers.
    daemon
        .ctr(&["images", "rm", "--sync", IMAGE])
        .assert_success();
    assert!(snapshot_names(&daemon, "overlayfs").is_empty());
    daemon
        .berth(&["images", "import", "--no-unpack", &path])
        .assert_success();
    assert!(snapshot_names(&daemon, "overlayfs").is_empty());
    daemon
        .berth(&["containers", "create", IMAGE, "c2"])
        .assert_failure_containing("not unpacked");
}
