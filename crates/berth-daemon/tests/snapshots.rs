//! Snapshots: the namespaced snapshotter in-process (containerd's
//! conformance scenarios, isolation, leases, garbage collection), and
//! Debian's `ctr snapshots …` against a private berthd, mounting what it
//! prints.

use berth_core::snapshots::testsuite::{self, Fixture};
use berth_core::snapshots::{Info, Kind, Snapshotter};
use berth_daemon::events::Exchange;
use berth_daemon::local::snapshots::{Snapshots, SnapshotterPlugin};
use berth_store::MetadataStore;
use berth_testkit::pb::services::v1::leases_client::LeasesClient;
use berth_testkit::pb::services::v1::snapshots::snapshots_client::SnapshotsClient;
use berth_testkit::pb::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, StatSnapshotRequest,
};
use berth_testkit::pb::services::v1::{CreateRequest, DeleteRequest, ListResourcesRequest};
use berth_testkit::{block_on, connect, require_ctr, require_root, with_namespace, Daemon};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tonic::Code;

/// A snapshots service over overlayfs and native in a temporary root.
struct Local {
    _dir: tempfile::TempDir,
    store: MetadataStore,
    service: Snapshots,
    root: PathBuf,
    overlay: Arc<berth_snapshot::OverlaySnapshotter>,
}

fn local() -> Local {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let store = MetadataStore::open(&root.join("metadata.redb")).expect("metadata");
    let overlay =
        Arc::new(berth_snapshot::overlay::open(&root.join("overlayfs")).expect("overlayfs"));
    let plugins = vec![
        Arc::new(SnapshotterPlugin {
            name: "overlayfs".into(),
            backend: overlay.clone(),
        }),
        Arc::new(SnapshotterPlugin {
            name: "native".into(),
            backend: Arc::new(berth_snapshot::native::open(&root.join("native")).expect("native")),
        }),
    ];
    let service = Snapshots::new(store.clone(), Exchange::default(), &plugins);
    Local {
        _dir: dir,
        store,
        service,
        root,
        overlay,
    }
}

