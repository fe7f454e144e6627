//! The content store's rules, each on a temporary root and database: the
//! conformance suite every `ContentStore` runs, then what is particular to
//! the local store (files on disk, restarts, leases, removal races).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::testutil::expect_err;
use crate::{Lease, LeaseResource, MetadataStore};
use berth_core::content::testsuite::{self, blob, Fixture};
use berth_core::content::{ContentStore, ContentWriter, WriterOptions};
use berth_core::{Digest, ErrorKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

/// A store in a fresh directory: (guard, content, metadata).
fn fresh() -> (tempfile::TempDir, Content) {
    let dir = tempfile::tempdir().unwrap();
    let metadata = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
    let content = Content::open(&dir.path().join("content"), metadata).unwrap();
    (dir, content)
}

fn options(reference: &str, total: i64, expected: Option<&Digest>) -> WriterOptions {
    WriterOptions {
        reference: reference.into(),
        total,
        expected: expected.cloned(),
    }
}

/// Writes and commits `bytes` in namespace view `lc`.
fn put(lc: &LocalContent, reference: &str, bytes: &[u8]) -> berth_core::Result<Digest> {
    let mut w = lc.writer_blocking(options(reference, 0, None))?;
    w.write_blocking(bytes)?;
    let digest = w.digest();
    w.commit_blocking(bytes.len() as i64, Some(digest.clone()), HashMap::new())?;
    Ok(digest)
}

fn blob_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("content/blobs/sha256"))
        .unwrap()
        .count()
}

fn lease(content: &Content, ns: &str, id: &str) {
    content
        .metadata()
        .create_lease(
            ns,
            Lease {
                id: id.into(),
                created_at: UNIX_EPOCH,
                labels: HashMap::new(),
            },
        )
        .unwrap();
}

