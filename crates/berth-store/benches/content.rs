//! Local content ingest throughput: a 64 MiB blob written in 1 MiB chunks
//! (containerd's client chunk size) and committed with its digest verified,
//! through the blocking API and through the async `ContentStore` trait, next
//! to bare sha256 over the same bytes (the floor: every byte is hashed once).
//! Each iteration commits a fresh blob in a fresh namespace on a temporary
//! root, so the rename, fsyncs and metadata transaction are included.
#![allow(missing_docs, clippy::unwrap_used)]

use berth_core::content::{ContentStore, WriterOptions};
use berth_core::digest::Digester;
use berth_core::Digest;
use berth_store::content::Content;
use berth_store::MetadataStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

const SIZE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;

fn data() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn store() -> (tempfile::TempDir, Content) {
    let dir = tempfile::tempdir().unwrap();
    let metadata = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
    let content = Content::open(&dir.path().join("content"), metadata).unwrap();
    (dir, content)
}

fn options(digest: &Digest) -> WriterOptions {
    WriterOptions {
        reference: "bench".into(),
        total: SIZE as i64,
        expected: Some(digest.clone()),
    }
}

fn ingest(c: &mut Criterion) {
    let data = data();
    let digest = Digest::sha256_of(&data);
    let (_dir, content) = store();
    let round = AtomicU64::new(0);
    // Each round commits in a new namespace, so the blob is new to it, and
    // the file is removed afterwards, so every commit renames a new file.
    let next_ns = || format!("ns{}", round.fetch_add(1, Ordering::Relaxed));
    let cleanup = |ns: &str| {
        let lc = content.namespace(ns, None).unwrap();
        lc.delete_blocking(&digest).unwrap();
    };

    let mut group = c.benchmark_group("content_ingest_64MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(10);

    group.bench_function("sha256_only", |b| {
        b.iter(|| {
            let mut d = Digester::new();
            for chunk in data.chunks(CHUNK) {
                d.update(chunk);
            }
            black_box(d.finish())
        })
    });

    group.bench_function("blocking_write_commit", |b| {
        b.iter(|| {
            let ns = next_ns();
            let lc = content.namespace(&ns, None).unwrap();
            let mut w = lc.writer_blocking(options(&digest)).unwrap();
            for chunk in data.chunks(CHUNK) {
                w.write_blocking(chunk).unwrap();
            }
            w.commit_blocking(SIZE as i64, Some(digest.clone()), HashMap::new())
                .unwrap();
            cleanup(&ns);
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    group.bench_function("async_write_owned_commit", |b| {
        b.iter(|| {
            let ns = next_ns();
            let lc = content.namespace(&ns, None).unwrap();
            runtime.block_on(async {
                let mut w = lc.writer(options(&digest)).await.unwrap();
                for chunk in data.chunks(CHUNK) {
                    // The gRPC service hands over the decoded message's Vec;
                    // the copy here stands in for prost's decode.
                    w.write_owned(chunk.to_vec()).await.unwrap();
                }
                w.commit(SIZE as i64, Some(digest.clone()), HashMap::new())
                    .await
                    .unwrap();
            });
            cleanup(&ns);
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
