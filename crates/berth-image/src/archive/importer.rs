//! Streaming an archive into the content store and finding (or building)
//! its index (containerd's `archive.ImportIndex`).

use std::collections::{BTreeMap, HashMap};

use berth_core::content::{write_blob, ContentStore, WriterOptions};
use berth_core::digest::Digester;
use berth_core::{Digest, Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::gc::UNCOMPRESSED_LABEL;
use crate::images::read_document;
use crate::mediatypes;
use crate::platforms::normalize;
use crate::reference;
use crate::spec::{
    json, parse_json, Descriptor, DockerArchiveEntry, ImageConfig, ImageLayout, Index, Manifest,
    Platform, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, IMAGE_LAYOUT_FILE, IMAGE_LAYOUT_VERSION,
};
use crate::tar::{EntryKind, TarReader};

/// The most `oci-layout` or `manifest.json` may hold.
const MAX_METADATA_FILE: u64 = 16 << 20;
/// How much is copied per content write.
const CHUNK: usize = 1 << 20;

/// What a blob's first bytes say about its compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A regular member stored as a blob.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: i64,
    compression: Compression,
}

/// Streams the archive from `reader` into `store` and returns the index
/// describing its images (media type OCI index).
pub async fn import_index(
    store: &dyn ContentStore,
    reader: impl AsyncRead + Unpin + Send,
) -> Result<Descriptor> {
    let mut tar = TarReader::new(reader);
    let mut layout: Option<ImageLayout> = None;
    let mut docker: Option<Vec<DockerArchiveEntry>> = None;
    let mut symlinks: BTreeMap<String, String> = BTreeMap::new();
    let mut blobs: HashMap<String, Blob> = HashMap::new();
    while let Some(header) = tar.next_header().await? {
        let name = member_name(&header.name)?;
        match header.kind {
            EntryKind::Regular => {}
            EntryKind::Directory | EntryKind::Other(_) => continue,
            EntryKind::Symlink => {
                symlinks.insert(name.clone(), link_target(&name, &header.link_name)?);
                continue;
            }
            EntryKind::HardLink | EntryKind::Special => {
                return Err(Error::invalid_argument(format!(
                    "archive member {:?}: hard links and special files are not allowed in an image archive: invalid argument",
                    header.name
                )))
            }
        }
        if name == IMAGE_LAYOUT_FILE {
            let bytes = read_small(&mut tar, header.size, &name).await?;
            layout =
                Some(parse_json(&bytes, "oci layout").map_err(|e| e.context("untar oci layout"))?);
        } else if name == "manifest.json" {
            let bytes = read_small(&mut tar, header.size, &name).await?;
            docker =
                Some(parse_json(&bytes, "manifest.json").map_err(|e| e.context("untar manifest"))?);
        } else {
            let blob = ingest(store, &mut tar, &name, header.size)
                .await
                .map_err(|e| e.context(format!("failed to ingest {:?}", header.name)))?;
            blobs.insert(name, blob);
        }
    }

    if let Some(layout) = layout.filter(|l| !l.version.is_empty()) {
        if layout.version != IMAGE_LAYOUT_VERSION {
            return Err(Error::invalid_argument(format!(
                "unsupported OCI version {}",
                layout.version
            )));
        }
        let index = blobs.get("index.json").ok_or_else(|| {
            Error::invalid_argument(format!(
                "missing index.json in OCI layout {IMAGE_LAYOUT_VERSION}"
            ))
        })?;
        return Ok(Descriptor::new(
            mediatypes::OCI_INDEX,
            index.digest.clone(),
            index.size,
        ));
    }
    let entries = docker.ok_or_else(|| Error::invalid_argument("unrecognized image format"))?;
    for (name, target) in &symlinks {
        let blob = blobs.get(target).cloned().ok_or_else(|| {
            Error::invalid_argument(format!(
                "no target for symlink layer from {name:?} to {target:?}"
            ))
        })?;
        blobs.insert(name.clone(), blob);
    }
    docker_index(store, &entries, &blobs).await
}