fn resources(content: &Content, ns: &str, id: &str) -> Vec<(String, String)> {
    content
        .metadata()
        .list_lease_resources(ns, id)
        .unwrap()
        .into_iter()
        .map(|LeaseResource { id, kind }| (kind, id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_content_store_suite() {
    testsuite::run(|| async {
        let (dir, content) = fresh();
        let store: Arc<dyn ContentStore> = Arc::new(content.namespace("suite", None).unwrap());
        let other: Arc<dyn ContentStore> = Arc::new(content.namespace("other", None).unwrap());
        Fixture {
            store,
            other: Some(other),
            guard: Box::new(dir),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_under_a_lease() {
    testsuite::run(|| async {
        let (dir, content) = fresh();
        lease(&content, "suite", "l");
        let store: Arc<dyn ContentStore> = Arc::new(content.namespace("suite", Some("l")).unwrap());
        Fixture {
            store,
            other: None,
            guard: Box::new(dir),
        }
    })
    .await;
}

#[test]
fn blobs_live_at_their_digest_read_only_and_ingests_by_namespaced_ref() {
    let (dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("my-ref", 0, None)).unwrap();
    w.write_blocking(b"hello").unwrap();
    let key = Digest::sha256_of(b"default/my-ref").encoded().to_owned();
    let ingest = dir.path().join("content/ingest").join(&key);
    assert_eq!(std::fs::read(ingest.join("data")).unwrap(), b"hello");
    assert_eq!(
        std::fs::read_to_string(ingest.join("ref")).unwrap(),
        "my-ref"
    );
    let digest = w.digest();
    w.commit_blocking(5, None, HashMap::new()).unwrap();
    assert!(!ingest.exists(), "a commit removes its ingest");
    let path = dir
        .path()
        .join("content/blobs/sha256")
        .join(digest.encoded());
    assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
}

#[test]
fn mismatches_are_failed_precondition_with_containerds_messages_and_leave_no_blob() {
    let (dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("r", 0, None)).unwrap();
    w.write_blocking(b"hello").unwrap();
    let err = expect_err(w.commit_blocking(6, None, HashMap::new()));
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(
        err.message(),
        r#""r" failed size validation: 5 != 6: failed precondition"#
    );
    let w = lc.writer_blocking(options("r", 0, None)).unwrap();
    let wrong = Digest::sha256_of(b"other");
    let actual = Digest::sha256_of(b"hello");
    let err = expect_err(w.commit_blocking(5, Some(wrong.clone()), HashMap::new()));
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(
        err.message(),
        format!("unexpected commit digest {actual}, expected {wrong}: failed precondition")
    );
    assert_eq!(blob_files(dir.path()), 0);
    assert!(lc.metadata_info(&actual).is_err());
    // The ingest is intact: resume and commit it properly.
    let w = lc.writer_blocking(options("r", 0, None)).unwrap();
    assert_eq!(w.digest(), actual);
    w.commit_blocking(5, Some(actual.clone()), HashMap::new())
        .unwrap();
    assert_eq!(blob_files(dir.path()), 1);
}

#[test]
fn second_writer_on_a_ref_is_unavailable_with_containerds_message() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let first = lc.writer_blocking(options("busy", 0, None)).unwrap();
    let err = expect_err(lc.writer_blocking(options("busy", 0, None)));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().starts_with("ref busy locked for ") && err.message().ends_with("unavailable"),
        "{err}"
    );
    assert!(content.ingest_active("default", "busy"));
    drop(first);
    assert!(!content.ingest_active("default", "busy"));
    lc.writer_blocking(options("busy", 0, None)).unwrap();
}

#[test]
fn ingests_survive_a_restart_and_resume_at_their_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, digest) = blob(3 << 20, 1);
    {
        let metadata = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
        let content = Content::open(&dir.path().join("content"), metadata).unwrap();
        let lc = content.namespace("default", None).unwrap();
        let mut w = lc
            .writer_blocking(options("big", bytes.len() as i64, Some(&digest)))
            .unwrap();
        w.write_blocking(&bytes[..(1 << 20) + 17]).unwrap();
    }
    let metadata = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
    let content = Content::open(&dir.path().join("content"), metadata).unwrap();
    let lc = content.namespace("default", None).unwrap();
    let status = lc.status_blocking("big").unwrap();
    assert_eq!(status.offset, (1 << 20) + 17);
    assert_eq!(status.total, bytes.len() as i64);
    assert_eq!(status.expected, Some(digest.clone()));
    // The digest state is rebuilt from the file.
    let mut w = lc
        .writer_blocking(options("big", bytes.len() as i64, None))
        .unwrap();
    w.write_blocking(&bytes[(1 << 20) + 17..]).unwrap();
    w.commit_blocking(bytes.len() as i64, Some(digest.clone()), HashMap::new())
        .unwrap();
    let (mut file, size) = lc.open_blob_blocking(&digest).unwrap();
    assert_eq!(size, bytes.len() as u64);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut back).unwrap();
    assert_eq!(back, bytes);
}

#[test]
fn a_reopened_writer_reports_the_updated_at_of_its_last_write() {
    // The data file's modification time comes from a clock that lags the
    // write by up to a tick; the time the writer saw must survive instead,
    // for a resumed writer, for Status and across a restart.
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let metadata = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
        Content::open(&dir.path().join("content"), metadata).unwrap()
    };
    let content = open();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("cb", 256, None)).unwrap();
    w.write_blocking(&[7u8; 128]).unwrap();
    let written = ContentWriter::status(&w);
    assert!(written.updated_at > written.started_at, "{written:?}");
    drop(w);
    let resumed = lc.writer_blocking(options("cb", 256, None)).unwrap();
    let status = ContentWriter::status(&resumed);
    assert_eq!(status.offset, 128);
    assert_eq!(status.started_at, written.started_at);
    assert_eq!(status.updated_at, written.updated_at);
    drop(resumed);
    assert_eq!(
        lc.status_blocking("cb").unwrap().updated_at,
        written.updated_at
    );
    drop((lc, content));
    let content = open();
    let lc = content.namespace("default", None).unwrap();
    assert_eq!(
        lc.status_blocking("cb").unwrap().updated_at,
        written.updated_at
    );
}

