//! CRI's images from the daemon's records. An image record is a name and
//! a target (a manifest or an index); CRI's image is the config its target
//! leads to for the host platform, named by that config's digest (the
//! image id), with every record leading to it as its references — as
//! containerd's CRI image store builds them.
//!
//! A target's documents never change, so what one says is read once and
//! kept in a [`Cache`] for as long as a record names it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use berth_core::content::ContentStore;
use berth_core::images::Image as Record;
use berth_core::{Descriptor as CoreDescriptor, Digest, Result};
use berth_image::images::{chain_id, manifest, read_document, size};
use berth_image::spec::{parse_json, ImageSpec};
use berth_image::{Descriptor, Matcher};
use futures::StreamExt;

use super::{Image, RunConfig, PINNED_LABEL, PINNED_VALUE};

/// How many targets are read at once.
const CONCURRENT_READS: usize = 8;

/// What targets say, by digest: those named by the records of the last
/// listing.
#[derive(Debug, Default)]
pub(crate) struct Cache(Mutex<HashMap<Digest, Arc<Target>>>);

/// What a target says for the host platform.
#[derive(Debug)]
struct Target {
    id: String,
    chain_id: Option<String>,
    size: u64,
    spec: ImageSpec,
}

/// Reads the config `target` leads to for the host platform, its chain ID
/// and the image's size (index, manifest, config and layers).
async fn read_target(content: &dyn ContentStore, target: &CoreDescriptor) -> Result<Target> {
    let desc = Descriptor::from_core(target);
    let matcher = Matcher::host();
    let (_, manifest) = manifest(content, &desc, &matcher).await?;
    let bytes = read_document(content, &manifest.config).await?;
    let spec: ImageSpec = parse_json(&bytes, "image config")?;
    let diff_ids = spec
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    let (total, complete) = size(content, &desc, &matcher).await;
    complete?;
    Ok(Target {
        id: manifest.config.digest.to_string(),
        chain_id: chain_id(&diff_ids).map(|d| d.to_string()),
        size: u64::try_from(total).unwrap_or(0),
        spec,
    })
}

/// The id (config digest) of the image `target` leads to.
pub(crate) async fn image_id(
    content: &dyn ContentStore,
    target: &CoreDescriptor,
) -> Result<String> {
    let desc = Descriptor::from_core(target);
    let (_, manifest) = manifest(content, &desc, &Matcher::host()).await?;
    Ok(manifest.config.digest.to_string())
}

/// The images `records` lead to, one per id, in the order of their first
/// record. Records whose content cannot be read (not all there, or not for
/// this platform) are left out, as containerd's CRI leaves them out.
/// `records` must be all the records: the cache keeps only their targets.
pub(crate) async fn group(
    content: &dyn ContentStore,
    records: &[Record],
    cache: &Cache,
) -> Vec<Image> {
    let targets = read_targets(content, records, cache).await;
    let mut out: Vec<Image> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for record in records {
        let Some(target) = targets.get(&record.target.digest) else {
            continue;
        };
        let i = *by_id.entry(target.id.clone()).or_insert_with(|| {
            out.push(new_image(target));
            out.len() - 1
        });
        out[i].references.push(record.name.clone());
        if record.labels.get(PINNED_LABEL).map(String::as_str) == Some(PINNED_VALUE) {
            out[i].pinned = true;
        }
    }
    out
}

/// Each distinct, readable target of `records`: from the cache, or read
/// (and cached).
async fn read_targets(
    content: &dyn ContentStore,
    records: &[Record],
    cache: &Cache,
) -> HashMap<Digest, Arc<Target>> {
    let mut found = HashMap::new();
    let mut missing: HashMap<Digest, CoreDescriptor> = HashMap::new();
    {
        let cached = cache.0.lock().unwrap_or_else(PoisonError::into_inner);
        for record in records {
            let digest = &record.target.digest;
            match cached.get(digest) {
                Some(target) => {
                    found.insert(digest.clone(), target.clone());
                }
                None => {
                    missing
                        .entry(digest.clone())
                        .or_insert_with(|| record.target.clone());
                }
            }
        }
    }
    let reads: Vec<_> = missing
        .into_values()
        .map(|target| read_one(content, target))
        .collect();
    let read: Vec<_> = futures::stream::iter(reads)
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    found.extend(read.into_iter().flatten());
    let mut cached = cache.0.lock().unwrap_or_else(PoisonError::into_inner);
    cached.retain(|digest, _| found.contains_key(digest));
    cached.extend(found.iter().map(|(d, t)| (d.clone(), t.clone())));
    found
}

