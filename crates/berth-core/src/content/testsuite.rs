//! A conformance suite for [`ContentStore`] implementations, after
//! containerd's `core/content/testsuite`: every implementation — the local
//! store in `berth-store`, the remote one in `berth-client` — runs the same
//! scenarios, so they answer alike.
//!
//! ```no_run
//! # async fn demo() {
//! use berth_core::content::testsuite::{self, Fixture};
//! testsuite::run(|| async {
//!     // Build a fresh store (and, optionally, a second namespace's view of it).
//!     # let store: std::sync::Arc<dyn berth_core::content::ContentStore> = unimplemented!();
//!     Fixture { store, other: None, guard: Box::new(()) }
//! })
//! .await;
//! # }
//! ```
//!
//! Each scenario gets a fresh fixture and panics (naming itself) on the
//! first rule it finds broken. Cross-namespace scenarios need
//! [`Fixture::other`] and are skipped without it.

use super::{write_blob, ContentStore, ContentWriter, Info, WriterOptions};
use crate::digest::Digest;
use crate::{ErrorKind, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

/// A fresh store for one scenario.
pub struct Fixture {
    /// The namespace's view under test.
    pub store: Arc<dyn ContentStore>,
    /// A second namespace's view of the same store, for the isolation and
    /// sharing scenarios.
    pub other: Option<Arc<dyn ContentStore>>,
    /// Whatever must live as long as the scenario (temporary directories,
    /// a daemon); dropped at its end.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Runs every scenario, each on a fixture from `factory`.
pub async fn run<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    scenario("writer", writer_commits(factory().await)).await;
    scenario("update status", status_follows_writes(factory().await)).await;
    scenario("commit exists", commit_exists(factory().await)).await;
    scenario("resume", resume(factory().await)).await;
    scenario("resume truncate", resume_truncate(factory().await)).await;
    scenario("commit error state", commit_error_state(factory().await)).await;
    scenario("ref locked", ref_locked(factory().await)).await;
    scenario("labels", labels(factory().await)).await;
    scenario("read", read(factory().await)).await;
    scenario("list and filters", list_and_filters(factory().await)).await;
    scenario("statuses and abort", statuses_and_abort(factory().await)).await;
    scenario("delete", delete(factory().await)).await;
    scenario("write blob", write_blob_helper(factory().await)).await;
    scenario("concurrent commits", concurrent_commits(factory().await)).await;
    scenario("namespace isolation", isolation(factory().await)).await;
    scenario("namespace sharing", sharing(factory().await)).await;
}

async fn scenario(name: &str, body: impl Future<Output = ()>) {
    eprintln!("content testsuite: {name}");
    body.await;
}

/// `size` deterministic pseudo-random bytes (distinct per `seed`) and their digest.
pub fn blob(size: usize, seed: u64) -> (Vec<u8>, Digest) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let digest = Digest::sha256_of(&bytes);
    (bytes, digest)
}

fn opts(reference: &str, total: usize, expected: Option<&Digest>) -> WriterOptions {
    WriterOptions {
        reference: reference.to_owned(),
        total: total as i64,
        expected: expected.cloned(),
    }
}

async fn open(
    store: &dyn ContentStore,
    reference: &str,
    total: usize,
    expected: Option<&Digest>,
) -> Box<dyn ContentWriter> {
    match store.writer(opts(reference, total, expected)).await {
        Ok(writer) => writer,
        Err(err) => panic!("opening writer {reference:?}: {err}"),
    }
}

#[track_caller]
fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(err) => panic!("{what}: {err} ({:?})", err.kind()),
    }
}

#[track_caller]
fn kind<T>(result: Result<T>, want: ErrorKind, what: &str) -> crate::Error {
    match result {
        Ok(_) => panic!("{what}: succeeded, expected {want:?}"),
        Err(err) => {
            assert_eq!(err.kind(), want, "{what}: {err}");
            err
        }
    }
}