fn suite_fixture(name: &'static str, can_mount: bool) -> Fixture {
    let l = local();
    let snapshotter = Arc::new(
        l.service
            .namespaced("suite", name, None)
            .expect("snapshotter"),
    );
    Fixture {
        snapshotter,
        can_mount,
        guard: Box::new(l),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaced_overlayfs_passes_the_snapshotter_suite() {
    let can_mount = require_root();
    testsuite::run(|| async move { suite_fixture("overlayfs", can_mount) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaced_native_passes_the_snapshotter_suite() {
    let can_mount = require_root();
    testsuite::run(|| async move { suite_fixture("native", can_mount) }).await;
}

/// The backend keys overlayfs holds.
async fn backend_keys(l: &Local) -> Vec<String> {
    let dirs = std::fs::read_dir(l.root.join("overlayfs/snapshots"))
        .expect("dirs")
        .count();
    let keys: Vec<String> = l
        .overlay
        .walk(&[])
        .await
        .expect("walk")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(dirs, keys.len(), "one directory per backend snapshot");
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_drops_a_row_whose_commit_was_cut_short() {
    let l = local();
    let ns = l
        .service
        .namespaced("crash", "overlayfs", None)
        .expect("ns");
    ns.prepare("whole", "", HashMap::new())
        .await
        .expect("prepare");
    ns.commit("layer", "whole", HashMap::new())
        .await
        .expect("commit");
    ns.prepare("cut", "layer", HashMap::new())
        .await
        .expect("prepare");
    // The daemon died after the backend committed and before the row did.
    let row = l
        .store
        .get_snapshot("crash", "overlayfs", "cut")
        .expect("row");
    l.overlay
        .commit("crash/x/never-recorded", &row.backend_key, HashMap::new())
        .await
        .expect("backend commit");
    assert_eq!(
        l.service.reconcile("overlayfs").await.expect("reconcile"),
        1
    );
    let err = ns.stat("cut").await.expect_err("dangling row removed");
    assert_eq!(err.kind(), berth_core::ErrorKind::NotFound);
    assert_eq!(ns.stat("layer").await.expect("kept").kind, Kind::Committed);
    assert_eq!(
        backend_keys(&l).await.len(),
        1,
        "the orphan commit was pruned"
    );
    assert_eq!(l.service.reconcile("overlayfs").await.expect("again"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_namespaces_use_the_same_key_apart() {
    let l = local();
    let a = l.service.namespaced("a", "", None).expect("a");
    let b = l.service.namespaced("b", "overlayfs", None).expect("b");
    let ma = a.prepare("k", "", HashMap::new()).await.expect("prepare a");
    let mb = b.prepare("k", "", HashMap::new()).await.expect("prepare b");
    assert_ne!(ma, mb, "each namespace has its own backend snapshot");
    a.commit("base", "k", HashMap::new())
        .await
        .expect("commit a");
    let err = b
        .prepare("x", "base", HashMap::new())
        .await
        .expect_err("b cannot see a's base");
    assert_eq!(err.kind(), berth_core::ErrorKind::NotFound, "{err}");
    assert_eq!(b.stat("k").await.expect("b's k").kind, Kind::Active);
    let names = |v: Vec<Info>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(a.walk(&[]).await.expect("walk a")), ["base"]);
    assert_eq!(names(b.walk(&[]).await.expect("walk b")), ["k"]);
    a.remove("base").await.expect("remove a");
    // Remove leaves the backend snapshot to a background prune; wait for it.
    l.service.prune("overlayfs").await.expect("prune");
    assert_eq!(backend_keys(&l).await.len(), 1, "a's backend snapshot went");
    let err = l
        .service
        .namespaced("a", "zfs", None)
        .err()
        .expect("unknown snapshotter");
    assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_prepares_and_commits_of_one_name_leave_one_whole_snapshot() {
    let l = local();
    let ns = Arc::new(l.service.namespaced("race", "overlayfs", None).expect("ns"));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("unpack-{i}");
            ns.prepare(&key, "", HashMap::new()).await?;
            let same_key = ns.prepare("shared", "", HashMap::new()).await.is_ok();
            let committed = ns.commit("sha256:chain", &key, HashMap::new()).await;
            if committed.is_err() {
                ns.remove(&key).await?;
            }
            Ok::<_, berth_core::Error>((same_key, committed.is_ok()))
        }));
    }
    let mut prepared_shared = 0;
    let mut commits = 0;
    for task in tasks {
        let (shared, committed) = task.await.expect("join").expect("unpack");
        prepared_shared += usize::from(shared);
        commits += usize::from(committed);
    }
    assert_eq!((prepared_shared, commits), (1, 1));
    let infos = ns.walk(&[]).await.expect("walk");
    assert_eq!(infos.len(), 2, "{infos:?}");
    l.service.prune("overlayfs").await.expect("prune");
    assert_eq!(
        backend_keys(&l).await.len(),
        2,
        "no stray backend snapshots"
    );
    assert_eq!(
        l.service.reconcile("overlayfs").await.expect("reconcile"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_removes_unowned_snapshots_through_the_hook() {
    let l = local();
    let ns = l.service.namespaced("gc", "overlayfs", None).expect("ns");
    ns.prepare("l1", "", HashMap::new()).await.expect("prepare");
    ns.commit("layer", "l1", HashMap::new())
        .await
        .expect("commit");
    let root = HashMap::from([("containerd.io/gc.root".to_owned(), "x".to_owned())]);
    ns.prepare("kept", "layer", root)
        .await
        .expect("rooted child");
    ns.prepare("lonely", "", HashMap::new())
        .await
        .expect("lonely");
    let report = l.store.garbage_collect().expect("gc");
    let removed: Vec<_> = report
        .removed
        .snapshots
        .iter()
        .map(|s| s.key.clone())
        .collect();
    assert_eq!(removed, ["lonely"], "the rooted child keeps its parent");
    assert_eq!(backend_keys(&l).await.len(), 3, "rows go first");
    let remover = l.service.remover();
    let first = report.removed.snapshots[0].clone();
    tokio::task::spawn_blocking(move || remover(&first))
        .await
        .expect("join")
        .expect("remove");
    assert_eq!(
        backend_keys(&l).await.len(),
        2,
        "the hook removed the backend snapshot"
    );
}

/// `req` in the `unpack` lease.
fn leased<T>(mut req: tonic::Request<T>) -> tonic::Request<T> {
    req.metadata_mut()
        .insert("containerd-lease", "unpack".parse().expect("header"));
    req
}

/// A directory that has whatever is mounted under it unmounted on drop.
struct MountDir(PathBuf);

impl Drop for MountDir {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(&self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}

/// Runs the `mount -t T SRC TARGET -o OPTS` lines `ctr snapshots mounts`
/// printed.
fn run_mount_lines(output: &str) {
    for line in output.lines().filter(|l| l.starts_with("mount ")) {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let status = Command::new("mount").args(&args).status().expect("mount");
        assert!(status.success(), "{line}");
    }
}

fn umount(dir: &Path) {
    let status = Command::new("umount").arg(dir).status().expect("umount");
    assert!(status.success(), "umount {}", dir.display());
}

fn daemon() -> Daemon {
    Daemon::start().unwrap_or_else(|err| panic!("starting the daemon: {err:#}"))
}

#[test]
fn ctr_prepares_commits_views_and_mounts_what_it_prints() {
    if !require_ctr() || !require_root() {
        return;
    }
    let d = daemon();
    let mnt = d.dir().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let _guard = MountDir(mnt.clone());
    let target = mnt.to_str().expect("utf-8 path");

    d.ctr(&["snapshots", "prepare", "base-active"])
        .assert_success();
    let printed = d
        .ctr(&["snapshots", "mounts", target, "base-active"])
        .assert_success();
    assert!(printed.stdout.starts_with("mount -t bind "), "{printed}");
    run_mount_lines(&printed.stdout);
    std::fs::write(mnt.join("hello"), "from the base layer").expect("write in active");
    std::fs::create_dir(mnt.join("dir")).expect("mkdir");
    std::fs::write(mnt.join("dir/gone"), "deleted above").expect("write");
    umount(&mnt);
    d.ctr(&["snapshots", "commit", "base", "base-active"])
        .assert_success();

    d.ctr(&["snapshots", "prepare", "top-active", "base"])
        .assert_success();
    let printed = d
        .ctr(&["snapshots", "mounts", target, "top-active"])
        .assert_success();
    assert!(
        printed.stdout.starts_with("mount -t overlay overlay "),
        "{printed}"
    );
    assert!(printed.stdout.contains("lowerdir="), "{printed}");
    run_mount_lines(&printed.stdout);
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello")).expect("read"),
        "from the base layer"
    );
    std::fs::remove_file(mnt.join("dir/gone")).expect("delete in child");
    std::fs::write(mnt.join("top"), "from the top layer").expect("write top");
    umount(&mnt);
    d.ctr(&["snapshots", "commit", "top", "top-active"])
        .assert_success();

    d.ctr(&["snapshots", "view", "look", "top"])
        .assert_success();
    let printed = d
        .ctr(&["snapshots", "mounts", target, "look"])
        .assert_success();
    run_mount_lines(&printed.stdout);
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello")).expect("read"),
        "from the base layer"
    );
    assert_eq!(
        std::fs::read_to_string(mnt.join("top")).expect("read"),
        "from the top layer"
    );
    assert!(!mnt.join("dir/gone").exists(), "the child's delete shows");
    assert!(
        std::fs::write(mnt.join("x"), "x").is_err(),
        "a view is read-only"
    );
    umount(&mnt);

    let ls = d.ctr(&["snapshots", "ls"]).assert_success();
    let rows: Vec<Vec<&str>> = ls
        .lines()
        .iter()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["base", "Committed"],
            vec!["look", "top", "View"],
            vec!["top", "base", "Committed"]
        ],
        "{ls}"
    );
    let tree = d.ctr(&["snapshots", "tree"]).assert_success();
    assert!(tree.stdout.contains(" base\n"), "{tree}");
    assert!(tree.stdout.contains("\\_ top"), "{tree}");
    let info = d.ctr(&["snapshots", "info", "top"]).assert_success();
    let json: serde_json::Value = serde_json::from_str(&info.stdout).expect("info is JSON");
    assert_eq!(json["Kind"], "Committed");
    assert_eq!(json["Parent"], "base");
    let usage = d.ctr(&["snapshots", "usage", "base"]).assert_success();
    let row: Vec<&str> = usage.lines()[1].split_whitespace().collect();
    assert_eq!(row[0], "base", "{usage}");
    assert!(
        row.last().expect("inodes").parse::<u32>().expect("number") >= 3,
        "{usage}"
    );

    d.ctr(&["snapshots", "label", "top", "tier=web"])
        .assert_success();
    let info = d.ctr(&["snapshots", "info", "top"]).assert_success();
    let json: serde_json::Value = serde_json::from_str(&info.stdout).expect("JSON");
    assert_eq!(json["Labels"]["tier"], "web", "{info}");
    d.ctr(&["snapshots", "label", "top", "tier="])
        .assert_success();
    let info = d.ctr(&["snapshots", "info", "top"]).assert_success();
    assert!(!info.stdout.contains("tier"), "{info}");

    d.ctr(&["snapshots", "rm", "base"])
        .assert_failure_containing("failed precondition");
    d.ctr(&["snapshots", "info", "nope"])
        .assert_failure_containing("not found");
    d.ctr(&["snapshots", "prepare", "top-active", "nope"])
        .assert_failure_containing("not found");
    d.ctr(&["snapshots", "prepare", "look"])
        .assert_failure_containing("already exists");
    d.ctr(&["snapshots", "--snapshotter", "zfs", "ls"])
        .assert_failure_containing("snapshotter not loaded");
    d.ctr(&["snapshots", "rm", "look", "top", "base"])
        .assert_success();
    assert_eq!(
        d.ctr(&["snapshots", "ls"]).assert_success().lines().len(),
        1
    );
    // Remove answers once the rows are gone; a background prune removes
    // the directories.
    let dirs = d.root().join("snapshots/overlayfs/snapshots");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&dirs).expect("dirs").count() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "removing the snapshots never removed their directories"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn ctr_native_snapshotter_and_namespaces() {
    if !require_ctr() || !require_root() {
        return;
    }
    let d = daemon();
    let mnt = d.dir().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let _guard = MountDir(mnt.clone());
    let target = mnt.to_str().expect("utf-8 path");
    let native = |ns: &str, args: &[&str]| {
        let mut all = vec!["snapshots", "--snapshotter", "native"];
        all.extend_from_slice(args);
        d.ctr_ns(ns, &all)
    };
    native("a", &["prepare", "k"]).assert_success();
    native("b", &["prepare", "k"]).assert_success();
    let printed = native("a", &["mounts", target, "k"]).assert_success();
    run_mount_lines(&printed.stdout);
    std::fs::write(mnt.join("only-in-a"), "a").expect("write");
    umount(&mnt);
    native("a", &["commit", "c", "k"]).assert_success();
    native("a", &["prepare", "child", "c"]).assert_success();
    let printed = native("a", &["mounts", target, "child"]).assert_success();
    assert!(printed.stdout.starts_with("mount -t bind "), "{printed}");
    run_mount_lines(&printed.stdout);
    assert!(mnt.join("only-in-a").exists(), "native copies the parent");
    umount(&mnt);
    let printed = native("b", &["mounts", target, "k"]).assert_success();
    run_mount_lines(&printed.stdout);
    assert!(!mnt.join("only-in-a").exists(), "namespaces are apart");
    umount(&mnt);
    let ls_b = native("b", &["ls"]).assert_success();
    assert_eq!(ls_b.lines().len(), 2, "{ls_b}");
    d.ctr_ns("b", &["snapshots", "ls"]).assert_success();
    assert_eq!(
        d.ctr_ns("b", &["snapshots", "ls"]).lines().len(),
        1,
        "overlayfs is separate"
    );
    // containerd refuses to delete a namespace that still owns snapshots.
    d.ctr(&["namespaces", "rm", "b"]).assert_failure();
    native("b", &["rm", "k"]).assert_success();
    d.ctr(&["namespaces", "rm", "b"]).assert_success();
}

#[test]
fn a_lease_holds_snapshots_until_it_goes_and_gc_removes_them() {
    if !require_root() {
        return;
    }
    let d = daemon();
    let address = d.address().to_path_buf();
    let dirs = d.root().join("snapshots/overlayfs/snapshots");
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let mut leases = LeasesClient::new(channel.clone());
        let mut snapshots = SnapshotsClient::new(channel);
        let lease = CreateRequest {
            id: "unpack".into(),
            labels: HashMap::new(),
        };
        leases
            .create(with_namespace(lease, "default").expect("req"))
            .await
            .expect("lease");
        let prepare = PrepareSnapshotRequest {
            key: "extract-1".into(),
            ..Default::default()
        };
        snapshots
            .prepare(leased(with_namespace(prepare, "default").expect("req")))
            .await
            .expect("prepare");
        let commit = CommitSnapshotRequest {
            name: "sha256:layer".into(),
            key: "extract-1".into(),
            ..Default::default()
        };
        snapshots
            .commit(leased(with_namespace(commit, "default").expect("req")))
            .await
            .expect("commit");
        let list = ListResourcesRequest {
            id: "unpack".into(),
        };
        let held = leases
            .list_resources(with_namespace(list, "default").expect("req"))
            .await
            .expect("resources")
            .into_inner()
            .resources;
        assert!(
            held.iter()
                .any(|r| r.r#type == "snapshots/overlayfs" && r.id == "sha256:layer"),
            "{held:?}"
        );
        assert_eq!(std::fs::read_dir(&dirs).expect("dirs").count(), 1);
        let delete = DeleteRequest {
            id: "unpack".into(),
            sync: true,
        };
        leases
            .delete(with_namespace(delete, "default").expect("req"))
            .await
            .expect("delete");
        let stat = StatSnapshotRequest {
            key: "sha256:layer".into(),
            ..Default::default()
        };
        let err = snapshots
            .stat(with_namespace(stat, "default").expect("req"))
            .await
            .expect_err("collected");
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(
            std::fs::read_dir(&dirs).expect("dirs").count(),
            0,
            "backend removed"
        );
    })
    .expect("runtime");
}

#[test]
fn kill_minus_nine_during_commits_leaves_only_whole_snapshots() {
    if !require_ctr() {
        return;
    }
    let mut d = daemon();
    let ctr = berth_testkit::ctr_bin().expect("ctr");
    let address = d.address().to_path_buf();
    let worker = std::thread::spawn(move || {
        let run = |args: &[&str]| {
            Command::new(&ctr)
                .arg("--address")
                .arg(&address)
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let mut parent = String::new();
        for i in 0.. {
            let (key, name) = (format!("extract-{i}"), format!("layer-{i}"));
            let mut prepare = vec!["snapshots", "prepare", key.as_str()];
            if !parent.is_empty() {
                prepare.push(parent.as_str());
            }
            if !run(&prepare) || !run(&["snapshots", "commit", &name, &key]) {
                return i;
            }
            parent = name;
        }
        unreachable!()
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.kill9().expect("kill -9");
    let done = worker.join().expect("worker");
    assert!(done > 0, "some commits landed before the kill");
    d.restart().expect("restart");
    let dirs = d.root().join("snapshots/overlayfs/snapshots");
    let rows = |d: &Daemon| d.ctr(&["snapshots", "ls"]).assert_success().lines().len() - 1;
    // Reconciliation runs in the background after start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&dirs).expect("dirs").count() != rows(&d) {
        assert!(
            std::time::Instant::now() < deadline,
            "backend and metadata never agreed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ls = d.ctr(&["snapshots", "ls"]).assert_success();
    for row in ls.lines().iter().skip(1) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let key = cols[0];
        match *cols.last().expect("kind") {
            "Active" => {
                let m = d
                    .ctr(&["snapshots", "mounts", "/mnt", key])
                    .assert_success();
                assert!(m.stdout.starts_with("mount "), "{m}");
            }
            "Committed" => {
                d.ctr(&["snapshots", "usage", key]).assert_success();
                let n: u32 = key
                    .trim_start_matches("layer-")
                    .parse()
                    .expect("layer number");
                if n > 0 {
                    assert_eq!(cols[1], format!("layer-{}", n - 1), "{ls}");
                }
            }
            other => panic!("unexpected kind {other} in {ls}"),
        }
    }
    // The chain is usable: build on its top.
    let top = ls
        .lines()
        .iter()
        .filter(|l| l.trim_end().ends_with("Committed"))
        .count();
    if top > 0 {
        let parent = format!("layer-{}", top - 1);
        d.ctr(&["snapshots", "prepare", "after-crash", &parent])
            .assert_success();
    }
}

#[test]
fn snapshot_changes_publish_events() {
    if !require_ctr() {
        return;
    }
    let d = daemon();
    let mut events = d.ctr_stream(None, &["events"]).expect("ctr events");
    // `ctr events` has no "subscribed" signal: repeat until the first shows.
    let mut subscribed = false;
    for attempt in 0..50 {
        let key = format!("probe-{attempt}");
        d.ctr(&["snapshots", "prepare", &key]).assert_success();
        if events
            .wait_for(
                |l| l.contains("/snapshot/prepare") && l.contains(&key),
                std::time::Duration::from_millis(300),
            )
            .is_some()
        {
            subscribed = true;
            break;
        }
    }
    assert!(
        subscribed,
        "no /snapshot/prepare event:\n{}",
        events.report()
    );
    d.ctr(&["snapshots", "prepare", "ev"]).assert_success();
    d.ctr(&["snapshots", "commit", "ev-c", "ev"])
        .assert_success();
    d.ctr(&["snapshots", "rm", "ev-c"]).assert_success();
    let timeout = std::time::Duration::from_secs(5);
    let commit = events.wait_for(|l| l.contains("/snapshot/commit"), timeout);
    assert!(
        commit.as_deref().is_some_and(|l| l.contains("ev-c")),
        "{}",
        events.report()
    );
    let remove = events.wait_for(|l| l.contains("/snapshot/remove"), timeout);
    assert!(
        remove.as_deref().is_some_and(|l| l.contains("ev-c")),
        "{}",
        events.report()
    );
}

#[test]
fn ctr_lists_the_snapshotter_plugins_with_platform_and_root() {
    if !require_ctr() {
        return;
    }
    let d = daemon();
    let plugins = d.ctr(&["plugins", "ls"]).assert_success();
    for id in ["overlayfs", "native"] {
        let row = plugins
            .lines()
            .into_iter()
            .find(|l| l.starts_with("io.containerd.snapshotter.v1") && l.contains(id))
            .unwrap_or_else(|| panic!("no {id} snapshotter in\n{plugins}"));
        assert!(
            row.contains(" linux/") && row.trim_end().ends_with("ok"),
            "{row}"
        );
    }
    assert!(plugins.stdout.contains("snapshots-service"), "{plugins}");
    let detail = d
        .ctr(&["plugins", "ls", "-d", "id==overlayfs"])
        .assert_success();
    let root = d.root().join("snapshots/overlayfs");
    assert!(
        detail.stdout.contains(&root.display().to_string()),
        "{detail}"
    );
}
