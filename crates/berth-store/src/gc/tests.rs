//! Garbage-collection rules, each on a temporary database: objects are
//! written as the services write them, one collection runs, and the test
//! checks which rows are left.

#![allow(clippy::unwrap_used)]

use super::labels::*;
use super::scan::SnapshotRefs;
use crate::encoding::encode;
use crate::schema::{CONTENT, SNAPSHOTS};
use crate::testutil::{container, store};
use crate::{Lease, LeaseResource, MetadataStore};
use berth_core::filters::Filter;
use berth_core::images::Image;
use berth_core::{Descriptor, Digest};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap};
use std::time::UNIX_EPOCH;

const PAST: &str = "2000-01-01T00:00:00Z";
const FUTURE: &str = "2999-01-01T00:00:00Z";

fn digest(name: &str) -> String {
    Digest::sha256_of(name.as_bytes()).to_string()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Records blob `name` (its digest is the sha256 of the name) as held by
/// namespace `ns`, with `labels`.
fn blob(store: &MetadataStore, ns: &str, name: &str, pairs: &[(&str, &str)]) {
    let bytes = crate::content::record_bytes(1, labels(pairs));
    let tx = store.db.begin_write().unwrap();
    {
        let mut namespaces = tx.open_table(crate::schema::NAMESPACES).unwrap();
        crate::namespaces::ensure(&mut namespaces, ns).unwrap();
        let mut table = tx.open_table(CONTENT).unwrap();
        table
            .insert((ns, digest(name).as_str()), bytes.as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
}

/// Records snapshot `snapshotter/key` with `parent` and labels.
fn snapshot(
    store: &MetadataStore,
    ns: &str,
    snapshotter: &str,
    key: &str,
    parent: &str,
    pairs: &[(&str, &str)],
) {
    let record = SnapshotRefs {
        parent: parent.to_owned(),
        labels: labels(pairs),
    };
    let bytes = encode(&record).unwrap();
    let tx = store.db.begin_write().unwrap();
    tx.open_table(SNAPSHOTS)
        .unwrap()
        .insert((ns, snapshotter, key), bytes.as_slice())
        .unwrap();
    tx.commit().unwrap();
}

/// The blob names (of `names`) namespace `ns` still holds.
fn blobs_left(store: &MetadataStore, ns: &str, names: &[&str]) -> Vec<String> {
    let tx = store.db.begin_read().unwrap();
    let table = tx.open_table(CONTENT).unwrap();
    names
        .iter()
        .filter(|n| table.get((ns, digest(n).as_str())).unwrap().is_some())
        .map(|n| n.to_string())
        .collect()
}

fn snapshots_left(store: &MetadataStore, ns: &str) -> Vec<String> {
    let tx = store.db.begin_read().unwrap();
    let table = tx.open_table(SNAPSHOTS).unwrap();
    table
        .iter()
        .unwrap()
        .filter_map(|row| {
            let key = row.unwrap().0;
            let (n, ss, k) = key.value();
            (n == ns).then(|| format!("{ss}/{k}"))
        })
        .collect()
}

fn image(store: &MetadataStore, ns: &str, name: &str, target: &str, pairs: &[(&str, &str)]) {
    let image = Image {
        name: name.to_owned(),
        labels: labels(pairs).into_iter().collect(),
        target: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            digest: Digest::parse(&digest(target)).unwrap(),
            size: 10,
            annotations: HashMap::new(),
        },
        created_at: UNIX_EPOCH,
        updated_at: UNIX_EPOCH,
    };
    store.create_image(ns, image, None).unwrap();
}

fn lease(store: &MetadataStore, ns: &str, id: &str, pairs: &[(&str, &str)]) {
    let lease = Lease {
        id: id.to_owned(),
        created_at: UNIX_EPOCH,
        labels: labels(pairs).into_iter().collect(),
    };
    store.create_lease(ns, lease).unwrap();
}

fn hold(store: &MetadataStore, ns: &str, lease: &str, kind: &str, id: &str) {
    let resource = LeaseResource {
        id: id.to_owned(),
        kind: kind.to_owned(),
    };
    store.add_lease_resource(ns, lease, &resource).unwrap();
}

/// A manifest with a config and two layers, as a pull labels them.
fn pulled_image(store: &MetadataStore, ns: &str, prefix: &str) -> Vec<String> {
    let name = |part: &str| format!("{prefix}{part}");
    for part in ["config", "layer0", "layer1"] {
        blob(store, ns, &name(part), &[]);
    }
    let (config, l0, l1) = (
        digest(&name("config")),
        digest(&name("layer0")),
        digest(&name("layer1")),
    );
    blob(
        store,
        ns,
        &name("manifest"),
        &[
            ("containerd.io/gc.ref.content.config", config.as_str()),
            ("containerd.io/gc.ref.content.l.0", l0.as_str()),
            ("containerd.io/gc.ref.content.l.1", l1.as_str()),
        ],
    );
    ["manifest", "config", "layer0", "layer1"]
        .iter()
        .map(|p| name(p))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_image_keeps_its_target_and_what_the_target_references() {
    let (_dir, store) = store();
    let parts = pulled_image(&store, "default", "a-");
    blob(&store, "default", "orphan", &[]);
    image(&store, "default", "docker.io/x/a:1", "a-manifest", &[]);
    let report = store.garbage_collect().unwrap();
    let mut all = strs(&parts);
    all.push("orphan");
    assert_eq!(blobs_left(&store, "default", &all), parts);
    assert_eq!(
        report.removed.content,
        vec![("default".to_owned(), digest("orphan"))]
    );
    assert_eq!(
        report.removed.unowned_blobs,
        vec![Digest::parse(&digest("orphan")).unwrap()]
    );
    assert_eq!(report.marks, 1);
}

#[test]
fn deleting_an_image_frees_exactly_its_unshared_blobs() {
    let (_dir, store) = store();
    let a = pulled_image(&store, "default", "a-");
    // b shares a's config and first layer.
    let b0 = digest("b-layer0");
    blob(&store, "default", "b-layer0", &[]);
    let (config, shared) = (digest("a-config"), digest("a-layer0"));
    blob(
        &store,
        "default",
        "b-manifest",
        &[
            ("containerd.io/gc.ref.content.config", config.as_str()),
            ("containerd.io/gc.ref.content.l.0", shared.as_str()),
            ("containerd.io/gc.ref.content.l.1", b0.as_str()),
        ],
    );
    image(&store, "default", "a", "a-manifest", &[]);
    image(&store, "default", "b", "b-manifest", &[]);
    assert!(store.garbage_collect().unwrap().removed.content.is_empty());

    store.delete_image("default", "a", None, None).unwrap();
    let report = store.garbage_collect().unwrap();
    let mut removed: Vec<_> = report
        .removed
        .content
        .iter()
        .map(|(_, d)| d.clone())
        .collect();
    removed.sort();
    let mut expected = vec![digest("a-manifest"), digest("a-layer1")];
    expected.sort();
    assert_eq!(removed, expected);
    let all = strs(&a);
    assert_eq!(
        blobs_left(&store, "default", &all),
        ["a-config", "a-layer0"]
    );
}

#[test]
fn gc_root_label_keeps_a_blob_and_its_references() {
    let (_dir, store) = store();
    let child = digest("child");
    blob(&store, "default", "child", &[]);
    blob(
        &store,
        "default",
        "rooted",
        &[
            (LABEL_ROOT, ""),
            ("containerd.io/gc.ref.content", child.as_str()),
        ],
    );
    blob(&store, "default", "loose", &[]);
    store.garbage_collect().unwrap();
    assert_eq!(
        blobs_left(&store, "default", &["rooted", "child", "loose"]),
        ["rooted", "child"]
    );
}

#[test]
fn only_named_reference_labels_count() {
    let (_dir, store) = store();
    let (a, b, c) = (digest("a"), digest("b"), digest("c"));
    for n in ["a", "b", "c"] {
        blob(&store, "default", n, &[]);
    }
    blob(
        &store,
        "default",
        "root",
        &[
            (LABEL_ROOT, "x"),
            ("containerd.io/gc.ref.content/slash", a.as_str()),
            ("containerd.io/gc.ref.content.dot", b.as_str()),
            ("containerd.io/gc.ref.contentious", c.as_str()),
        ],
    );
    store.garbage_collect().unwrap();
    assert_eq!(blobs_left(&store, "default", &["a", "b", "c"]), ["a", "b"]);
}

#[test]
fn a_lease_keeps_content_until_it_is_deleted() {
    let (_dir, store) = store();
    let parts = pulled_image(&store, "default", "p-");
    lease(&store, "default", "pull", &[]);
    hold(&store, "default", "pull", "content", &digest("p-manifest"));
    store.garbage_collect().unwrap();
    let all = strs(&parts);
    assert_eq!(
        blobs_left(&store, "default", &all),
        parts,
        "lease holds the tree"
    );

    store.delete_lease("default", "pull").unwrap();
    let report = store.garbage_collect().unwrap();
    assert!(blobs_left(&store, "default", &all).is_empty());
    assert_eq!(report.removed.unowned_blobs.len(), 4);
}

#[test]
fn an_expired_lease_is_removed_and_lets_go() {
    let (_dir, store) = store();
    for (id, expire) in [("old", PAST), ("new", FUTURE), ("bad", "soon")] {
        lease(&store, "default", id, &[(LABEL_EXPIRE, expire)]);
        blob(&store, "default", id, &[]);
        hold(&store, "default", id, "content", &digest(id));
    }
    let report = store.garbage_collect().unwrap();
    assert_eq!(
        report.removed.leases,
        vec![("default".to_owned(), "old".to_owned())]
    );
    let left: Vec<_> = store
        .list_leases("default", &Filter::always())
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, ["bad", "new"], "an unparsable expiry never expires");
    assert_eq!(
        blobs_left(&store, "default", &["old", "new", "bad"]),
        ["new", "bad"]
    );
    let err = store.list_lease_resources("default", "old").unwrap_err();
    assert!(err.is_not_found());
}

#[test]
fn a_flat_lease_holds_only_what_it_names() {
    let (_dir, store) = store();
    let parts = pulled_image(&store, "default", "f-");
    lease(&store, "default", "flat", &[(LABEL_FLAT, "true")]);
    hold(&store, "default", "flat", "content", &digest("f-manifest"));
    snapshot(&store, "default", "overlayfs", "base", "", &[]);
    snapshot(&store, "default", "overlayfs", "top", "base", &[]);
    snapshot(&store, "default", "overlayfs", "other", "", &[]);
    hold(&store, "default", "flat", "snapshots/overlayfs", "top");
    store.garbage_collect().unwrap();
    let all = strs(&parts);
    assert_eq!(blobs_left(&store, "default", &all), ["f-manifest"]);
    assert_eq!(
        snapshots_left(&store, "default"),
        ["overlayfs/base", "overlayfs/top"],
        "a flat snapshot keeps its parents"
    );
}

#[test]
fn a_flat_lease_on_an_image_keeps_its_target_only() {
    let (_dir, store) = store();
    let parts = pulled_image(&store, "default", "e-");
    image(
        &store,
        "default",
        "exp",
        "e-manifest",
        &[(LABEL_EXPIRE, PAST)],
    );
    lease(&store, "default", "flat", &[(LABEL_FLAT, "1")]);
    hold(&store, "default", "flat", "images", "exp");
    let report = store.garbage_collect().unwrap();
    assert!(report.removed.images.is_empty());
    let all = strs(&parts);
    assert_eq!(blobs_left(&store, "default", &all), ["e-manifest"]);
}

#[test]
fn an_expired_image_is_removed_with_what_only_it_held() {
    let (_dir, store) = store();
    let parts = pulled_image(&store, "default", "x-");
    image(
        &store,
        "default",
        "old",
        "x-manifest",
        &[(LABEL_EXPIRE, PAST)],
    );
    image(
        &store,
        "default",
        "kept",
        "x-config",
        &[(LABEL_EXPIRE, FUTURE)],
    );
    let report = store.garbage_collect().unwrap();
    assert_eq!(
        report.removed.images,
        vec![("default".to_owned(), "old".to_owned())]
    );
    assert!(store
        .get_image("default", "old")
        .unwrap_err()
        .is_not_found());
    let all = strs(&parts);
    assert_eq!(blobs_left(&store, "default", &all), ["x-config"]);
}

#[test]
fn namespaces_hold_their_own_rows_and_share_blob_files() {
    let (_dir, store) = store();
    blob(&store, "a", "shared", &[]);
    blob(&store, "b", "shared", &[]);
    blob(&store, "b", "only-b", &[]);
    image(&store, "a", "img", "shared", &[]);
    let report = store.garbage_collect().unwrap();
    assert_eq!(blobs_left(&store, "a", &["shared"]), ["shared"]);
    assert!(blobs_left(&store, "b", &["shared", "only-b"]).is_empty());
    assert_eq!(
        report.removed.unowned_blobs,
        vec![Digest::parse(&digest("only-b")).unwrap()],
        "namespace a still holds the shared blob file"
    );
}

#[test]
fn references_never_cross_namespaces() {
    let (_dir, store) = store();
    let layer = digest("layer");
    blob(
        &store,
        "a",
        "manifest",
        &[("containerd.io/gc.ref.content.l.0", layer.as_str())],
    );
    blob(&store, "b", "layer", &[]);
    image(&store, "a", "img", "manifest", &[]);
    lease(&store, "a", "l", &[]);
    hold(&store, "a", "l", "content", &digest("leased-elsewhere"));
    blob(&store, "b", "leased-elsewhere", &[]);
    store.garbage_collect().unwrap();
    assert_eq!(blobs_left(&store, "a", &["manifest"]), ["manifest"]);
    assert!(blobs_left(&store, "b", &["layer", "leased-elsewhere"]).is_empty());
}

#[test]
fn containers_keep_their_snapshot_chain_and_labelled_refs() {
    let (_dir, store) = store();
    snapshot(&store, "default", "overlayfs", "layer-1", "", &[]);
    snapshot(&store, "default", "overlayfs", "layer-2", "layer-1", &[]);
    snapshot(&store, "default", "overlayfs", "web", "layer-2", &[]);
    snapshot(&store, "default", "overlayfs", "stale", "layer-1", &[]);
    snapshot(&store, "default", "native", "web", "", &[]);
    let checkpoint = digest("checkpoint");
    blob(&store, "default", "checkpoint", &[]);
    let mut c = container("web");
    c.labels
        .insert("containerd.io/gc.ref.content.cp".into(), checkpoint);
    store.create_container("default", c).unwrap();
    let report = store.garbage_collect().unwrap();
    assert_eq!(
        snapshots_left(&store, "default"),
        ["overlayfs/layer-1", "overlayfs/layer-2", "overlayfs/web"]
    );
    let mut removed: Vec<_> = report
        .removed
        .snapshots
        .iter()
        .map(|s| format!("{}/{}", s.snapshotter, s.key))
        .collect();
    removed.sort();
    assert_eq!(removed, ["native/web", "overlayfs/stale"]);
    assert_eq!(
        blobs_left(&store, "default", &["checkpoint"]),
        ["checkpoint"]
    );

    store.delete_container("default", "web").unwrap();
    store.garbage_collect().unwrap();
    assert!(snapshots_left(&store, "default").is_empty());
    assert!(blobs_left(&store, "default", &["checkpoint"]).is_empty());
}

#[test]
fn content_and_snapshots_reference_each_other_by_label() {
    let (_dir, store) = store();
    let layer = digest("layer");
    snapshot(
        &store,
        "default",
        "overlayfs",
        "sha256:chain",
        "",
        &[("containerd.io/gc.ref.content.l", layer.as_str())],
    );
    blob(&store, "default", "layer", &[]);
    blob(
        &store,
        "default",
        "config",
        &[("containerd.io/gc.ref.snapshot.overlayfs", "sha256:chain")],
    );
    image(&store, "default", "img", "config", &[]);
    snapshot(
        &store,
        "default",
        "overlayfs",
        "rooted",
        "",
        &[(LABEL_ROOT, "")],
    );
    store.garbage_collect().unwrap();
    assert_eq!(
        snapshots_left(&store, "default"),
        ["overlayfs/rooted", "overlayfs/sha256:chain"]
    );
    assert_eq!(blobs_left(&store, "default", &["layer"]), ["layer"]);
}

#[test]
fn back_references_follow_their_parent() {
    let (_dir, store) = store();
    blob(
        &store,
        "default",
        "signature",
        &[(
            "containerd.io/gc.bref.content.sig",
            digest("manifest").as_str(),
        )],
    );
    blob(
        &store,
        "default",
        "log",
        &[("containerd.io/gc.bref.container", "web")],
    );
    blob(&store, "default", "manifest", &[]);
    image(&store, "default", "img", "manifest", &[]);
    store.create_container("default", container("web")).unwrap();
    store.garbage_collect().unwrap();
    assert_eq!(
        blobs_left(&store, "default", &["signature", "log", "manifest"]),
        ["signature", "log", "manifest"]
    );
    store.delete_image("default", "img", None, None).unwrap();
    store.delete_container("default", "web").unwrap();
    store.garbage_collect().unwrap();
    assert!(blobs_left(&store, "default", &["signature", "log", "manifest"]).is_empty());
}

#[test]
fn image_references_from_content_keep_expired_images() {
    let (_dir, store) = store();
    blob(&store, "default", "target", &[]);
    image(&store, "default", "base", "target", &[(LABEL_EXPIRE, PAST)]);
    blob(
        &store,
        "default",
        "holder",
        &[(LABEL_ROOT, ""), ("containerd.io/gc.ref.image", "base")],
    );
    let report = store.garbage_collect().unwrap();
    assert!(report.removed.images.is_empty());
    assert_eq!(blobs_left(&store, "default", &["target"]), ["target"]);
}

#[test]
fn a_write_during_the_mark_is_never_lost() {
    let (_dir, store) = store();
    blob(&store, "default", "fresh", &[]);
    let mut raced = false;
    let report = store
        .collect(|| {
            if !raced {
                raced = true;
                // The mark saw "fresh" unreferenced; this image now holds it.
                image(&store, "default", "img", "fresh", &[]);
            }
        })
        .unwrap();
    assert_eq!(report.marks, 2, "the stale mark was redone");
    assert!(report.removed.content.is_empty());
    assert_eq!(blobs_left(&store, "default", &["fresh"]), ["fresh"]);
}

#[test]
fn writers_that_keep_racing_get_a_mark_under_the_lock() {
    let (_dir, store) = store();
    blob(&store, "default", "loose", &[]);
    let mut n = 0;
    let report = store
        .collect(|| {
            n += 1;
            lease(&store, "default", &format!("l{n}"), &[]);
        })
        .unwrap();
    assert_eq!(report.marks, super::LOCK_FREE_MARKS + 1);
    assert!(blobs_left(&store, "default", &["loose"]).is_empty());
}

#[test]
fn deletions_are_reported_dirty_until_a_collection() {
    let (_dir, store) = store();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    store.register_mutation_callback(Box::new(move |dirty| {
        sink.lock().unwrap().push(dirty);
    }));
    blob(&store, "default", "b", &[]);
    image(&store, "default", "img", "b", &[]);
    store.delete_image("default", "img", None, None).unwrap();
    lease(&store, "default", "l", &[]);
    store.garbage_collect().unwrap();
    lease(&store, "default", "l2", &[]);
    assert_eq!(*seen.lock().unwrap(), [false, true, true, false]);
}

#[test]
fn an_empty_database_collects_nothing() {
    let (_dir, store) = store();
    let report = store.garbage_collect().unwrap();
    assert_eq!(report.removed, super::Removed::default());
    assert_eq!(report.objects, 0);
    assert!(report.pause <= report.total);
}

#[test]
fn ingests_held_by_live_leases_are_reported() {
    let (_dir, store) = store();
    lease(&store, "default", "live", &[]);
    lease(&store, "default", "gone", &[(LABEL_EXPIRE, PAST)]);
    hold(&store, "default", "live", "ingests", "pull-1");
    hold(&store, "default", "gone", "ingests", "pull-2");
    let report = store.garbage_collect().unwrap();
    assert_eq!(
        report.removed.leased_ingests,
        vec![("default".to_owned(), "pull-1".to_owned())]
    );
}

#[test]
fn snapshot_records_are_read_by_their_leading_fields() {
    /// A record with more after the two fields the collector reads.
    #[derive(serde::Serialize)]
    struct Longer {
        parent: String,
        labels: BTreeMap<String, String>,
        backend_key: String,
        kind: String,
    }
    let bytes = encode(&Longer {
        parent: "base".into(),
        labels: labels(&[(LABEL_ROOT, "1")]),
        backend_key: "default/1/top".into(),
        kind: "committed".into(),
    })
    .unwrap();
    let refs: SnapshotRefs = crate::encoding::decode(&bytes).unwrap();
    assert_eq!(refs.parent, "base");
    assert_eq!(refs.labels, labels(&[(LABEL_ROOT, "1")]));
}