fn labels_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn read_all(store: &dyn ContentStore, digest: &Digest, offset: u64) -> Vec<u8> {
    let mut reader = ok(store.reader(digest, offset).await, "open reader");
    let mut out = Vec::new();
    ok(
        reader
            .read_to_end(&mut out)
            .await
            .map_err(crate::Error::from),
        "read",
    );
    out
}

#[track_caller]
fn within(t: SystemTime, from: SystemTime, to: SystemTime, what: &str) {
    assert!(
        t >= from && t <= to,
        "{what} {t:?} not within {from:?}..{to:?}"
    );
}

/// Writers opened with and without size and digest all commit, with labels;
/// info reports size, labels and commit times.
async fn writer_commits(f: Fixture) {
    let store = &*f.store;
    let labels = labels_of(&[("containerd.io/gc.root", "2024-01-01T00:00:00Z")]);
    for (i, (with_size, with_digest)) in
        [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
    {
        let (bytes, digest) = blob(256, i as u64 + 1);
        let total = if with_size { bytes.len() } else { 0 };
        let expected = with_digest.then_some(&digest);
        let mut w = open(store, &format!("c{i}"), total, expected).await;
        for chunk in bytes.chunks(32) {
            ok(w.write(chunk).await, "write");
        }
        let before = SystemTime::now();
        ok(w.commit(0, None, labels.clone()).await, "commit");
        let after = SystemTime::now();
        let info = ok(store.info(&digest).await, "info");
        assert_eq!(info.digest, digest);
        assert_eq!(info.size, 256);
        assert_eq!(info.labels, labels);
        within(info.created_at, before, after, "created at");
        within(info.updated_at, before, after, "updated at");
    }
}

/// Status reports offset, total and expected as bytes arrive.
async fn status_follows_writes(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(256, 10);
    let before = SystemTime::now();
    let mut w = open(store, "c1", 256, Some(&digest)).await;
    let after = SystemTime::now();
    let st = w.status();
    assert_eq!((st.reference.as_str(), st.offset, st.total), ("c1", 0, 256));
    within(st.started_at, before, after, "started at");
    for (end, _) in [(64, ()), (192, ()), (256, ())] {
        let start = w.status().offset as usize;
        let t0 = SystemTime::now();
        ok(w.write(&bytes[start..end]).await, "write");
        let st = w.status();
        assert_eq!(st.offset, end as i64);
        within(st.updated_at, t0, SystemTime::now(), "updated at");
        let stored = ok(store.status("c1").await, "status");
        assert_eq!((stored.offset, stored.total), (end as i64, 256));
    }
    ok(w.commit(0, None, HashMap::new()).await, "commit");
    kind(
        store.status("c1").await,
        ErrorKind::NotFound,
        "status after commit",
    );
}

/// Committing bytes the namespace holds already is AlreadyExists, with or
/// without an expected digest.
async fn commit_exists(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(256, 20);
    ok(
        write_blob(store, "c1", &bytes[..], 256, &digest, HashMap::new()).await,
        "write blob",
    );
    for (i, expected) in [Some(digest.clone()), None].into_iter().enumerate() {
        let mut w = open(store, &format!("c1-exists-{i}"), 0, None).await;
        ok(w.write(&bytes).await, "write");
        kind(
            w.commit(256, expected, HashMap::new()).await,
            ErrorKind::AlreadyExists,
            "commit of existing content",
        );
    }
    kind(
        store.writer(opts("c1-again", 0, Some(&digest))).await,
        ErrorKind::AlreadyExists,
        "opening a writer for existing content",
    );
}

/// Closing a writer keeps its bytes; reopening the ref resumes at its offset.
async fn resume(f: Fixture) {
    let store = &*f.store;
    for (i, size) in [500usize, 5000, 50_000].into_iter().enumerate() {
        for (j, fraction) in [0.0, 0.1, 0.5, 0.9, 1.0].into_iter().enumerate() {
            let (bytes, digest) = blob(size, (100 + i * 10 + j) as u64);
            let cut = (size as f64 * fraction) as usize;
            let reference = format!("ref-{i}-{j}");
            let mut w = open(store, &reference, size, Some(&digest)).await;
            ok(w.write(&bytes[..cut]).await, "first write");
            drop(w);
            let mut w = open(store, &reference, size, Some(&digest)).await;
            assert_eq!(w.status().offset, cut as i64, "resumed offset");
            ok(w.write(&bytes[cut..]).await, "second write");
            ok(
                w.commit(size as i64, Some(digest.clone()), HashMap::new())
                    .await,
                "commit",
            );
            assert_eq!(read_all(store, &digest, 0).await, bytes);
        }
    }
}

/// A resumed writer may truncate to zero and start again.
async fn resume_truncate(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(5000, 200);
    let mut w = open(store, "t", 5000, Some(&digest)).await;
    ok(w.write(&bytes[..2500]).await, "write");
    drop(w);
    let mut w = open(store, "t", 5000, Some(&digest)).await;
    ok(w.truncate(0).await, "truncate");
    assert_eq!(w.status().offset, 0);
    ok(w.write(&bytes).await, "write");
    ok(
        w.commit(5000, Some(digest.clone()), HashMap::new()).await,
        "commit",
    );
    assert_eq!(read_all(store, &digest, 0).await, bytes);
}

/// containerd's checkCommitErrorState: failed commits keep the ingest,
/// and every open holds the ref.
async fn commit_error_state(f: Fixture) {
    let store = &*f.store;
    let (c1, d1) = blob(256, 300);
    let (_, d2) = blob(256, 301);
    ok(
        write_blob(store, "c1", &c1[..], 256, &d1, HashMap::new()).await,
        "write blob",
    );
    let r = "c1-commiterror-state";
    let mut w = open(store, r, 0, None).await;
    ok(w.write(&c1).await, "write");
    kind(
        store.writer(opts(r, 0, None)).await,
        ErrorKind::Unavailable,
        "second open",
    );
    kind(
        w.commit(256, Some(d1.clone()), HashMap::new()).await,
        ErrorKind::AlreadyExists,
        "commit existing",
    );

    let mut w = open(store, r, 0, None).await;
    assert_eq!(
        w.status().offset,
        0,
        "an AlreadyExists commit removes the ingest"
    );
    let mut longer = c1.clone();
    longer.extend_from_slice(b"more");
    ok(w.write(&longer).await, "write");
    kind(
        w.commit(260, Some(d2), HashMap::new()).await,
        ErrorKind::FailedPrecondition,
        "commit with the wrong digest",
    );
    let w = open(store, r, 0, None).await;
    assert_eq!(w.status().offset, 260, "a failed commit keeps the ingest");
    kind(
        w.commit(256, None, HashMap::new()).await,
        ErrorKind::FailedPrecondition,
        "commit with the wrong size",
    );
    let w = open(store, r, 0, None).await;
    ok(w.commit(260, None, HashMap::new()).await, "commit");
    let info = ok(store.info(&Digest::sha256_of(&longer)).await, "info");
    assert_eq!(info.size, 260);
    kind(
        store.status(r).await,
        ErrorKind::NotFound,
        "status after commit",
    );
}

/// One writer per ref: a second open is Unavailable until the first closes.
async fn ref_locked(f: Fixture) {
    let store = &*f.store;
    let w = open(store, "locked", 0, None).await;
    let err = kind(
        store.writer(opts("locked", 0, None)).await,
        ErrorKind::Unavailable,
        "second writer",
    );
    assert!(err.message().contains("locked"), "{err}");
    let other = open(store, "other-ref", 0, None).await;
    drop(other);
    drop(w);
    let _w = open(store, "locked", 0, None).await;
}

/// Labels are replaced whole or by `labels.KEY` paths; other paths fail.
async fn labels(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(256, 400);
    let first = labels_of(&[("k1", "v1"), ("k2", "v2")]);
    ok(
        write_blob(store, "l", &bytes[..], 256, &digest, first.clone()).await,
        "write blob",
    );
    assert_eq!(ok(store.info(&digest).await, "info").labels, first);

    let replaced = labels_of(&[("k1", "new"), ("k3", "v3")]);
    let mut info = ok(store.info(&digest).await, "info");
    info.labels = replaced.clone();
    let t0 = SystemTime::now();
    let updated = ok(store.update(info.clone(), &[]).await, "update all");
    assert_eq!(updated.labels, replaced);
    within(updated.updated_at, t0, SystemTime::now(), "updated at");
    assert_eq!(ok(store.info(&digest).await, "info").labels, replaced);

    info.labels = labels_of(&[("k1", "v1")]);
    let paths = ["labels.k3".to_string(), "labels.k1".to_string()];
    let updated = ok(store.update(info.clone(), &paths).await, "update by path");
    assert_eq!(updated.labels, labels_of(&[("k1", "v1")]));

    info.labels = labels_of(&[("a", "b")]);
    let updated = ok(
        store.update(info.clone(), &["labels".into()]).await,
        "update labels",
    );
    assert_eq!(updated.labels, labels_of(&[("a", "b")]));

    kind(
        store.update(info.clone(), &["size".into()]).await,
        ErrorKind::InvalidArgument,
        "update of size",
    );
    let (_, absent) = blob(1, 401);
    info.digest = absent;
    kind(
        store.update(info, &[]).await,
        ErrorKind::NotFound,
        "update of a missing blob",
    );
}

/// Reads from any offset; a blob smaller than a read buffer reads whole.
async fn read(f: Fixture) {
    let store = &*f.store;
    let small = b"foobar".to_vec();
    let digest = Digest::sha256_of(&small);
    ok(
        write_blob(store, "small", &small[..], 6, &digest, HashMap::new()).await,
        "write blob",
    );
    assert_eq!(read_all(store, &digest, 0).await, small);
    assert_eq!(read_all(store, &digest, 3).await, b"bar");
    assert_eq!(read_all(store, &digest, 6).await, b"");
    let (big, big_digest) = blob(3 << 20, 500);
    ok(
        write_blob(
            store,
            "big",
            &big[..],
            big.len() as i64,
            &big_digest,
            HashMap::new(),
        )
        .await,
        "write big blob",
    );
    assert_eq!(read_all(store, &big_digest, 1 << 20).await, &big[1 << 20..]);
    let (_, absent) = blob(1, 501);
    kind(
        store.reader(&absent, 0).await.map(|_| ()),
        ErrorKind::NotFound,
        "missing blob",
    );
    kind(
        store.info(&absent).await,
        ErrorKind::NotFound,
        "info of a missing blob",
    );
}

/// List returns what the namespace holds, filtered by digest and labels.
async fn list_and_filters(f: Fixture) {
    let store = &*f.store;
    let mut digests = Vec::new();
    for i in 0..3u64 {
        let (bytes, digest) = blob(100, 600 + i);
        let labels = labels_of(&[("n", &i.to_string()), ("containerd.io/kind", "test")]);
        ok(
            write_blob(store, &format!("l{i}"), &bytes[..], 100, &digest, labels).await,
            "write blob",
        );
        digests.push(digest);
    }
    let listed = ok(store.list(&[]).await, "list");
    let mut got: Vec<Digest> = listed.iter().map(|i| i.digest.clone()).collect();
    got.sort();
    let mut want = digests.clone();
    want.sort();
    assert_eq!(got, want);
    let digest_of = |infos: Vec<Info>| infos.into_iter().map(|i| i.digest).collect::<Vec<_>>();
    let one = ok(
        store.list(&[format!("digest=={}", digests[1])]).await,
        "by digest",
    );
    assert_eq!(digest_of(one), vec![digests[1].clone()]);
    let by_label = ok(store.list(&["labels.n==2".into()]).await, "by label");
    assert_eq!(digest_of(by_label), vec![digests[2].clone()]);
    let quoted = ok(
        store
            .list(&[r#"labels."containerd.io/kind"==test,labels.n!=0"#.into()])
            .await,
        "by quoted label",
    );
    assert_eq!(quoted.len(), 2);
    let either = ok(
        store
            .list(&["labels.n==0".into(), "labels.n==1".into()])
            .await,
        "or",
    );
    assert_eq!(either.len(), 2);
    assert!(ok(store.list(&["size==100".into()]).await, "size").is_empty());
    kind(
        store.list(&["labels.n==".into()]).await,
        ErrorKind::InvalidArgument,
        "bad filter",
    );
}

/// Statuses list open and closed ingests; abort removes one.
async fn statuses_and_abort(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(1000, 700);
    let mut w = open(store, "active-1", 1000, Some(&digest)).await;
    ok(w.write(&bytes[..400]).await, "write");
    let w2 = open(store, "active-2", 0, None).await;
    drop(w2);
    let all = ok(store.list_statuses(&[]).await, "list statuses");
    let mut refs: Vec<&str> = all.iter().map(|s| s.reference.as_str()).collect();
    refs.sort();
    assert_eq!(refs, ["active-1", "active-2"]);
    let one = ok(
        store.list_statuses(&["ref==active-1".into()]).await,
        "by ref",
    );
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].offset, one[0].total), (400, 1000));
    let re = ok(
        store.list_statuses(&["ref~=^active-".into()]).await,
        "by pattern",
    );
    assert_eq!(re.len(), 2);
    drop(w);
    ok(store.abort("active-1").await, "abort");
    kind(
        store.status("active-1").await,
        ErrorKind::NotFound,
        "status after abort",
    );
    kind(
        store.abort("active-1").await,
        ErrorKind::NotFound,
        "abort twice",
    );
    let w = open(store, "active-1", 0, None).await;
    assert_eq!(w.status().offset, 0, "an aborted ref starts again");
}

