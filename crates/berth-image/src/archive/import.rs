//! Importing an archive as image records (containerd's `Client.Import`).

use std::time::SystemTime;

use berth_core::content::ContentStore;
use berth_core::images::{Image, ImageStore};
use berth_core::{Error, ErrorKind, Result};
use tokio::io::AsyncRead;

use super::importer::import_index;
use super::names::{digest_ref, image_name, RefTranslator};
use crate::gc::set_children_labels;
use crate::images::{children, filter_platforms, read_document};
use crate::platforms::Matcher;
use crate::spec::{Descriptor, Index};

/// How [`import`] names images and which platforms it keeps.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Also create an image with this name for the whole index
    /// (`--index-name`).
    pub index_name: Option<String>,
    /// How `org.opencontainers.image.ref.name` becomes an image name.
    pub ref_translator: RefTranslator,
    /// Also create `PREFIX@DIGEST` images for every manifest (`--digests`).
    pub digest_prefix: Option<String>,
    /// With `digest_prefix`, skip manifests that have a name
    /// (`--skip-digest-for-named`).
    pub skip_digest_for_named: bool,
    /// Which platforms' content is labelled to be kept (default: the
    /// host's, `--platform`, or all with `--all-platforms`).
    pub platforms: Matcher,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            index_name: None,
            ref_translator: RefTranslator::Identity,
            digest_prefix: None,
            skip_digest_for_named: false,
            platforms: Matcher::host(),
        }
    }
}

/// Imports the archive from `reader`: its blobs go into `content`, its
/// manifests' content for the selected platforms gets GC labels, and an
/// image is created (or retargeted) per name. Returns the image records in
/// the order containerd creates them. Run it under a lease.
pub async fn import(
    content: &dyn ContentStore,
    images: &dyn ImageStore,
    reader: impl AsyncRead + Unpin + Send,
    options: &ImportOptions,
) -> Result<Vec<Image>> {
    let index = import_index(content, reader).await?;
    let mut records: Vec<(String, Descriptor)> = Vec::new();
    if let Some(name) = &options.index_name {
        records.push((name.clone(), index.clone()));
    }
    let bytes = read_document(content, &index).await?;
    let manifests = Index::parse(&bytes, &index.media_type)?.manifests;
    for m in &manifests {
        let name = image_name(&m.annotations, &options.ref_translator);
        if !name.is_empty() {
            records.push((name.clone(), m.clone()));
        }
        if options.skip_digest_for_named && !name.is_empty() {
            continue;
        }
        if let Some(prefix) = &options.digest_prefix {
            records.push((digest_ref(prefix, &m.digest), m.clone()));
        }
    }
    label_content(content, &index, manifests, &options.platforms).await?;
    let mut created = Vec::with_capacity(records.len());
    for (name, target) in records {
        created.push(put_image(images, name, &target).await?);
    }
    Ok(created)
}

/// Walks the index's selected manifests and their children, labelling
/// each parent with its children (`SetChildrenLabels(FilterPlatforms(…))`
/// under `WalkNotEmpty`).
async fn label_content(
    content: &dyn ContentStore,
    index: &Descriptor,
    manifests: Vec<Descriptor>,
    matcher: &Matcher,
) -> Result<()> {
    let selected = filter_platforms(manifests, matcher);
    if selected.is_empty() {
        // containerd's `images.ErrEmptyWalk`.
        return Err(Error::new(
            ErrorKind::NotFound,
            "image might be filtered out",
        ));
    }
    set_children_labels(content, &index.digest, &selected).await?;
    let mut stack: Vec<Descriptor> = selected.into_iter().rev().collect();
    while let Some(desc) = stack.pop() {
        let list = filter_platforms(children(content, &desc).await?, matcher);
        set_children_labels(content, &desc.digest, &list).await?;
        stack.extend(list.into_iter().rev());
    }
    Ok(())
}

/// Points image `name` at `target`: update if it exists, else create.
async fn put_image(images: &dyn ImageStore, name: String, target: &Descriptor) -> Result<Image> {
    let now = SystemTime::now();
    let image = Image {
        name,
        labels: Default::default(),
        target: target.to_core(),
        created_at: now,
        updated_at: now,
    };
    match images.update(image.clone(), &["target".to_string()]).await {
        Ok(updated) => Ok(updated),
        Err(err) if err.kind() == ErrorKind::NotFound => images.create(image).await,
        Err(err) => Err(err),
    }
}