#[test]
fn a_resume_with_another_total_starts_again() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("t", 10, None)).unwrap();
    w.write_blocking(b"12345").unwrap();
    drop(w);
    let w = lc.writer_blocking(options("t", 12, None)).unwrap();
    let status = ContentWriter::status(&w);
    assert_eq!((status.offset, status.total), (0, 12));
}

#[test]
fn a_blob_two_namespaces_hold_is_stored_once_until_both_delete_it() {
    let (dir, content) = fresh();
    let a = content.namespace("a", None).unwrap();
    let b = content.namespace("b", None).unwrap();
    let digest = put(&a, "x", b"shared bytes").unwrap();
    assert_eq!(put(&b, "y", b"shared bytes").unwrap(), digest);
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(
        content.metadata().content_owners(&digest).unwrap(),
        ["a", "b"]
    );
    a.delete_blocking(&digest).unwrap();
    assert_eq!(blob_files(dir.path()), 1, "b still holds it");
    b.delete_blocking(&digest).unwrap();
    assert_eq!(blob_files(dir.path()), 0, "nobody holds it");
}

#[test]
fn deleting_tells_the_hook_and_marks_the_database_dirty() {
    let (_dir, content) = fresh();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    content.set_delete_hook(Arc::new(move |ns, digest| {
        log.lock().unwrap().push((ns.to_owned(), digest.clone()));
    }));
    let lc = content.namespace("default", None).unwrap();
    let digest = put(&lc, "x", b"bytes").unwrap();
    lc.delete_blocking(&digest).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("default".to_owned(), digest.clone())]
    );
    assert!(expect_err(lc.delete_blocking(&digest)).is_not_found());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a failed delete tells nobody"
    );
}

#[test]
fn writes_under_a_lease_record_the_ingest_then_the_blob() {
    let (_dir, content) = fresh();
    lease(&content, "default", "l1");
    let lc = content.namespace("default", Some("l1")).unwrap();
    let mut w = lc.writer_blocking(options("ref-1", 0, None)).unwrap();
    assert_eq!(
        resources(&content, "default", "l1"),
        [("ingests".to_owned(), "ref-1".to_owned())]
    );
    w.write_blocking(b"leased").unwrap();
    let digest = w.digest();
    w.commit_blocking(0, None, HashMap::new()).unwrap();
    assert_eq!(
        resources(&content, "default", "l1"),
        [("content".to_owned(), digest.to_string())]
    );
    // Opening for content the namespace holds adds it to the lease too.
    lease(&content, "default", "l2");
    let l2 = content.namespace("default", Some("l2")).unwrap();
    let err = expect_err(l2.writer_blocking(options("again", 0, Some(&digest))));
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(err.message(), format!("content {digest}: already exists"));
    assert_eq!(
        resources(&content, "default", "l2"),
        [("content".to_owned(), digest.to_string())]
    );
    // Abort and delete drop what they held.
    let w = lc.writer_blocking(options("ref-2", 0, None)).unwrap();
    drop(w);
    lc.abort_blocking("ref-2").unwrap();
    lc.delete_blocking(&digest).unwrap();
    assert!(resources(&content, "default", "l1").is_empty());
}

#[test]
fn a_lease_that_does_not_exist_refuses_the_write() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", Some("missing")).unwrap();
    let err = expect_err(lc.writer_blocking(options("r", 0, None)));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("lease"), "{err}");
}