/// One target, read; `None` (and a debug line) if it cannot be.
async fn read_one(
    content: &dyn ContentStore,
    target: CoreDescriptor,
) -> Option<(Digest, Arc<Target>)> {
    match read_target(content, &target).await {
        Ok(t) => Some((target.digest, Arc::new(t))),
        Err(err) => {
            tracing::debug!(target = %target.digest, "image left out of CRI's images: {err}");
            None
        }
    }
}

fn new_image(target: &Target) -> Image {
    let run = &target.spec.config;
    Image {
        id: target.id.clone(),
        references: Vec::new(),
        chain_id: target.chain_id.clone(),
        size: target.size,
        config: RunConfig {
            env: run.env.clone(),
            entrypoint: run.entrypoint.clone(),
            cmd: run.cmd.clone(),
            working_dir: run.working_dir.clone(),
            user: run.user.clone(),
            stop_signal: run.stop_signal.clone(),
            volumes: run.volumes.keys().cloned().collect(),
        },
        pinned: false,
        spec: target.spec.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::mediatypes::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_INDEX};
    use berth_image::platforms;
    use berth_image::testing::MemContent;
    use std::time::SystemTime;

    /// A one-layer image for the host platform, under an index; returns
    /// the index's descriptor, the config's digest and the image's size.
    fn put_image(content: &MemContent, user: &str) -> (CoreDescriptor, Digest, u64) {
        let host = platforms::default_spec();
        let diff = Digest::sha256_of(user.as_bytes());
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","config":{{"User":"{user}","Cmd":["sh"],"StopSignal":"SIGINT","Volumes":{{"/v":{{}}}}}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#,
            host.architecture
        );
        let config_digest = content.put(config.as_bytes());
        let layer = Digest::sha256_of(b"layer");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{layer}","size":1000}}]}}"#,
            config.len()
        );
        let manifest_digest = content.put(manifest.as_bytes());
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{manifest_digest}","size":{},"platform":{{"architecture":"{}","os":"linux"}}}}]}}"#,
            manifest.len(),
            host.architecture
        );
        let index_digest = content.put(index.as_bytes());
        let desc = CoreDescriptor {
            media_type: OCI_INDEX.into(),
            digest: index_digest,
            size: index.len() as i64,
            annotations: HashMap::new(),
        };
        let size = (index.len() + manifest.len() + config.len() + 1000) as u64;
        (desc, config_digest, size)
    }

    fn record(name: &str, target: &CoreDescriptor, labels: &[(&str, &str)]) -> Record {
        Record {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.clone(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn records_group_by_config_digest() {
        let content = MemContent::default();
        let (busybox, busybox_id, busybox_size) = put_image(&content, "1000:1000");
        let (other, other_id, _) = put_image(&content, "nobody");
        let missing = CoreDescriptor {
            digest: Digest::sha256_of(b"gone"),
            ..busybox.clone()
        };
        let records = vec![
            record("docker.io/library/busybox:latest", &busybox, &[]),
            record("docker.io/library/other:1", &other, &[]),
            record("docker.io/library/broken:1", &missing, &[]),
            record(
                &busybox_id.to_string(),
                &busybox,
                &[(PINNED_LABEL, PINNED_VALUE)],
            ),
        ];
        let cache = Cache::default();
        let images = group(&content, &records, &cache).await;
        assert_eq!(images.len(), 2, "{images:?}");
        let first = &images[0];
        assert_eq!(first.id, busybox_id.to_string());
        assert_eq!(
            first.references,
            vec![
                "docker.io/library/busybox:latest".to_string(),
                busybox_id.to_string()
            ]
        );
        assert!(first.pinned);
        assert_eq!(first.config.user, "1000:1000");
        assert_eq!(first.config.cmd, vec!["sh"]);
        assert_eq!(first.config.stop_signal, "SIGINT");
        assert_eq!(first.config.volumes, vec!["/v"]);
        assert_eq!(
            first.chain_id,
            Some(Digest::sha256_of(b"1000:1000").to_string())
        );
        assert_eq!(first.size, busybox_size);
        assert_eq!(images[1].id, other_id.to_string());
        assert!(!images[1].pinned);
        assert_eq!(
            image_id(&content, &other).await.expect("id"),
            other_id.to_string()
        );

        // Read once: the cache answers while a record names the target,
        // and forgets targets no record names.
        let cached = |cache: &Cache| cache.0.lock().expect("lock").len();
        assert_eq!(cached(&cache), 2);
        let empty = MemContent::default();
        assert_eq!(group(&empty, &records, &cache).await.len(), 2);
        let only_busybox = group(&empty, &records[..1], &cache).await;
        assert_eq!(only_busybox.len(), 1);
        assert_eq!(cached(&cache), 1);
        assert!(group(&empty, &records[1..2], &cache).await.is_empty());
    }
}