/// Delete removes the namespace's blob; deleting again is NotFound.
async fn delete(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(100, 800);
    ok(
        write_blob(store, "d", &bytes[..], 100, &digest, HashMap::new()).await,
        "write blob",
    );
    ok(store.delete(&digest).await, "delete");
    kind(
        store.info(&digest).await,
        ErrorKind::NotFound,
        "info after delete",
    );
    kind(
        store.delete(&digest).await,
        ErrorKind::NotFound,
        "second delete",
    );
    ok(
        write_blob(store, "d", &bytes[..], 100, &digest, HashMap::new()).await,
        "write again",
    );
    assert_eq!(read_all(store, &digest, 0).await, bytes);
}

/// `write_blob` treats existing content as success and restarts a partial
/// ingest; a wrong digest fails and leaves nothing.
async fn write_blob_helper(f: Fixture) {
    let store = &*f.store;
    let (bytes, digest) = blob(3000, 900);
    let mut w = open(store, "wb", 3000, Some(&digest)).await;
    ok(w.write(&bytes[..1000]).await, "write");
    drop(w);
    ok(
        write_blob(store, "wb", &bytes[..], 3000, &digest, HashMap::new()).await,
        "write blob over a partial ingest",
    );
    ok(
        write_blob(store, "wb", &bytes[..], 3000, &digest, HashMap::new()).await,
        "write blob again",
    );
    let (_, wrong) = blob(3000, 901);
    kind(
        write_blob(store, "wrong", &bytes[..], 3000, &wrong, HashMap::new()).await,
        ErrorKind::FailedPrecondition,
        "write blob with the wrong digest",
    );
    kind(
        store.info(&wrong).await,
        ErrorKind::NotFound,
        "no blob under the wrong digest",
    );
}