/// A member's path, cleaned (`./a//b/` → `a/b`); absolute paths and `..`
/// are refused.
fn member_name(raw: &str) -> Result<String> {
    let refuse = |why: &str| {
        Error::invalid_argument(format!("archive member {raw:?}: {why}: invalid argument"))
    };
    if raw.starts_with('/') {
        return Err(refuse("absolute paths are not allowed"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse("\"..\" is not allowed in member paths")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(refuse("empty path"));
    }
    Ok(parts.join("/"))
}

/// Where a symbolic link member points, as a member path; a target outside
/// the archive is refused.
fn link_target(name: &str, target: &str) -> Result<String> {
    let refuse = || {
        Error::invalid_argument(format!(
            "archive member {name:?}: symbolic link to {target:?} points outside the archive: invalid argument"
        ))
    };
    if target.starts_with('/') {
        return Err(refuse());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(refuse)?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(refuse());
    }
    Ok(parts.join("/"))
}

async fn read_small<R: AsyncRead + Unpin>(
    tar: &mut TarReader<R>,
    size: u64,
    name: &str,
) -> Result<Vec<u8>> {
    if size > MAX_METADATA_FILE {
        return Err(Error::invalid_argument(format!(
            "archive member {name:?} is {size} bytes, more than {MAX_METADATA_FILE} allowed"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    tar.body().read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The digest a member's name promises: `blobs/<alg>/<encoded>`.
fn named_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, encoded) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{encoded}")).ok()
}

/// Streams the current member into the store under ingest ref
/// `tar-<name>`, verifying the digest its name promises, if any.
async fn ingest<R: AsyncRead + Unpin + Send>(
    store: &dyn ContentStore,
    tar: &mut TarReader<R>,
    name: &str,
    size: u64,
) -> Result<Blob> {
    let reference = format!("tar-{name}");
    let size = i64::try_from(size).map_err(|_| Error::invalid_argument("member too large"))?;
    let mut head = [0u8; 4];
    if let Some(expected) = named_digest(name) {
        if expected.algorithm() != berth_core::digest::SHA256 {
            return Err(Error::not_implemented(format!(
                "unsupported digest algorithm {}",
                expected.algorithm()
            )));
        }
        let mut body = tar.body();
        let n = read_head(&mut body, &mut head).await?;
        let reader = (&head[..n]).chain(body);
        let written = write_blob(store, &reference, reader, size, &expected, HashMap::new()).await;
        if let Err(err) = written {
            let _ = store.abort(&reference).await;
            return Err(err);
        }
        return Ok(Blob {
            digest: expected,
            size,
            compression: Compression::detect(&head[..n]),
        });
    }
    let result = ingest_unnamed(store, tar, &reference, size, &mut head).await;
    if result.is_err() {
        // Best effort: a failed import leaves no half-written ingest.
        let _ = store.abort(&reference).await;
    }
    result
}

/// Streams a member whose digest is learnt while reading it.
async fn ingest_unnamed<R: AsyncRead + Unpin + Send>(
    store: &dyn ContentStore,
    tar: &mut TarReader<R>,
    reference: &str,
    size: i64,
    head: &mut [u8; 4],
) -> Result<Blob> {
    let options = WriterOptions {
        reference: reference.to_string(),
        total: size,
        expected: None,
    };
    let mut writer = store.writer(options).await?;
    if writer.status().offset != 0 {
        writer.truncate(0).await?;
    }
    let mut digester = Digester::new();
    let mut body = tar.body();
    let mut buf = vec![0u8; CHUNK];
    let mut head_len = 0;
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if head_len < head.len() {
            let take = (head.len() - head_len).min(n);
            head[head_len..head_len + take].copy_from_slice(&buf[..take]);
            head_len += take;
        }
        digester.update(&buf[..n]);
        writer.write(&buf[..n]).await?;
    }
    let digest = digester.finish();
    match writer
        .commit(size, Some(digest.clone()), HashMap::new())
        .await
    {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    Ok(Blob {
        digest,
        size,
        compression: Compression::detect(&head[..head_len]),
    })
}

/// Reads up to `head.len()` bytes (fewer only at the end of the body).
async fn read_head(body: &mut (impl AsyncRead + Unpin), head: &mut [u8; 4]) -> Result<usize> {
    let mut n = 0;
    while n < head.len() {
        let m = body.read(&mut head[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

/// Writes a JSON document as a blob (`writeManifest`), ingest ref
/// `manifest-<digest>`.
pub(super) async fn write_document(
    store: &dyn ContentStore,
    bytes: &[u8],
    media_type: &str,
) -> Result<Descriptor> {
    let digest = Digest::sha256_of(bytes);
    let size = bytes.len() as i64;
    let reference = format!("manifest-{digest}");
    write_blob(store, &reference, bytes, size, &digest, HashMap::new()).await?;
    Ok(Descriptor::new(media_type, digest, size))
}

/// An OCI index over Docker schema 2 manifests, one per `manifest.json`
/// entry and tag, written to the store.
async fn docker_index(
    store: &dyn ContentStore,
    entries: &[DockerArchiveEntry],
    blobs: &HashMap<String, Blob>,
) -> Result<Descriptor> {
    let mut index = Index {
        schema_version: 2,
        ..Index::default()
    };
    for entry in entries {
        let config = blobs.get(&clean(&entry.config)).ok_or_else(|| {
            Error::invalid_argument(format!("image config {:?} not found", entry.config))
        })?;
        let config = Descriptor::new(
            mediatypes::DOCKER_CONFIG,
            config.digest.clone(),
            config.size,
        );
        let layers = resolve_layers(store, &entry.layers, blobs)
            .await
            .map_err(|e| e.context("failed to resolve layers"))?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: mediatypes::DOCKER_MANIFEST.to_string(),
            config: config.clone(),
            layers,
            annotations: BTreeMap::new(),
        };
        let mut desc = write_document(
            store,
            &json::to_vec(&manifest)?,
            mediatypes::DOCKER_MANIFEST,
        )
        .await
        .map_err(|e| e.context("write docker manifest"))?;
        desc.platform = Some(
            config_platform(store, &config)
                .await
                .map_err(|e| e.context("unable to resolve platform"))?,
        );
        if entry.repo_tags.is_empty() {
            index.manifests.push(desc);
            continue;
        }
        for tag in &entry.repo_tags {
            let normalized = reference::normalize(tag)?;
            let mut tagged = desc.clone();
            tagged.annotations = BTreeMap::from([
                (ANNOTATION_IMAGE_NAME.to_string(), normalized.clone()),
                (
                    ANNOTATION_REF_NAME.to_string(),
                    reference::oci_ref_name(&normalized),
                ),
            ]);
            index.manifests.push(tagged);
        }
    }
    write_document(store, &json::to_vec(&index)?, mediatypes::OCI_INDEX).await
}

/// `path.Clean` for a member path named in `manifest.json`.
fn clean(path: &str) -> String {
    member_name(path).unwrap_or_else(|_| path.to_string())
}

async fn config_platform(store: &dyn ContentStore, config: &Descriptor) -> Result<Platform> {
    let bytes = read_document(store, config).await?;
    let image: ImageConfig = parse_json(&bytes, "image config")?;
    Ok(normalize(&Platform {
        os: image.os,
        architecture: image.architecture,
        ..Platform::default()
    }))
}

/// The layer descriptors of a Docker archive entry: a compressed copy the
/// store already has (labelled with this layer as its uncompressed form)
/// is preferred; otherwise the blob as archived, typed by its compression.
async fn resolve_layers(
    store: &dyn ContentStore,
    files: &[String],
    blobs: &HashMap<String, Blob>,
) -> Result<Vec<Descriptor>> {
    let mut layers = Vec::with_capacity(files.len());
    let mut filters = Vec::with_capacity(files.len());
    for file in files {
        let blob = blobs
            .get(&clean(file))
            .ok_or_else(|| Error::invalid_argument(format!("layer {file:?} not found")))?;
        filters.push(format!("labels.\"{UNCOMPRESSED_LABEL}\"=={}", blob.digest));
        layers.push(blob.clone());
    }
    let mut compressed: HashMap<String, Descriptor> = HashMap::new();
    if !filters.is_empty() {
        let found = store
            .list(&filters)
            .await
            .map_err(|e| e.context("failure checking for compressed blobs"))?;
        for info in found {
            if let Some(uncompressed) = info.labels.get(UNCOMPRESSED_LABEL) {
                compressed.insert(
                    uncompressed.clone(),
                    Descriptor::new(
                        mediatypes::DOCKER_LAYER_GZIP,
                        info.digest.clone(),
                        info.size,
                    ),
                );
            }
        }
    }
    Ok(layers
        .into_iter()
        .map(|blob| match compressed.get(blob.digest.as_str()) {
            Some(desc) => desc.clone(),
            None => {
                let media_type = match blob.compression {
                    Compression::None => mediatypes::DOCKER_LAYER,
                    // containerd types every compressed Docker layer as gzip.
                    Compression::Gzip | Compression::Zstd => mediatypes::DOCKER_LAYER_GZIP,
                };
                Descriptor::new(media_type, blob.digest, blob.size)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_cleaned_and_checked() {
        assert_eq!(
            member_name("./blobs//sha256/x/").expect("ok"),
            "blobs/sha256/x"
        );
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", ".", ""] {
            let err = member_name(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert_eq!(
            link_target("b/layer.tar", "../a/layer.tar").expect("ok"),
            "a/layer.tar"
        );
        assert!(link_target("b/layer.tar", "/etc/shadow").is_err());
        assert!(link_target("layer.tar", "../x").is_err());
        assert!(link_target("a/l", "../../x").is_err());
    }

    #[test]
    fn compression_is_detected_from_magic_bytes() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 0x08, 0]),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"usta"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }
}