#[test]
fn remove_if_unowned_keeps_owned_and_offered_blobs() {
    let (dir, content) = fresh();
    let a = content.namespace("a", None).unwrap();
    let digest = put(&a, "x", b"payload").unwrap();
    assert!(!content.remove_if_unowned(&digest).unwrap(), "a holds it");
    // Drop the row only (as garbage collection's sweep does).
    content
        .metadata()
        .delete_content("a", &digest, None)
        .unwrap();
    // An open writer in another namespace offers it: it stays.
    let b = content.namespace("b", None).unwrap();
    let shared = b.writer_blocking(options("s", 0, Some(&digest))).unwrap();
    assert_eq!(ContentWriter::status(&shared).offset, 7);
    assert!(!content.remove_if_unowned(&digest).unwrap());
    drop(shared);
    assert!(content.remove_if_unowned(&digest).unwrap());
    assert!(!content.remove_if_unowned(&digest).unwrap(), "already gone");
    assert_eq!(blob_files(dir.path()), 0);
}

#[test]
fn removal_racing_commits_in_another_namespace_never_loses_a_file() {
    let (_dir, content) = fresh();
    for round in 0..100u64 {
        let (bytes, digest) = blob(4096, round);
        let a = content.namespace("a", None).unwrap();
        let b = content.namespace("b", None).unwrap();
        put(&a, "x", &bytes).unwrap();
        let deleter = std::thread::spawn(move || a.delete_blocking(&digest).unwrap());
        let committed = put(&b, "y", &bytes).unwrap();
        deleter.join().unwrap();
        let (_, size) = b
            .open_blob_blocking(&committed)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(size, 4096);
        b.delete_blocking(&committed).unwrap();
    }
}

#[test]
fn a_writer_offered_a_blob_that_collection_is_removing_still_commits() {
    // The sweep has dropped namespace a's row; the collector is about to
    // unlink the file just as namespace b opens a writer expecting the same
    // digest. The writer either shares the file (which then stays) or finds
    // it gone and takes the bytes itself: its commit never fails.
    let (_dir, content) = fresh();
    for round in 0..300u64 {
        let (bytes, digest) = blob(4096, round);
        let a = content.namespace("a", None).unwrap();
        put(&a, "x", &bytes).unwrap();
        content
            .metadata()
            .delete_content("a", &digest, None)
            .unwrap();
        let remover = {
            let content = content.clone();
            let digest = digest.clone();
            std::thread::spawn(move || content.remove_if_unowned(&digest).unwrap())
        };
        let b = content.namespace("b", None).unwrap();
        let mut w = b
            .writer_blocking(options("y", 4096, Some(&digest)))
            .unwrap();
        if ContentWriter::status(&w).offset == 0 {
            w.write_blocking(&bytes).unwrap();
        }
        w.commit_blocking(4096, Some(digest.clone()), HashMap::new())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        remover.join().unwrap();
        let (_, size) = b
            .open_blob_blocking(&digest)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(size, 4096);
        b.delete_blocking(&digest).unwrap();
    }
}

#[test]
fn concurrent_commits_of_one_digest_in_many_namespaces_store_one_file() {
    let (dir, content) = fresh();
    let (bytes, _) = blob(1 << 20, 7);
    let bytes = Arc::new(bytes);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let lc = content.namespace(&format!("ns{i}"), None).unwrap();
            let bytes = bytes.clone();
            std::thread::spawn(move || put(&lc, "same-ref", &bytes).unwrap())
        })
        .collect();
    let digests: Vec<Digest> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(
        content
            .metadata()
            .content_owners(&digests[0])
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn errors_carry_containerds_messages() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let absent = Digest::sha256_of(b"absent");
    let err = expect_err(lc.metadata_info(&absent));
    assert_eq!(err.message(), format!("content digest {absent}: not found"));
    let err = expect_err(lc.status_blocking("nope"));
    assert_eq!(err.message(), "reference nope: not found");
    let err = expect_err(lc.abort_blocking("nope"));
    assert_eq!(err.message(), "reference nope: not found");
    let err = expect_err(lc.writer_blocking(options("", 0, None)));
    assert_eq!(err.message(), "ref must not be empty: invalid argument");
    let digest = put(&lc, "x", b"labelled").unwrap();
    let info = lc.metadata_info(&digest).unwrap();
    let err = expect_err(content.metadata().update_content(
        "default",
        info.clone(),
        &["size".into()],
    ));
    assert_eq!(
        err.message(),
        format!("cannot update \"size\" field on content info \"{digest}\": invalid argument")
    );
    let mut big = info;
    big.labels.insert("k".into(), "v".repeat(5000));
    let err = expect_err(content.metadata().update_content("default", big, &[]));
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message()
            .starts_with("info.Labels: label key and value length"),
        "{err}"
    );
    let err = expect_err(content.namespace("", None));
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
}

