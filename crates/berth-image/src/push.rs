//! Pushing an image from a content store to a registry: containerd's
//! `remotes.PushContent`.
//!
//! The image's tree under `root` (restricted to the platforms asked for)
//! is uploaded children first, so a registry never holds a manifest whose
//! blobs are missing: layers and configs (several at once), then
//! manifests, then the index, the root last under the reference's tag.
//! Blobs the repository already has are skipped; the others are offered
//! for a cross-repository mount from every repository on the same host
//! that the blob's `containerd.io/distribution.source.<host>` label names
//! (set when it was pulled), and uploaded only if no mount works.

use crate::images::{children, filter_platforms};
use crate::mediatypes;
use crate::platforms::Matcher;
use crate::pull::progress::{ALREADY_EXISTS, PUSHED, UPLOADING};
use crate::pull::{Progress, ProgressUpdate, DISTRIBUTION_SOURCE_PREFIX};
use crate::reference::Reference;
use crate::remotes::{Pusher, Resolver};
use crate::spec::Descriptor;
use berth_core::content::ContentStore;
use berth_core::Result;
use futures::stream::{self, StreamExt};
use std::collections::HashSet;

/// How many blobs upload at once.
const MAX_CONCURRENT_UPLOADS: usize = 3;

/// Pushes the image `root` from `content` to `reference`, as the module
/// documentation describes.
pub async fn push(
    content: &dyn ContentStore,
    resolver: &dyn Resolver,
    reference: &str,
    root: &Descriptor,
    platforms: &Matcher,
    progress: &dyn Progress,
) -> Result<()> {
    let host = Reference::parse_normalized(reference)?.domain;
    let pusher = resolver.pusher(reference).await?;
    let order = walk(content, root, platforms).await?;
    let (blobs, documents): (Vec<&Descriptor>, Vec<&Descriptor>) = order.iter().partition(|d| {
        !mediatypes::is_manifest(&d.media_type) && !mediatypes::is_index(&d.media_type)
    });
    let one = Upload {
        content,
        pusher: pusher.as_ref(),
        host: &host,
        reference,
        progress,
    };
    let results: Vec<Result<()>> = stream::iter(blobs)
        .map(|desc| one.upload(desc, false))
        .buffer_unordered(MAX_CONCURRENT_UPLOADS)
        .collect()
        .await;
    results.into_iter().collect::<Result<()>>()?;
    for desc in documents {
        one.upload(desc, desc.digest == root.digest).await?;
    }
    progress.report(ProgressUpdate {
        event: PUSHED.into(),
        name: reference.to_string(),
        desc: Some(root.clone()),
        total: root.size,
        progress: root.size,
        ..Default::default()
    });
    Ok(())
}

/// The descriptors under `root` for `platforms`, each once, children
/// before their parents.
async fn walk(
    content: &dyn ContentStore,
    root: &Descriptor,
    platforms: &Matcher,
) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // (descriptor, children already pushed onto the stack)
    let mut stack = vec![(root.clone(), false)];
    while let Some((desc, expanded)) = stack.pop() {
        if expanded {
            if seen.insert(desc.digest.clone()) {
                out.push(desc);
            }
            continue;
        }
        let kids = filter_platforms(children(content, &desc).await?, platforms);
        stack.push((desc, true));
        stack.extend(kids.into_iter().rev().map(|d| (d, false)));
    }
    Ok(out)
}

/// What every upload needs.
struct Upload<'a> {
    content: &'a dyn ContentStore,
    pusher: &'a dyn Pusher,
    host: &'a str,
    reference: &'a str,
    progress: &'a dyn Progress,
}

impl Upload<'_> {
    async fn upload(&self, desc: &Descriptor, is_root: bool) -> Result<()> {
        let name = format!(
            "{}-{}",
            crate::pull::progress_ref_kind(&desc.media_type),
            desc.digest
        );
        let report = |event: &str, done: i64| {
            self.progress.report(ProgressUpdate {
                event: event.to_string(),
                name: name.clone(),
                parents: vec![self.reference.to_string()],
                progress: done,
                total: desc.size,
                desc: Some(desc.clone()),
            })
        };
        // The root is always written, so the tag moves to it.
        if !is_root && self.pusher.exists(desc).await? {
            report(ALREADY_EXISTS, desc.size);
            return Ok(());
        }
        let info = self.content.info(&desc.digest).await?;
        let key = format!("{DISTRIBUTION_SOURCE_PREFIX}{}", self.host);
        let mount_from: Vec<String> = info
            .labels
            .get(&key)
            .map(|repos| repos.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        report(UPLOADING, 0);
        let reader = self.content.reader(&desc.digest, 0).await?;
        self.pusher
            .push(desc, &mount_from, Box::new(reader))
            .await
            .map_err(|e| e.context(format!("push {}", desc.digest)))?;
        report(crate::pull::progress::COMPLETE, desc.size);
        Ok(())
    }
}