/// Concurrent commits of one digest under different refs: one wins, the
/// others are AlreadyExists, and the blob reads back whole.
async fn concurrent_commits(f: Fixture) {
    let (bytes, digest) = blob(200_000, 1000);
    let bytes = Arc::new(bytes);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, bytes, digest) = (f.store.clone(), bytes.clone(), digest.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = match store.writer(opts(&format!("race-{i}"), 0, None)).await {
                Ok(w) => w,
                Err(err) => return Err(err),
            };
            for chunk in bytes.chunks(64 << 10) {
                w.write(chunk).await?;
            }
            w.commit(bytes.len() as i64, Some(digest), HashMap::new())
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => wins += 1,
            Ok(Err(err)) => assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}"),
            Err(err) => panic!("task: {err}"),
        }
    }
    assert_eq!(wins, 1, "exactly one commit records the blob");
    assert_eq!(read_all(&*f.store, &digest, 0).await, *bytes);
}

/// A namespace sees only its own blobs and ingests.
async fn isolation(f: Fixture) {
    let Some(other) = f.other.as_deref() else {
        eprintln!("  skipped: no second namespace");
        return;
    };
    let store = &*f.store;
    let (bytes, digest) = blob(1000, 1100);
    ok(
        write_blob(store, "iso", &bytes[..], 1000, &digest, HashMap::new()).await,
        "write blob",
    );
    kind(
        other.info(&digest).await,
        ErrorKind::NotFound,
        "info in the other namespace",
    );
    kind(
        other.reader(&digest, 0).await.map(|_| ()),
        ErrorKind::NotFound,
        "read in the other namespace",
    );
    kind(
        other.delete(&digest).await,
        ErrorKind::NotFound,
        "delete in the other namespace",
    );
    assert!(ok(other.list(&[]).await, "list").is_empty());
    let _w = open(store, "iso-active", 0, None).await;
    assert!(ok(other.list_statuses(&[]).await, "statuses").is_empty());
    kind(
        other.status("iso-active").await,
        ErrorKind::NotFound,
        "status in the other namespace",
    );
    // The same ref in another namespace is another ingest.
    let _w2 = open(other, "iso-active", 0, None).await;
}

