//! The small blobs of a pull: index, manifests and configs, fetched one by
//! one (they are tiny and each names the next), verified, and stored with
//! their GC and distribution-source labels.

use super::progress::{ALREADY_EXISTS, COMPLETE};
use super::Ctx;
use crate::gc::children_labels;
use crate::images::{filter_platforms, read_document, sort_by_preference, MAX_DOCUMENT};
use crate::mediatypes;
use crate::platforms::{normalize, Matcher, Platform};
use crate::spec::{parse_json, Descriptor, ImageConfig, Index, Manifest};
use berth_core::content::{write_blob, ContentStore, Info};
use berth_core::{Digest, Error, ErrorKind, Result};
use std::collections::HashMap;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

/// One platform's image, as far as a pull needs it.
#[derive(Debug, Clone)]
pub(crate) struct ManifestInfo {
    /// The manifest's descriptor.
    pub desc: Descriptor,
    /// Its config.
    pub config: Descriptor,
    /// Its layers, base first.
    pub layers: Vec<Descriptor>,
    /// The config's diff IDs, one per layer.
    pub diff_ids: Vec<Digest>,
    /// The platform: the index's word for it, else the config's.
    pub platform: Platform,
}

/// The manifests a pull selected.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub manifests: Vec<ManifestInfo>,
}

impl Tree {
    /// The manifest `matcher` likes best, if it likes any.
    pub(crate) fn preferred(&self, matcher: &Matcher) -> Option<&ManifestInfo> {
        let mut best: Option<&ManifestInfo> = None;
        for m in self
            .manifests
            .iter()
            .filter(|m| matcher.matches(&m.platform))
        {
            if best.is_none_or(|b| matcher.less(&m.platform, &b.platform)) {
                best = Some(m);
            }
        }
        best.or_else(|| {
            // A single-manifest image is unpacked whatever its config says,
            // as containerd does for a manifest pulled by digest.
            (self.manifests.len() == 1).then(|| &self.manifests[0])
        })
    }
}

/// Fetches the documents under `root` for `matcher`.
pub(crate) async fn fetch_tree(
    ctx: &Ctx<'_>,
    root: &Descriptor,
    matcher: &Matcher,
) -> Result<Tree> {
    let mut tree = Tree::default();
    let mut stack = vec![root.clone()];
    while let Some(desc) = stack.pop() {
        if mediatypes::is_index(&desc.media_type) {
            let (bytes, present) = get(ctx, &desc).await?;
            let index = Index::parse(&bytes, &desc.media_type)
                .map_err(|e| e.context(format!("index {}", desc.digest)))?;
            let mut list = filter_platforms(index.manifests, matcher);
            if let Matcher::Ordered(_) = matcher {
                // containerd's LimitManifests(…, 1): only the best match.
                sort_by_preference(&mut list, matcher);
                list.truncate(1);
            }
            if list.is_empty() {
                return Err(Error::not_found(format!(
                    "no match for platform in manifest {}",
                    desc.digest
                )));
            }
            put(ctx, &desc, &bytes, present, children_labels(&list)).await?;
            stack.extend(list.into_iter().rev());
        } else if mediatypes::is_manifest(&desc.media_type) {
            tree.manifests.push(fetch_manifest(ctx, &desc).await?);
        } else {
            return Err(Error::invalid_argument(format!(
                "{}: unexpected media type {:?} for an image root or manifest",
                desc.digest, desc.media_type
            )));
        }
    }
    Ok(tree)
}

async fn fetch_manifest(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<ManifestInfo> {
    let (bytes, present) = get(ctx, desc).await?;
    let manifest = Manifest::parse(&bytes, &desc.media_type)
        .map_err(|e| e.context(format!("manifest {}", desc.digest)))?;
    let (config_bytes, config_present) = get(ctx, &manifest.config).await?;
    let config: ImageConfig = parse_json(&config_bytes, "image config")?;
    put(
        ctx,
        &manifest.config,
        &config_bytes,
        config_present,
        Vec::new(),
    )
    .await?;
    let mut children = vec![manifest.config.clone()];
    children.extend(manifest.layers.iter().cloned());
    put(ctx, desc, &bytes, present, children_labels(&children)).await?;
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    let platform = match &desc.platform {
        Some(p) => p.clone(),
        None => normalize(&Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            ..Platform::default()
        }),
    };
    Ok(ManifestInfo {
        desc: desc.clone(),
        config: manifest.config,
        layers: manifest.layers,
        diff_ids,
        platform,
    })
}

