//! A conformance suite for [`Snapshotter`] implementations, after
//! containerd's `core/snapshots/testsuite/testsuite.go`: the overlayfs and
//! native snapshotters, the daemon's namespaced wrapper and the remote
//! client all run the same scenarios, so they answer alike.
//!
//! ```no_run
//! # async fn demo() {
//! use berth_core::snapshots::testsuite::{self, Fixture};
//! testsuite::run(|| async {
//!     # let snapshotter: std::sync::Arc<dyn berth_core::snapshots::Snapshotter> = unimplemented!();
//!     Fixture { snapshotter, can_mount: false, guard: Box::new(()) }
//! })
//! .await;
//! # }
//! ```
//!
//! Each scenario gets a fresh fixture and panics, naming itself, on the
//! first rule it finds broken. Scenarios that really mount what
//! [`Snapshotter::mounts`] returns run only with [`Fixture::can_mount`]
//! (root on Linux).

use super::{Info, Kind, Snapshotter};
use crate::filters::Filter;
use crate::mount::{Mount, TempMount};
use crate::{ErrorKind, Result};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// A fresh snapshotter for one scenario.
pub struct Fixture {
    /// The snapshotter under test, empty.
    pub snapshotter: Arc<dyn Snapshotter>,
    /// Whether the scenarios may mount (needs root).
    pub can_mount: bool,
    /// Whatever must live as long as the scenario (directories, a daemon).
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Runs every scenario, each on a fixture from `factory`.
pub async fn run<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    scenario("basic chain", basic_chain(factory().await)).await;
    scenario("stat active", stat_active(factory().await)).await;
    scenario("keys are unique", keys_are_unique(factory().await)).await;
    scenario("parent rules", parent_rules(factory().await)).await;
    scenario("commit rules", commit_rules(factory().await)).await;
    scenario("remove rules", remove_rules(factory().await)).await;
    scenario("views", views(factory().await)).await;
    scenario("labels", labels(factory().await)).await;
    scenario("walk filters", walk_filters(factory().await)).await;
    scenario("usage", usage(factory().await)).await;
    scenario("cleanup", cleanup(factory().await)).await;
    let mounting = factory().await;
    if mounting.can_mount {
        scenario("layers through mounts", layers_through_mounts(mounting)).await;
        scenario("deep chain mounts", deep_chain(factory().await)).await;
        scenario("usage of written files", usage_written(factory().await)).await;
    }
}

async fn scenario(name: &str, body: impl Future<Output = Result<()>>) {
    if let Err(err) = body.await {
        panic!("snapshot testsuite: {name}: {err}");
    }
}

fn no_labels() -> HashMap<String, String> {
    HashMap::new()
}

fn label(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_owned(), v.to_owned())])
}

/// Asserts that `result` failed with `kind`, naming `what`.
fn expect_kind<T>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(_) => panic!("snapshot testsuite: {what}: expected {kind:?}, got Ok"),
        Err(err) => assert_eq!(err.kind(), kind, "snapshot testsuite: {what}: {err}"),
    }
}

async fn commit_chain(s: &dyn Snapshotter, names: &[&str]) -> Result<()> {
    let mut parent = String::new();
    for name in names {
        let key = format!("{name}-active");
        s.prepare(&key, &parent, no_labels()).await?;
        s.commit(name, &key, no_labels()).await?;
        parent = (*name).to_owned();
    }
    Ok(())
}

async fn basic_chain(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    let mounts = s.prepare("base-active", "", no_labels()).await?;
    assert!(!mounts.is_empty(), "prepare returns mounts");
    s.commit("base", "base-active", no_labels()).await?;
    expect_kind(
        s.stat("base-active").await,
        ErrorKind::NotFound,
        "committed key",
    );
    let base = s.stat("base").await?;
    assert_eq!((base.kind, base.parent.as_str()), (Kind::Committed, ""));
    s.prepare("top-active", "base", no_labels()).await?;
    let top = s.stat("top-active").await?;
    assert_eq!((top.kind, top.parent.as_str()), (Kind::Active, "base"));
    s.commit("top", "top-active", no_labels()).await?;
    assert_eq!(s.stat("top").await?.parent, "base");
    let names: Vec<String> = s.walk(&[]).await?.into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["base", "top"]);
    expect_kind(
        s.mounts("top").await,
        ErrorKind::FailedPrecondition,
        "mounts of committed",
    );
    Ok(())
}

async fn stat_active(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    s.prepare("a", "", label("x", "1")).await?;
    let info = s.stat("a").await?;
    assert_eq!(info.name, "a");
    assert_eq!(info.kind, Kind::Active);
    assert_eq!(info.labels, label("x", "1"));
    assert!(info.created > std::time::SystemTime::UNIX_EPOCH);
    expect_kind(s.stat("missing").await, ErrorKind::NotFound, "stat missing");
    expect_kind(
        s.mounts("missing").await,
        ErrorKind::NotFound,
        "mounts missing",
    );
    Ok(())
}