#[test]
fn commit_creates_the_namespace_and_keeps_it_from_being_deleted() {
    let (_dir, content) = fresh();
    let lc = content.namespace("fresh", None).unwrap();
    let digest = put(&lc, "x", b"bytes").unwrap();
    assert!(content.metadata().get_namespace("fresh").is_ok());
    let err = expect_err(content.metadata().delete_namespace("fresh"));
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.message().contains("blobs"), "{err}");
    lc.delete_blocking(&digest).unwrap();
    content.metadata().delete_namespace("fresh").unwrap();
}

#[test]
fn truncate_rewinds_the_digest() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("t", 0, None)).unwrap();
    w.write_blocking(b"hello world").unwrap();
    w.truncate_blocking(5).unwrap();
    assert_eq!(w.digest(), Digest::sha256_of(b"hello"));
    let err = expect_err(w.truncate_blocking(6));
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    w.write_blocking(b"!").unwrap();
    w.commit_blocking(6, Some(Digest::sha256_of(b"hello!")), HashMap::new())
        .unwrap();
}

#[test]
fn committed_labels_drop_empty_values_and_oversized_ones_fail() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let mut w = lc.writer_blocking(options("l", 0, None)).unwrap();
    w.write_blocking(b"x").unwrap();
    let labels = HashMap::from([
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), String::new()),
    ]);
    let digest = w.digest();
    w.commit_blocking(0, None, labels).unwrap();
    let info = lc.metadata_info(&digest).unwrap();
    assert_eq!(
        info.labels,
        HashMap::from([("a".to_owned(), "1".to_owned())])
    );
    let mut w = lc.writer_blocking(options("m", 0, None)).unwrap();
    w.write_blocking(b"y").unwrap();
    let huge = HashMap::from([("k".to_owned(), "v".repeat(5000))]);
    let err = expect_err(w.commit_blocking(0, None, huge));
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

impl LocalContent {
    /// Info through the metadata store (tests only).
    fn metadata_info(&self, digest: &Digest) -> berth_core::Result<berth_core::content::Info> {
        self.content.metadata().content_info(&self.ns, digest)
    }
}

#[tokio::test]
async fn hold_existing_puts_an_existing_blob_under_the_lease_in_one_step() {
    let (_dir, content) = fresh();
    let lc = content.namespace("default", None).unwrap();
    let digest = put(&lc, "first", b"held later").unwrap();
    lease(&content, "default", "l");
    let leased = content.namespace("default", Some("l")).unwrap();
    let absent = Digest::sha256_of(b"never written");
    assert!(!leased.hold_existing(&absent).await.unwrap());
    assert!(resources(&content, "default", "l").is_empty());
    assert!(leased.hold_existing(&digest).await.unwrap());
    assert_eq!(
        resources(&content, "default", "l"),
        [("content".to_owned(), digest.to_string())]
    );
    // Nothing else references the blob: only the lease keeps it.
    let report = content.metadata().garbage_collect().unwrap();
    assert!(report.removed.content.is_empty(), "{report:?}");
    assert!(lc.info(&digest).await.is_ok());
    // Without a lease it is a plain question.
    assert!(lc.hold_existing(&digest).await.unwrap());
}