/// The bytes of document `desc`, from the store or the remote; whether
/// the store had it.
async fn get(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<(Vec<u8>, bool)> {
    match read_document(ctx.content, desc).await {
        Ok(bytes) => return Ok((bytes, true)),
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let size = u64::try_from(desc.size).unwrap_or(u64::MAX);
    if size > MAX_DOCUMENT {
        return Err(Error::failed_precondition(format!(
            "{} is {size} bytes, more than the {MAX_DOCUMENT} a manifest or config may have",
            desc.digest
        )));
    }
    let reader = ctx.fetcher.fetch(desc, 0).await?;
    let mut bytes = Vec::with_capacity(size as usize);
    reader
        .take(size + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| Error::from(e).context(format!("fetch {}", desc.digest)))?;
    verify(desc, &bytes)?;
    Ok((bytes, false))
}

/// Checks fetched bytes against their descriptor.
pub(crate) fn verify(desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    if bytes.len() as i64 != desc.size {
        return Err(Error::failed_precondition(format!(
            "{}: fetched {} bytes, expected {}",
            desc.digest,
            bytes.len(),
            desc.size
        )));
    }
    let got = Digest::sha256_of(bytes);
    if got != desc.digest {
        return Err(Error::failed_precondition(format!(
            "{}: fetched content has digest {got}",
            desc.digest
        )));
    }
    Ok(())
}

/// Stores a document (or labels the copy the store has) with the
/// distribution source and `children` labels.
async fn put(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    bytes: &[u8],
    present: bool,
    children: Vec<(String, String)>,
) -> Result<()> {
    let mut labels = ctx.source_labels();
    labels.extend(children);
    let name = format!("{}-{}", ref_kind(&desc.media_type), desc.digest);
    // Written even when present: opening a writer for a blob the store has
    // puts it under the pull's lease (containerd's fetch does the same), so
    // garbage collection cannot take it before the image that needs it
    // exists, as it could a blob left by a pull cut short by `kill -9`.
    write_blob(
        ctx.content,
        &name,
        bytes,
        desc.size,
        &desc.digest,
        labels.clone(),
    )
    .await?;
    if present {
        if !labels.is_empty() {
            let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
            update_labels(ctx.content, &desc.digest, labels, &paths).await?;
        }
        ctx.report(ALREADY_EXISTS, name, desc, desc.size);
        return Ok(());
    }
    ctx.report(COMPLETE, name, desc, desc.size);
    Ok(())
}

/// containerd's `remotes.MakeRefKey` prefix for a media type.
pub(crate) fn ref_kind(media_type: &str) -> &'static str {
    if mediatypes::is_index(media_type) {
        "index"
    } else if mediatypes::is_manifest(media_type) {
        "manifest"
    } else if mediatypes::is_config(media_type) {
        "config"
    } else if mediatypes::is_layer(media_type) {
        "layer"
    } else {
        "unknown"
    }
}

/// Sets one label on a blob.
pub(crate) async fn set_label(
    store: &dyn ContentStore,
    digest: &Digest,
    key: &str,
    value: &str,
) -> Result<()> {
    let labels = HashMap::from([(key.to_string(), value.to_string())]);
    update_labels(store, digest, labels, &[format!("labels.{key}")]).await
}

async fn update_labels(
    store: &dyn ContentStore,
    digest: &Digest,
    labels: HashMap<String, String>,
    paths: &[String],
) -> Result<()> {
    let now = SystemTime::now();
    let info = Info {
        digest: digest.clone(),
        size: 0,
        created_at: now,
        updated_at: now,
        labels,
    };
    store.update(info, paths).await.map(|_| ())
}
