//! Garbage collection over 10,000 blobs: 1,000 images of a manifest, a
//! config and 8 layers each, written through the content store under a
//! lease with the labels a pull sets, as containerd's clients write them.
//!
//! - `gc 10k blobs, all live`: nothing to free; the whole mark, and a sweep
//!   that finds nothing (repeatable on one database).
//! - `gc 10k blobs, 5k freed`: half the images deleted first; each
//!   iteration collects a fresh copy of that database, removing 5,000 rows.
//!
//! For each, `total` is the collection's wall time and `pause` the time the
//! write lock was held (what other writers wait for), summed over the
//! iterations criterion asks for. The redb file is fsynced on every commit.
#![allow(missing_docs, clippy::unwrap_used)]

use berth_core::content::WriterOptions;
use berth_core::images::Image;
use berth_core::{Descriptor, Digest};
use berth_store::content::Content;
use berth_store::{Lease, MetadataStore};
use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

const IMAGES: usize = 1_000;
const LAYERS: usize = 8;

/// Writes one blob under `lease`; its digest.
fn blob(content: &Content, data: &[u8], labels: HashMap<String, String>) -> Digest {
    let digest = Digest::sha256_of(data);
    let ns = content.namespace("default", Some("fill")).unwrap();
    let options = WriterOptions {
        reference: format!("fill-{digest}"),
        total: data.len() as i64,
        expected: Some(digest.clone()),
    };
    let mut writer = ns.writer_blocking(options).unwrap();
    writer.write_blocking(data).unwrap();
    writer
        .commit_blocking(data.len() as i64, Some(digest.clone()), labels)
        .unwrap();
    digest
}

/// 1,000 images of 10 blobs each in `dir`; half the images deleted if
/// `delete_half`. Returns the metadata file.
fn fill(dir: &Path, delete_half: bool) -> std::path::PathBuf {
    let path = dir.join("metadata.redb");
    let store = MetadataStore::open(&path).unwrap();
    let content = Content::open(&dir.join("content"), store.clone()).unwrap();
    let lease = Lease {
        id: "fill".into(),
        created_at: UNIX_EPOCH,
        labels: HashMap::new(),
    };
    store.create_lease("default", lease).unwrap();
    for i in 0..IMAGES {
        let config = blob(&content, format!("config {i}").as_bytes(), HashMap::new());
        let mut labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_owned(),
            config.to_string(),
        )]);
        for l in 0..LAYERS {
            let layer = blob(
                &content,
                format!("layer {i}.{l}").as_bytes(),
                HashMap::new(),
            );
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{l}"),
                layer.to_string(),
            );
        }
        let manifest = blob(&content, format!("manifest {i}").as_bytes(), labels);
        let image = Image {
            name: format!("docker.io/bench/image:{i}"),
            labels: HashMap::new(),
            target: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: manifest,
                size: 100,
                annotations: HashMap::new(),
            },
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
        };
        store.create_image("default", image, None).unwrap();
    }
    store.delete_lease("default", "fill").unwrap();
    if delete_half {
        for i in (0..IMAGES).step_by(2) {
            let name = format!("docker.io/bench/image:{i}");
            store.delete_image("default", &name, None, None).unwrap();
        }
    }
    path
}

/// Sums the total (or pause) time `run` reports over `iters` collections.
fn timed(iters: u64, mut run: impl FnMut() -> (Duration, Duration), pause: bool) -> Duration {
    (0..iters)
        .map(|_| {
            let (total, paused) = run();
            if pause {
                paused
            } else {
                total
            }
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let live_dir = tempfile::tempdir().unwrap();
    let live = MetadataStore::open(&fill(live_dir.path(), false)).unwrap();
    let first = live.garbage_collect().unwrap();
    assert!(first.removed.content.is_empty());
    assert_eq!(first.objects, IMAGES * (LAYERS + 2) + IMAGES);

    let mut group = c.benchmark_group("gc 10k blobs, all live");
    group.sample_size(20);
    let run_live = || {
        let report = live.garbage_collect().unwrap();
        (report.total, report.pause)
    };
    group.bench_function("total", |b| b.iter_custom(|n| timed(n, run_live, false)));
    group.bench_function("pause", |b| b.iter_custom(|n| timed(n, run_live, true)));
    group.finish();
    drop(live);

    let template_dir = tempfile::tempdir().unwrap();
    let template = fill(template_dir.path(), true);
    let run_freeing = || {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("metadata.redb");
        std::fs::copy(&template, &copy).unwrap();
        let store = MetadataStore::open(&copy).unwrap();
        let started = Instant::now();
        let report = store.garbage_collect().unwrap();
        let total = started.elapsed();
        assert_eq!(report.removed.content.len(), IMAGES / 2 * (LAYERS + 2));
        (total, report.pause)
    };
    let mut group = c.benchmark_group("gc 10k blobs, 5k freed");
    group.sample_size(10);
    group.bench_function("total", |b| b.iter_custom(|n| timed(n, run_freeing, false)));
    group.bench_function("pause", |b| b.iter_custom(|n| timed(n, run_freeing, true)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
