//! Garbage collection of unpacked snapshots, through Debian's `ctr`: an
//! image keeps its layer snapshots (its config's
//! `containerd.io/gc.ref.snapshot.overlayfs` label), a container keeps
//! its rootfs snapshot and so the chain below it, and once both the image
//! and its containers are gone a collection removes every snapshot, rows
//! and directories alike.

use std::path::Path;

use berth_testkit::{layered_test_image, require_ctr, require_root, Daemon, LayeredArchive};

const IMAGE: &str = "example.com/berth/gc:latest";

fn import(daemon: &Daemon, archive: &LayeredArchive) {
    let path = daemon.dir().join("layered.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    daemon
        .ctr(&["images", "import", path.to_str().expect("utf-8")])
        .assert_success();
}

/// Snapshot names `ctr snapshots ls` lists, sorted.
fn snapshot_names(daemon: &Daemon) -> Vec<String> {
    let ls = daemon.ctr(&["snapshots", "ls"]).assert_success();
    let mut names: Vec<String> = ls
        .lines()
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    names.sort();
    names
}

/// How many snapshot directories the overlayfs backend has on disk.
fn backend_dirs(daemon: &Daemon) -> usize {
    let dir = daemon.root().join("snapshots/overlayfs/snapshots");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// Runs a collection and waits for it: deleting a lease with `--sync`.
fn collect(daemon: &Daemon) {
    daemon
        .ctr(&["leases", "create", "--id", "gc-trigger"])
        .assert_success();
    daemon
        .ctr(&["leases", "rm", "--sync", "gc-trigger"])
        .assert_success();
}

fn chain(archive: &LayeredArchive) -> Vec<String> {
    let mut names: Vec<String> = archive.chain_ids.iter().map(|c| c.to_string()).collect();
    names.sort();
    names
}

#[test]
fn gc_removes_an_images_snapshots_once_image_and_containers_are_gone() {
    require_root!();
    require_ctr!();
    let archive = layered_test_image().archive(IMAGE).expect("archive");
    let daemon = Daemon::start().expect("start berthd");
    let _cleanup = Unmount(daemon.dir());
    import(&daemon, &archive);
    let layers = chain(&archive);

    // The image holds its snapshots through a collection.
    collect(&daemon);
    assert_eq!(snapshot_names(&daemon), layers, "the image keeps its chain");
    assert_eq!(backend_dirs(&daemon), 3);

    // A container holds its rootfs and the chain below it after the image
    // is removed.
    daemon
        .ctr(&["containers", "create", IMAGE, "c1"])
        .assert_success();
    daemon
        .ctr(&["images", "rm", "--sync", IMAGE])
        .assert_success();
    collect(&daemon);
    let mut with_c1 = layers.clone();
    with_c1.insert(0, "c1".into());
    with_c1.sort();
    assert_eq!(snapshot_names(&daemon), with_c1, "the container keeps them");
    assert_eq!(backend_dirs(&daemon), 4);

    // Without image and container, a collection removes them all.
    daemon.ctr(&["containers", "rm", "c1"]).assert_success();
    collect(&daemon);
    assert!(snapshot_names(&daemon).is_empty(), "nothing holds them");
    assert_eq!(backend_dirs(&daemon), 0, "their directories are gone");

    // An image alone: removing it with --sync takes its snapshots at once.
    import(&daemon, &archive);
    assert_eq!(snapshot_names(&daemon), layers);
    daemon
        .ctr(&["images", "rm", "--sync", IMAGE])
        .assert_success();
    assert!(snapshot_names(&daemon).is_empty());
    assert_eq!(backend_dirs(&daemon), 0);
}

/// Unmounts whatever a failed test left mounted under the daemon's dir.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}
