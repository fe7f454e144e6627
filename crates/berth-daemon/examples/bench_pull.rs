//! Times berth's pull engine (`berth_image::pull`) against a registry, with
//! the daemon's own local stores: the content store and metadata database
//! of `berth-store` and the overlayfs (or native) snapshotter, all under a
//! fresh `--root`. `scripts/bench-pull.sh` runs it next to containerd.
//!
//! Usage: `bench_pull REFERENCE ROOT [--no-unpack] [--native]
//! [--downloads N] [--plain-http]`; prints `pull+unpack <ms> ms` and a line
//! per snapshot committed.

use anyhow::{bail, Context, Result};
use berth_core::content::ContentStore;
use berth_core::snapshots::Snapshotter;
use berth_image::diff::LocalApplier;
use berth_image::pull::{pull, NoProgress, PullOptions, UnpackTarget};
use berth_image::registry::{RegistryOptions, RegistryResolver};
use berth_image::testing::MemImages;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(reference), Some(root)) = (args.next(), args.next()) else {
        bail!("usage: bench_pull REFERENCE ROOT [--no-unpack] [--native] [--downloads N] [--plain-http]");
    };
    let root = PathBuf::from(root);
    let (mut unpack, mut native, mut downloads, mut plain_http) = (true, false, 3, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-unpack" => unpack = false,
            "--native" => native = true,
            "--plain-http" => plain_http = true,
            "--downloads" => downloads = args.next().context("--downloads N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&root)?;
    let metadata = berth_store::MetadataStore::open(&root.join("metadata.redb"))?;
    let content = berth_store::content::Content::open(&root.join("content"), metadata)?;
    let content: Arc<dyn ContentStore> = Arc::new(content.namespace("default", None)?);
    let images = MemImages::default();
    let snapshotter: Box<dyn Snapshotter> = if native {
        Box::new(berth_snapshot::native::open(
            &root.join("snapshots/native"),
        )?)
    } else {
        Box::new(berth_snapshot::overlay::open(
            &root.join("snapshots/overlayfs"),
        )?)
    };
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let applier = LocalApplier::new(content.clone(), &scratch);
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http,
        ..RegistryOptions::default()
    })?;
    let opts = PullOptions {
        unpack: unpack.then(|| UnpackTarget {
            snapshotter: snapshotter.as_ref(),
            snapshotter_name: if native { "native" } else { "overlayfs" },
            applier: &applier,
            local_scratch: Some(scratch.clone()),
            platform: None,
        }),
        max_concurrent_downloads: downloads,
        ..PullOptions::default()
    };
    let start = Instant::now();
    pull(
        content.as_ref(),
        &images,
        &resolver,
        &reference,
        &opts,
        &NoProgress,
    )
    .await?;
    let took = start.elapsed();
    println!("pull+unpack {} ms", took.as_millis());
    for info in snapshotter.walk(&[]).await? {
        println!("snapshot {} parent {:?}", info.name, info.parent);
    }
    Ok(())
}