/// A blob another namespace holds is offered whole (containerd's shared
/// policy) and committed without writing; deleting it in one namespace
/// leaves it in the other.
async fn sharing(f: Fixture) {
    let Some(other) = f.other.as_deref() else {
        eprintln!("  skipped: no second namespace");
        return;
    };
    let store = &*f.store;
    let (bytes, digest) = blob(1000, 1200);
    ok(
        write_blob(store, "share", &bytes[..], 1000, &digest, HashMap::new()).await,
        "write blob",
    );
    let w = open(other, "share", 1000, Some(&digest)).await;
    let st = w.status();
    assert_eq!(
        (st.offset, st.total),
        (1000, 1000),
        "the shared blob is offered whole"
    );
    ok(
        w.commit(1000, Some(digest.clone()), HashMap::new()).await,
        "commit without writing",
    );
    assert_eq!(read_all(other, &digest, 0).await, bytes);

    // Appending to a shared blob makes new content.
    let (tail_bytes, _) = blob(10, 1201);
    let mut longer = bytes.clone();
    longer.extend_from_slice(&tail_bytes);
    let longer_digest = Digest::sha256_of(&longer);
    ok(store.delete(&digest).await, "delete in the first namespace");
    assert_eq!(
        read_all(other, &digest, 0).await,
        bytes,
        "still in the other"
    );
    let mut w = open(store, "append", 1000, Some(&digest)).await;
    assert_eq!(w.status().offset, 1000);
    ok(w.write(&tail_bytes).await, "append");
    ok(
        w.commit(
            longer.len() as i64,
            Some(longer_digest.clone()),
            HashMap::new(),
        )
        .await,
        "commit appended",
    );
    assert_eq!(read_all(store, &longer_digest, 0).await, longer);
    kind(
        store.info(&digest).await,
        ErrorKind::NotFound,
        "the base stays deleted here",
    );
}
