//! OCI image archives built from Debian's static busybox, for import and
//! export tests: a one-layer image (the [`crate::busybox_rootfs`] tree as
//! an uncompressed layer tar), its config, an OCI manifest and an
//! `index.json`, packed as an OCI layout tar as `ctr images export` would
//! write it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use berth_image::mediatypes;
use berth_image::spec::{json, Descriptor, Index, Manifest, Platform};
use berth_image::spec::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use berth_image::tar::{Header, TarWriter};
use berth_image::Digest;

/// A built archive and the digests of what is in it.
#[derive(Debug, Clone)]
pub struct OciArchive {
    /// The archive's bytes.
    pub bytes: Vec<u8>,
    /// The manifest's digest (the image's target).
    pub manifest: Digest,
    /// The manifest's size.
    pub manifest_size: i64,
    /// The config's digest.
    pub config: Digest,
    /// The layer's digest (also its diff ID: it is uncompressed).
    pub layer: Digest,
    /// The digest of `index.json`.
    pub index: Digest,
}

/// What the archive's `index.json` calls the image.
#[derive(Debug, Clone, Default)]
pub struct ArchiveNames {
    /// `org.opencontainers.image.ref.name` (e.g. `latest`).
    pub ref_name: Option<String>,
    /// `io.containerd.image.name` (e.g. `docker.io/library/busybox:latest`).
    pub image_name: Option<String>,
}

/// Builds a busybox OCI archive for linux/amd64 (or the host's
/// architecture) whose index names the image as `names` say.
pub fn busybox_oci_archive(names: &ArchiveNames) -> Result<OciArchive> {
    let dir = tempfile::tempdir().context("temporary rootfs directory")?;
    crate::busybox_rootfs(dir.path())?;
    let layer = crate::block_on(layer_tar(dir.path()))??;
    let layer_digest = Digest::sha256_of(&layer);
    let config = format!(
        concat!(
            r#"{{"architecture":"{arch}","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"#,
            r#""os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
        ),
        arch = host_arch(),
        layer = layer_digest
    )
    .into_bytes();
    let manifest = Manifest {
        schema_version: 2,
        media_type: mediatypes::OCI_MANIFEST.into(),
        config: descriptor(mediatypes::OCI_CONFIG, &config),
        layers: vec![descriptor(mediatypes::OCI_LAYER, &layer)],
        annotations: Default::default(),
    };
    let manifest = json::to_vec(&manifest)?;
    let mut entry = descriptor(mediatypes::OCI_MANIFEST, &manifest);
    entry.platform = Some(Platform {
        architecture: host_arch().into(),
        os: "linux".into(),
        ..Platform::default()
    });
    if let Some(name) = &names.ref_name {
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), name.clone());
    }
    if let Some(name) = &names.image_name {
        entry
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.into(), name.clone());
    }
    let index = json::to_vec(&Index {
        schema_version: 2,
        manifests: vec![entry],
        ..Index::default()
    })?;
    let blobs = [&layer, &config, &manifest];
    let bytes = crate::block_on(layout_tar(&index, &blobs))??;
    Ok(OciArchive {
        bytes,
        manifest: Digest::sha256_of(&manifest),
        manifest_size: manifest.len() as i64,
        config: Digest::sha256_of(&config),
        layer: layer_digest,
        index: Digest::sha256_of(&index),
    })
}

/// The host's architecture as OCI spells it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as i64)
}

/// An OCI layout tar: `oci-layout`, `index.json` and the blobs.
async fn layout_tar(index: &[u8], blobs: &[&Vec<u8>]) -> Result<Vec<u8>> {
    let mut members: Vec<(Header, Vec<u8>)> = vec![
        (Header::dir("blobs/", 0o755), Vec::new()),
        (Header::dir("blobs/sha256/", 0o755), Vec::new()),
    ];
    for blob in blobs {
        let name = format!("blobs/sha256/{}", Digest::sha256_of(blob).encoded());
        members.push((Header::file(name, 0o444, blob.len() as u64), blob.to_vec()));
    }
    members.push((
        Header::file("index.json", 0o644, index.len() as u64),
        index.to_vec(),
    ));
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
    members.push((
        Header::file("oci-layout", 0o444, layout.len() as u64),
        layout,
    ));
    let mut tar = TarWriter::new(Vec::new());
    for (header, body) in &members {
        tar.append(header, body).await?;
    }
    Ok(tar.finish().await?)
}

/// A layer tar of the tree at `root`, entries sorted.
async fn layer_tar(root: &Path) -> Result<Vec<u8>> {
    let mut entries = Vec::new();
    collect(root, root, &mut entries)?;
    entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut tar = TarWriter::new(Vec::new());
    for (header, body) in &entries {
        tar.append(header, body).await?;
    }
    Ok(tar.finish().await?)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(Header, Vec<u8>)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let rel = path
            .strip_prefix(root)
            .context("path under root")?
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?.to_string_lossy().into_owned();
            out.push((Header::symlink(rel, target), Vec::new()));
        } else if meta.is_dir() {
            out.push((Header::dir(format!("{rel}/"), mode), Vec::new()));
            collect(root, &path, out)?;
        } else {
            let body = fs::read(&path)?;
            out.push((Header::file(rel, mode, body.len() as u64), body));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_a_layout_with_three_blobs() {
        let archive = busybox_oci_archive(&ArchiveNames {
            ref_name: Some("latest".into()),
            image_name: None,
        })
        .expect("archive");
        assert!(archive.bytes.len() > 500_000, "busybox is in it");
        let again = busybox_oci_archive(&ArchiveNames {
            ref_name: Some("latest".into()),
            image_name: None,
        })
        .expect("archive");
        assert_eq!(archive.bytes, again.bytes, "deterministic");
    }
}
