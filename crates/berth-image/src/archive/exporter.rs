//! Writing images as an OCI layout tar (containerd's `archive.Export`).

use std::collections::BTreeMap;

use berth_core::content::ContentStore;
use berth_core::digest::Digester;
use berth_core::images::Image;
use berth_core::{Digest, Error, Result};
use tokio::io::{AsyncReadExt, AsyncWrite};

use crate::images::{children, read_document, sort_by_preference};
use crate::mediatypes;
use crate::platforms::Matcher;
use crate::reference;
use crate::spec::{
    json, Descriptor, DockerArchiveEntry, ImageLayout, Index, Manifest, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME, IMAGE_LAYOUT_FILE, IMAGE_LAYOUT_VERSION,
};
use crate::tar::{Header, TarWriter};

/// What [`export`] writes.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Which manifest of an index goes into `manifest.json` and, unless
    /// `all_platforms`, which manifests' content is written (default: the
    /// host's platform exactly).
    pub platforms: Matcher,
    /// Write the content of every manifest of an index (`--all-platforms`).
    pub all_platforms: bool,
    /// Leave out Docker's `manifest.json` (`--skip-manifest-json`).
    pub skip_docker_manifest: bool,
    /// Leave out non-distributable layers (`--skip-non-distributable`).
    pub skip_non_distributable: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            platforms: Matcher::host_strict(),
            all_platforms: false,
            skip_docker_manifest: false,
            skip_non_distributable: false,
        }
    }
}

/// An image's target annotated with its name, as `index.json` lists it
/// (`archive.WithImage`).
pub fn image_target(image: &Image) -> Descriptor {
    let mut desc = Descriptor::from_core(&image.target);
    desc.annotations
        .insert(ANNOTATION_IMAGE_NAME.to_string(), image.name.clone());
    desc.annotations.insert(
        ANNOTATION_REF_NAME.to_string(),
        reference::oci_ref_name(&image.name),
    );
    desc
}

/// Where a member's bytes come from.
enum Body {
    None,
    Bytes(Vec<u8>),
    Blob(Descriptor),
}

/// A manifest that goes into `manifest.json`, with its image names.
struct DockerEntry {
    manifest: Descriptor,
    names: Vec<String>,
}

/// Everything the archive will hold, keyed (and so sorted) by member name.
struct Records {
    members: BTreeMap<String, (Header, Body)>,
    algorithms: BTreeMap<String, ()>,
    skip_non_distributable: bool,
}

impl Records {
    fn add_bytes(&mut self, name: &str, mode: u32, bytes: Vec<u8>) {
        let header = Header::file(name, mode, bytes.len() as u64);
        self.members
            .entry(name.to_string())
            .or_insert((header, Body::Bytes(bytes)));
    }

    fn add_blob(&mut self, desc: &Descriptor) -> Result<()> {
        if self.skip_non_distributable && mediatypes::is_non_distributable(&desc.media_type) {
            return Ok(());
        }
        let size = u64::try_from(desc.size).map_err(|_| {
            Error::invalid_argument(format!("invalid size {} of {}", desc.size, desc.digest))
        })?;
        let name = blob_path(&desc.digest);
        let header = Header::file(name.as_str(), 0o444, size);
        self.members
            .entry(name)
            .or_insert((header, Body::Blob(desc.clone())));
        Ok(())
    }

    /// `desc` and everything below it (`getRecords`).
    async fn add_tree(&mut self, store: &dyn ContentStore, desc: &Descriptor) -> Result<()> {
        let mut stack = vec![desc.clone()];
        while let Some(d) = stack.pop() {
            self.add_blob(&d)?;
            self.algorithms.insert(d.digest.algorithm().to_string(), ());
            stack.extend(children(store, &d).await?.into_iter().rev());
        }
        Ok(())
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.encoded())
}

