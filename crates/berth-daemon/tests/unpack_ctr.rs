//! Unpacking a multi-layer image with Debian's `ctr` against a private
//! berthd: `images import` unpacks three layers (whiteouts, an opaque
//! directory, owners and modes, a symlink, hard links) into overlayfs;
//! the snapshots commands show the chain; `images mount` shows exactly
//! the tree the image-spec's rules give; `containers create/rm` prepare
//! and remove the rootfs snapshot; and `snapshots diff` of the top layer,
//! applied again through Diff.Apply on its parent, gives the same tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_core::mount::{Mount, TempMount};
use berth_testkit::pb::services::v1::diff_client::DiffClient;
use berth_testkit::pb::services::v1::snapshots::snapshots_client::SnapshotsClient;
use berth_testkit::pb::services::v1::snapshots::PrepareSnapshotRequest;
use berth_testkit::pb::services::v1::ApplyRequest;
use berth_testkit::pb::types::Descriptor;
use berth_testkit::{
    block_on, connect, layered_test_image, require_ctr, require_root, same_inode, with_namespace,
    Daemon, LayeredArchive, Tree,
};

const IMAGE: &str = "example.com/berth/layered:latest";

/// A directory whose mounts are undone on drop, panics included.
struct MountDir(PathBuf);

impl Drop for MountDir {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(&self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}

fn import(daemon: &Daemon, archive: &LayeredArchive) {
    let path = daemon.dir().join("layered.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    daemon
        .ctr(&["images", "import", path.to_str().expect("utf-8")])
        .assert_success();
}

/// `ctr snapshots ls` rows, split into columns (header dropped).
fn snapshot_rows(daemon: &Daemon) -> Vec<Vec<String>> {
    let ls = daemon.ctr(&["snapshots", "ls"]).assert_success();
    ls.lines()
        .iter()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn assert_same_tree(what: &str, got: &Tree, want: &Tree) {
    let diffs = got.differences(want);
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

#[test]
fn ctr_imports_mounts_creates_and_diffs_a_layered_image() {
    require_root!();
    require_ctr!();
    let image = layered_test_image();
    let archive = image.archive(IMAGE).expect("archive");
    let daemon = Daemon::start().expect("start berthd");
    let mnt = daemon.dir().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let _mounts = MountDir(daemon.dir().to_path_buf());

    import(&daemon, &archive);

    // The chain: one committed snapshot per layer, each the parent of the
    // next, and nothing else (the extract keys are gone).
    let chain: Vec<String> = archive.chain_ids.iter().map(|c| c.to_string()).collect();
    let rows = snapshot_rows(&daemon);
    let want = vec![
        vec![chain[0].clone(), "Committed".into()],
        vec![chain[1].clone(), chain[0].clone(), "Committed".into()],
        vec![chain[2].clone(), chain[1].clone(), "Committed".into()],
    ];
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(rows, sorted, "snapshots ls");

    let tree = daemon.ctr(&["snapshots", "tree"]).assert_success();
    let depth = |c: &str| {
        tree.stdout
            .lines()
            .find(|l| l.contains(c))
            .map(|l| l.len() - l.trim_start().len())
            .unwrap_or_else(|| panic!("{c} in {tree}"))
    };
    assert!(
        depth(&chain[0]) < depth(&chain[1]) && depth(&chain[1]) < depth(&chain[2]),
        "{tree}"
    );

    let info = daemon
        .ctr(&["snapshots", "info", &chain[2]])
        .assert_success();
    let json: serde_json::Value = serde_json::from_str(&info.stdout).expect("info is JSON");
    assert_eq!(json["Kind"], "Committed", "{info}");
    assert_eq!(json["Parent"], chain[1].as_str(), "{info}");

    let usage = daemon
        .ctr(&["snapshots", "usage", &chain[0]])
        .assert_success();
    let row: Vec<&str> = usage.lines()[1].split_whitespace().collect();
    let inodes: u32 = row.last().expect("inodes").parse().expect("a number");
    assert!(inodes >= 15, "the base layer's files: {usage}");

    // Mounts of a committed snapshot are refused.
    daemon
        .ctr(&["snapshots", "mounts", "/mnt", &chain[2]])
        .assert_failure();

    // `images mount`: a view keyed by the target, the expected tree.
    let target = mnt.to_str().expect("utf-8");
    let out = daemon
        .ctr(&["images", "mount", IMAGE, target])
        .assert_success();
    assert!(out.stdout.contains(target), "{out}");
    let mounted = Tree::read(&mnt).expect("read the mounted tree");
    assert_same_tree("images mount", &mounted, &image.expected());
    assert!(same_inode(&mnt, "bin/tool", "bin/tool-hard").expect("stat"));
    assert!(
        std::fs::write(mnt.join("new"), "x").is_err(),
        "the mount is read-only"
    );
    let view = daemon.ctr(&["snapshots", "info", target]).assert_success();
    assert!(view.stdout.contains("\"View\""), "{view}");
    daemon
        .ctr(&["images", "unmount", "--rm", target])
        .assert_success();
    assert!(Tree::read(&mnt).expect("read").0.is_empty(), "unmounted");
    daemon
        .ctr(&["snapshots", "info", target])
        .assert_failure_containing("not found");

    // A container's rootfs is an active snapshot on the top chain ID.
    daemon
        .ctr(&["containers", "create", IMAGE, "c1"])
        .assert_success();
    let c1 = daemon.ctr(&["snapshots", "info", "c1"]).assert_success();
    let json: serde_json::Value = serde_json::from_str(&c1.stdout).expect("info is JSON");
    assert_eq!(json["Kind"], "Active", "{c1}");
    assert_eq!(json["Parent"], chain[2].as_str(), "{c1}");
    let printed = daemon
        .ctr(&["snapshots", "mounts", "/mnt", "c1"])
        .assert_success();
    assert!(printed.stdout.contains("lowerdir="), "{printed}");
    assert!(printed.stdout.contains("upperdir="), "{printed}");
    let record = daemon.ctr(&["containers", "info", "c1"]).assert_success();
    assert!(
        record.stdout.contains("\"SnapshotKey\": \"c1\""),
        "{record}"
    );
    assert!(record.stdout.contains(IMAGE), "{record}");
    daemon.ctr(&["containers", "rm", "c1"]).assert_success();
    daemon
        .ctr(&["snapshots", "info", "c1"])
        .assert_failure_containing("not found");

    diff_and_reapply(&daemon, &archive, &image.expected());
}

/// `ctr snapshots diff` of the top layer against its parent writes a
/// layer; applied to a fresh snapshot of the parent through Diff.Apply it
/// gives the image's tree again.
fn diff_and_reapply(daemon: &Daemon, archive: &LayeredArchive, expected: &Tree) {
    let top = archive.chain_ids[2].to_string();
    let parent = archive.chain_ids[1].to_string();
    let mut ctr = daemon.ctr_command(None).expect("ctr");
    let out = ctr
        .args(["snapshots", "diff", "--keep", &top])
        .output()
        .expect("ctr snapshots diff");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layer = out.stdout;
    let digest = berth_image::Digest::sha256_of(&layer);
    // Held by a lease, as ctr's own unpack holds its snapshots: garbage
    // collection (which the diff's view removal schedules) takes an
    // unreferenced active snapshot.
    daemon
        .ctr(&["leases", "create", "--id", "reapply"])
        .assert_success();
    let address = daemon.address().to_owned();
    let scratch = daemon.dir().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mounts = block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let prepared = SnapshotsClient::new(channel.clone())
            .prepare(leased(
                with_namespace(
                    PrepareSnapshotRequest {
                        snapshotter: String::new(),
                        key: "reapply".into(),
                        parent,
                        labels: HashMap::new(),
                    },
                    "default",
                )
                .expect("request"),
            ))
            .await
            .expect("prepare")
            .into_inner()
            .mounts;
        let applied = DiffClient::new(channel)
            .apply(
                with_namespace(
                    ApplyRequest {
                        diff: Some(Descriptor {
                            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                            digest: digest.to_string(),
                            size: layer.len() as i64,
                            annotations: HashMap::new(),
                        }),
                        mounts: prepared.clone(),
                        payloads: HashMap::new(),
                        sync_fs: false,
                    },
                    "default",
                )
                .expect("request"),
            )
            .await
            .expect("apply")
            .into_inner()
            .applied
            .expect("applied");
        assert_eq!(applied.media_type, "application/vnd.oci.image.layer.v1.tar");
        prepared
            .into_iter()
            .map(|m| Mount {
                mount_type: m.r#type,
                source: m.source,
                target: m.target,
                options: m.options,
            })
            .collect::<Vec<_>>()
    })
    .expect("runtime");
    let root = TempMount::new(&mounts, &scratch).expect("mount the re-applied snapshot");
    let tree = Tree::read(root.path()).expect("read");
    let linked = same_inode(root.path(), "bin/tool", "bin/tool-hard").expect("stat");
    root.unmount().expect("unmount");
    assert_same_tree("diff re-applied on the parent", &tree, expected);
    assert!(linked, "the hard link survives diff and apply");
    daemon.ctr(&["snapshots", "rm", "reapply"]).assert_success();
    daemon.ctr(&["leases", "rm", "reapply"]).assert_success();
    assert!(Path::new(&scratch)
        .read_dir()
        .expect("scratch")
        .next()
        .is_none());
}

fn leased<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("containerd-lease", "reapply".parse().expect("header"));
    request
}