async fn keys_are_unique(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    s.prepare("k", "", no_labels()).await?;
    expect_kind(
        s.prepare("k", "", no_labels()).await,
        ErrorKind::AlreadyExists,
        "same key",
    );
    expect_kind(
        s.view("k", "", no_labels()).await,
        ErrorKind::AlreadyExists,
        "view key",
    );
    s.commit("c", "k", no_labels()).await?;
    expect_kind(
        s.prepare("c", "", no_labels()).await,
        ErrorKind::AlreadyExists,
        "key equal to a committed name",
    );
    // The active key is free again after its commit.
    s.prepare("k", "c", no_labels()).await?;
    Ok(())
}

async fn parent_rules(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    expect_kind(
        s.prepare("a", "nope", no_labels()).await,
        ErrorKind::NotFound,
        "missing parent",
    );
    s.prepare("active", "", no_labels()).await?;
    expect_kind(
        s.prepare("b", "active", no_labels()).await,
        ErrorKind::InvalidArgument,
        "active parent",
    );
    expect_kind(
        s.stat("a").await,
        ErrorKind::NotFound,
        "failed prepare left a snapshot",
    );
    Ok(())
}

async fn commit_rules(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    expect_kind(
        s.commit("n", "nope", no_labels()).await,
        ErrorKind::NotFound,
        "commit missing",
    );
    commit_chain(s, &["c1"]).await?;
    s.prepare("a", "c1", no_labels()).await?;
    expect_kind(
        s.commit("c1", "a", no_labels()).await,
        ErrorKind::AlreadyExists,
        "name taken",
    );
    s.view("v", "c1", no_labels()).await?;
    expect_kind(
        s.commit("c2", "v", no_labels()).await,
        ErrorKind::FailedPrecondition,
        "commit view",
    );
    expect_kind(
        s.commit("c3", "c1", no_labels()).await,
        ErrorKind::FailedPrecondition,
        "commit committed",
    );
    s.commit("c2", "a", no_labels()).await?;
    assert_eq!(s.stat("c2").await?.parent, "c1");
    Ok(())
}

async fn remove_rules(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    expect_kind(
        s.remove("nope").await,
        ErrorKind::NotFound,
        "remove missing",
    );
    commit_chain(s, &["l1", "l2"]).await?;
    s.prepare("child", "l2", no_labels()).await?;
    expect_kind(
        s.remove("l1").await,
        ErrorKind::FailedPrecondition,
        "remove with child",
    );
    expect_kind(
        s.remove("l2").await,
        ErrorKind::FailedPrecondition,
        "remove with active child",
    );
    s.remove("child").await?;
    s.remove("l2").await?;
    s.remove("l1").await?;
    assert!(s.walk(&[]).await?.is_empty(), "everything removed");
    // Removed names can be used again.
    commit_chain(s, &["l1"]).await?;
    Ok(())
}

async fn views(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    commit_chain(s, &["v1", "v2"]).await?;
    let one = s.view("view1", "v1", no_labels()).await?;
    assert!(
        one.iter().all(read_only_or_lower),
        "view mounts are read-only: {one:?}"
    );
    let two = s.view("view2", "v2", no_labels()).await?;
    assert!(
        two.iter().all(read_only_or_lower),
        "view mounts are read-only: {two:?}"
    );
    let info = s.stat("view2").await?;
    assert_eq!((info.kind, info.parent.as_str()), (Kind::View, "v2"));
    s.view("empty-view", "", no_labels()).await?;
    s.prepare("act", "v2", no_labels()).await?;
    expect_kind(
        s.view("bad", "act", no_labels()).await,
        ErrorKind::InvalidArgument,
        "view of active",
    );
    expect_kind(
        s.remove("v2").await,
        ErrorKind::FailedPrecondition,
        "remove parent of a view",
    );
    s.remove("view2").await?;
    Ok(())
}

/// A read-only mount: `ro`, or an overlay with no upper directory.
fn read_only_or_lower(m: &Mount) -> bool {
    m.read_only()
        || (m.mount_type == "overlay" && !m.options.iter().any(|o| o.starts_with("upperdir=")))
}

async fn labels(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    s.prepare("a", "", label("keep", "1")).await?;
    s.commit("c", "a", label("committed", "yes")).await?;
    assert_eq!(
        s.stat("c").await?.labels,
        label("committed", "yes"),
        "commit labels"
    );
    let mut new = Info {
        name: "c".into(),
        labels: label("extra", "2"),
        ..Info::default()
    };
    let updated = s.update(new.clone(), &["labels.extra".into()]).await?;
    assert_eq!(updated.labels.len(), 2, "{:?}", updated.labels);
    assert_eq!(s.stat("c").await?.labels, updated.labels);
    new.labels = label("only", "x");
    let replaced = s.update(new.clone(), &[]).await?;
    assert_eq!(replaced.labels, label("only", "x"));
    let removed = s
        .update(
            Info {
                labels: no_labels(),
                ..new.clone()
            },
            &["labels.only".into()],
        )
        .await?;
    assert!(removed.labels.is_empty());
    expect_kind(
        s.update(new.clone(), &["name".into()]).await,
        ErrorKind::InvalidArgument,
        "update name",
    );
    new.name = "missing".into();
    expect_kind(
        s.update(new, &[]).await,
        ErrorKind::NotFound,
        "update missing",
    );
    Ok(())
}