/// Writes `manifests` — image targets, usually from [`image_target`] — and
/// their content from `store` to `writer` as an OCI layout tar.
pub async fn export(
    store: &dyn ContentStore,
    manifests: &[Descriptor],
    writer: impl AsyncWrite + Unpin,
    options: &ExportOptions,
) -> Result<()> {
    let mut records = Records {
        members: BTreeMap::new(),
        algorithms: BTreeMap::new(),
        skip_non_distributable: options.skip_non_distributable,
    };
    records.add_bytes(IMAGE_LAYOUT_FILE, 0o444, layout_bytes()?);
    let index = Index {
        schema_version: 2,
        manifests: manifests.to_vec(),
        ..Index::default()
    };
    records.add_bytes("index.json", 0o644, json::to_vec(&index)?);

    let mut docker: Vec<DockerEntry> = Vec::new();
    let mut resolved: BTreeMap<Digest, Option<Digest>> = BTreeMap::new();
    for desc in manifests {
        let name = desc
            .annotations
            .get(ANNOTATION_IMAGE_NAME)
            .filter(|n| !n.is_empty());
        if mediatypes::is_manifest(&desc.media_type) {
            if !docker.iter().any(|e| e.manifest.digest == desc.digest) {
                records.add_tree(store, desc).await?;
                docker.push(DockerEntry {
                    manifest: desc.clone(),
                    names: Vec::new(),
                });
            }
            if let (Some(name), Some(entry)) = (
                name,
                docker.iter_mut().find(|e| e.manifest.digest == desc.digest),
            ) {
                entry.names.push(name.clone());
            }
        } else if mediatypes::is_index(&desc.media_type) {
            let chosen = match resolved.get(&desc.digest) {
                Some(chosen) => chosen.clone(),
                None => {
                    let chosen = add_index(store, desc, options, &mut records, &mut docker).await?;
                    resolved.insert(desc.digest.clone(), chosen.clone());
                    chosen
                }
            };
            if let (Some(name), Some(chosen)) = (name, chosen) {
                if let Some(entry) = docker.iter_mut().find(|e| e.manifest.digest == chosen) {
                    entry.names.push(name.clone());
                }
            }
        } else {
            return Err(Error::invalid_argument(
                "only manifests may be exported: invalid argument",
            ));
        }
    }

    if !options.skip_docker_manifest && !docker.is_empty() {
        let bytes = docker_manifest(store, &docker)
            .await
            .map_err(|e| e.context("unable to create manifests file"))?;
        records.add_bytes("manifest.json", 0o644, bytes);
    }
    if !records.algorithms.is_empty() {
        records
            .members
            .insert("blobs/".into(), (Header::dir("blobs/", 0o755), Body::None));
        for alg in records.algorithms.keys() {
            let name = format!("blobs/{alg}/");
            records
                .members
                .insert(name.clone(), (Header::dir(name, 0o755), Body::None));
        }
    }
    write_tar(store, records.members, writer).await
}

/// Adds an index and its platform's manifests; returns the manifest chosen
/// for `manifest.json`.
async fn add_index(
    store: &dyn ContentStore,
    desc: &Descriptor,
    options: &ExportOptions,
    records: &mut Records,
    docker: &mut Vec<DockerEntry>,
) -> Result<Option<Digest>> {
    records.add_blob(desc)?;
    let index = Index::parse(&read_document(store, desc).await?, &desc.media_type)?;
    let mut matching = Vec::new();
    for m in index.manifests {
        let accepted = m
            .platform
            .as_ref()
            .is_none_or(|p| options.platforms.matches(p));
        if !accepted && !options.all_platforms {
            continue;
        }
        records.add_tree(store, &m).await?;
        if accepted {
            matching.push(m);
        }
    }
    sort_by_preference(&mut matching, &options.platforms);
    let Some(first) = matching.into_iter().next() else {
        return Err(Error::not_found(
            "no manifest found for platform: not found",
        ));
    };
    let digest = first.digest.clone();
    if !docker.iter().any(|e| e.manifest.digest == digest) {
        docker.push(DockerEntry {
            manifest: first,
            names: Vec::new(),
        });
    }
    Ok(Some(digest))
}

fn layout_bytes() -> Result<Vec<u8>> {
    json::to_vec(&ImageLayout {
        version: IMAGE_LAYOUT_VERSION.to_string(),
    })
}

/// Docker's `manifest.json`: config and layer paths and familiar names per
/// manifest, in the order the images were given.
async fn docker_manifest(store: &dyn ContentStore, entries: &[DockerEntry]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let bytes = read_document(store, &entry.manifest).await?;
        let manifest: Manifest = crate::spec::parse_json(&bytes, "manifest")?;
        let mut repo_tags = Vec::with_capacity(entry.names.len());
        for name in &entry.names {
            repo_tags.push(reference::familiarize(name)?);
        }
        out.push(DockerArchiveEntry {
            config: blob_path(&manifest.config.digest),
            repo_tags,
            layers: manifest
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect(),
        });
    }
    json::to_vec(&out)
}

/// Writes the members in name order, streaming blobs from the store and
/// verifying each one's size and digest as it goes.
async fn write_tar(
    store: &dyn ContentStore,
    members: BTreeMap<String, (Header, Body)>,
    writer: impl AsyncWrite + Unpin,
) -> Result<()> {
    let mut tar = TarWriter::new(writer);
    let mut buf = vec![0u8; 1 << 20];
    for (_, (header, body)) in members {
        tar.append_header(&header).await?;
        match body {
            Body::None => {}
            Body::Bytes(bytes) => tar.write_body(&bytes).await?,
            Body::Blob(desc) => {
                let mut reader = store.reader(&desc.digest, 0).await?;
                let mut digester = Digester::new();
                let mut copied = 0u64;
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    copied += n as u64;
                    if copied > header.size {
                        break;
                    }
                    digester.update(&buf[..n]);
                    tar.write_body(&buf[..n]).await?;
                }
                if copied != header.size {
                    return Err(Error::failed_precondition(format!(
                        "unexpected copy size for {}",
                        header.name
                    )));
                }
                let digest = digester.finish();
                if digest != desc.digest {
                    return Err(Error::failed_precondition(format!(
                        "unexpected digest {digest} copied"
                    )));
                }
            }
        }
    }
    tar.finish().await?;
    Ok(())
}
