//! Metadata store throughput: container create, get, and list of 2,000
//! records, with redb's default (fsynced) durability on a temporary file.
#![allow(missing_docs, clippy::unwrap_used)]

use berth_core::filters::Filter;
use berth_store::{Any, Container, MetadataStore, Runtime};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

const RECORDS: usize = 2_000;

fn container(id: String) -> Container {
    Container {
        labels: [("app".to_owned(), "bench".to_owned())].into(),
        image: "docker.io/library/busybox:latest".to_owned(),
        runtime: Runtime {
            name: "io.containerd.runc.v2".to_owned(),
            options: None,
        },
        // About the size of containerd's default Linux spec.
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_owned(),
            value: vec![b'x'; 4096],
        }),
        snapshotter: "overlayfs".to_owned(),
        snapshot_key: id.clone(),
        id,
        ..Container::default()
    }
}

fn store() -> (tempfile::TempDir, MetadataStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
    (dir, store)
}

fn filled() -> (tempfile::TempDir, MetadataStore) {
    let (dir, store) = store();
    for i in 0..RECORDS {
        store
            .create_container("default", container(format!("c{i:05}")))
            .unwrap();
    }
    // Another namespace's rows must not slow the listing down.
    for i in 0..RECORDS {
        store
            .create_container("other", container(format!("c{i:05}")))
            .unwrap();
    }
    (dir, store)
}

fn bench(c: &mut Criterion) {
    let (_dir, empty) = store();
    let next = AtomicU64::new(0);
    c.bench_function("container create", |b| {
        b.iter_batched(
            || container(format!("new{}", next.fetch_add(1, Ordering::Relaxed))),
            |c| empty.create_container("default", c).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let (_dir, full) = filled();
    c.bench_function("container get (of 2000)", |b| {
        b.iter(|| full.get_container("default", black_box("c01000")).unwrap())
    });
    let all = Filter::always();
    c.bench_function("container list 2000", |b| {
        b.iter(|| {
            let listed = full.list_containers("default", &all).unwrap();
            assert_eq!(listed.len(), RECORDS);
            listed
        })
    });
    let one = Filter::parse_all(&["labels.app==bench,id==c01000"]).unwrap();
    c.bench_function("container list 2000 filtered", |b| {
        b.iter(|| full.list_containers("default", &one).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