async fn walk_filters(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    commit_chain(s, &["w1", "w2"]).await?;
    s.prepare("wa", "w2", label("tier", "web")).await?;
    s.view("wv", "w1", no_labels()).await?;
    let names = |infos: Vec<Info>| infos.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.walk(&["kind==committed".into()]).await?),
        ["w1", "w2"]
    );
    assert_eq!(names(s.walk(&["labels.tier==web".into()]).await?), ["wa"]);
    assert_eq!(names(s.walk(&["parent==w1".into()]).await?), ["w2", "wv"]);
    assert_eq!(
        names(s.walk(&["kind==view".into(), "name==wa".into()]).await?),
        ["wa", "wv"]
    );
    expect_kind(
        s.walk(&["name==".into()]).await,
        ErrorKind::InvalidArgument,
        "bad filter",
    );
    let _ = Filter::always();
    Ok(())
}

async fn usage(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    s.prepare("u", "", no_labels()).await?;
    let active = s.usage("u").await?;
    assert!(active.size >= 0 && active.inodes >= 0, "{active:?}");
    s.commit("uc", "u", no_labels()).await?;
    let committed = s.usage("uc").await?;
    assert!(committed.size >= 0, "{committed:?}");
    expect_kind(
        s.usage("missing").await,
        ErrorKind::NotFound,
        "usage missing",
    );
    Ok(())
}

async fn cleanup(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    commit_chain(s, &["x"]).await?;
    s.prepare("y", "x", no_labels()).await?;
    s.remove("y").await?;
    s.cleanup().await?;
    assert_eq!(s.walk(&[]).await?.len(), 1);
    s.prepare("y", "x", no_labels()).await?;
    Ok(())
}

/// Mounts `mounts`, runs `f` on the tree, unmounts.
fn with_mounted<T>(mounts: &[Mount], f: impl FnOnce(&Path) -> std::io::Result<T>) -> Result<T> {
    let point = TempMount::new(mounts, &std::env::temp_dir())?;
    let out = f(point.path())?;
    point.unmount()?;
    Ok(out)
}

async fn layers_through_mounts(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    let m = s.prepare("l1-a", "", no_labels()).await?;
    with_mounted(&m, |root| {
        std::fs::write(root.join("a"), b"one")?;
        std::fs::create_dir(root.join("dir"))?;
        std::fs::write(root.join("dir/b"), b"two")
    })?;
    s.commit("l1", "l1-a", no_labels()).await?;
    let m = s.prepare("l2-a", "l1", no_labels()).await?;
    with_mounted(&m, |root| {
        assert_eq!(std::fs::read(root.join("a"))?, b"one");
        std::fs::remove_file(root.join("dir/b"))?;
        std::fs::write(root.join("c"), b"three")
    })?;
    s.commit("l2", "l2-a", no_labels()).await?;
    let m = s.view("look", "l2", no_labels()).await?;
    with_mounted(&m, |root| {
        assert_eq!(std::fs::read(root.join("a"))?, b"one");
        assert_eq!(std::fs::read(root.join("c"))?, b"three");
        assert!(!root.join("dir/b").exists(), "deleted in layer 2");
        assert!(
            std::fs::write(root.join("d"), b"x").is_err(),
            "a view is read-only"
        );
        Ok(())
    })?;
    // The first layer is untouched by the second.
    let m = s.view("look1", "l1", no_labels()).await?;
    with_mounted(&m, |root| {
        assert_eq!(std::fs::read(root.join("dir/b"))?, b"two");
        assert!(!root.join("c").exists());
        Ok(())
    })
}

async fn deep_chain(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    let depth = 130;
    let mut parent = String::new();
    for i in 0..depth {
        let key = format!("deep-{i}-active");
        let m = s.prepare(&key, &parent, no_labels()).await?;
        with_mounted(&m, |root| {
            std::fs::write(root.join(format!("f{i}")), i.to_string())
        })?;
        let name = format!("sha256:{i:064x}");
        s.commit(&name, &key, no_labels()).await?;
        parent = name;
    }
    let m = s.prepare("deep-top", &parent, no_labels()).await?;
    with_mounted(&m, |root| {
        for i in 0..depth {
            assert_eq!(
                std::fs::read_to_string(root.join(format!("f{i}")))?,
                i.to_string()
            );
        }
        Ok(())
    })
}

async fn usage_written(f: Fixture) -> Result<()> {
    let s = f.snapshotter.as_ref();
    let m = s.prepare("w", "", no_labels()).await?;
    with_mounted(&m, |root| {
        std::fs::write(root.join("big"), vec![7u8; 64 * 1024])
    })?;
    let active = s.usage("w").await?;
    assert!(
        active.size >= 64 * 1024 && active.inodes >= 2,
        "active {active:?}"
    );
    s.commit("wc", "w", no_labels()).await?;
    let committed = s.usage("wc").await?;
    assert!(committed.size >= 64 * 1024, "committed {committed:?}");
    Ok(())
}
