//! berth's built-in pause image: a tiny static pause program, built with
//! the crate and imported into the content store as an image of its own,
//! so that pods start where the configured sandbox image cannot be pulled.
//!
//! The program (`pause/pause.c`, compiled by `build.rs` with `-nostdlib
//! -static`) is embedded in the plugin. [`Cri::builtin_pause_image`] builds
//! an OCI image around it — one uncompressed layer holding `/pause`, a
//! config whose entrypoint is `["/pause"]` for the host platform — writes
//! its blobs and an image record named [`BUILTIN_PAUSE_IMAGE`] (labelled
//! pinned, so the kubelet's image GC leaves it alone) through the
//! daemon's content and image services, and unpacks it into the configured
//! snapshotter, all under a lease so garbage collection cannot take a
//! half-written image. Every document is built deterministically, so the
//! image's digests only change when the program does, and an image that
//! is already in place is left as it is.

use crate::image::{Image, RunConfig, MANAGED_LABEL, MANAGED_VALUE, PINNED_LABEL, PINNED_VALUE};
use crate::Cri;
use berth_client::Client;
use berth_core::content::{self, ContentStore};
use berth_core::images::ImageStore;
use berth_core::snapshots::Snapshotter;
use berth_core::{Digest, Error, ErrorKind, Result};
use berth_image::spec::{json as spec_json, parse_json, Descriptor, ImageSpec};
use berth_image::tar::{Header, TarWriter};
use berth_image::unpack::Unpacker;
use berth_image::{mediatypes, platforms, Matcher};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// The name the built-in pause image is imported under.
pub const BUILTIN_PAUSE_IMAGE: &str = "localhost/berth/pause:builtin";

/// The pause program, as `build.rs` compiled it.
const PAUSE_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// How long the import's lease may outlive a crashed import.
const IMPORT_LEASE: Duration = Duration::from_secs(3600);

/// The image's user, as registry.k8s.io's pause images run.
const PAUSE_USER: &str = "65535:65535";

/// The built-in pause image's documents and blobs.
#[derive(Debug, Clone)]
pub(crate) struct PauseImage {
    /// The layer tar (uncompressed: its digest is also its diff ID).
    pub layer: Vec<u8>,
    /// The image config JSON.
    pub config: Vec<u8>,
    /// The manifest JSON.
    pub manifest: Vec<u8>,
    /// The image config, parsed.
    pub spec: ImageSpec,
}

impl PauseImage {
    /// Builds the image around the embedded program.
    pub async fn build() -> Result<PauseImage> {
        let layer = layer_tar(PAUSE_PROGRAM).await?;
        let layer_digest = Digest::sha256_of(&layer);
        let platform = platforms::default_spec();
        let config = serde_json::json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {
                "User": PAUSE_USER,
                "Env": [berth_oci::DEFAULT_PATH_ENV],
                "Entrypoint": ["/pause"],
                "WorkingDir": "/",
            },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest.to_string()] },
        });
        let config = serde_json::to_vec(&config).map_err(|e| Error::internal(e.to_string()))?;
        let manifest = berth_image::spec::Manifest {
            schema_version: 2,
            media_type: mediatypes::OCI_MANIFEST.into(),
            config: Descriptor::new(
                mediatypes::OCI_CONFIG,
                Digest::sha256_of(&config),
                config.len() as i64,
            ),
            layers: vec![Descriptor::new(
                mediatypes::OCI_LAYER,
                layer_digest,
                layer.len() as i64,
            )],
            annotations: Default::default(),
        };
        let manifest = spec_json::to_vec(&manifest)?;
        let spec = parse_json(&config, "image config")?;
        Ok(PauseImage {
            layer,
            config,
            manifest,
            spec,
        })
    }

    /// The manifest's descriptor (the image record's target).
    pub fn target(&self) -> Descriptor {
        Descriptor::new(
            mediatypes::OCI_MANIFEST,
            Digest::sha256_of(&self.manifest),
            self.manifest.len() as i64,
        )
    }

    /// The image id: the config's digest.
    pub fn id(&self) -> Digest {
        Digest::sha256_of(&self.config)
    }

    /// The chain ID of the one layer (its diff ID).
    pub fn chain_id(&self) -> Digest {
        Digest::sha256_of(&self.layer)
    }

    /// The CRI view of the image.
    pub fn image(&self) -> Image {
        Image {
            id: self.id().to_string(),
            references: vec![BUILTIN_PAUSE_IMAGE.to_string()],
            chain_id: Some(self.chain_id().to_string()),
            size: (self.layer.len() + self.config.len() + self.manifest.len()) as u64,
            config: RunConfig {
                env: vec![berth_oci::DEFAULT_PATH_ENV.to_string()],
                entrypoint: vec!["/pause".into()],
                working_dir: "/".into(),
                user: PAUSE_USER.into(),
                ..RunConfig::default()
            },
            pinned: true,
            spec: self.spec.clone(),
        }
    }

    /// The labels of the image record.
    fn labels() -> HashMap<String, String> {
        HashMap::from([
            (PINNED_LABEL.to_string(), PINNED_VALUE.to_string()),
            (MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string()),
        ])
    }
}

/// A tar holding `/pause` (mode 0755) with `program` as its body.
async fn layer_tar(program: &[u8]) -> Result<Vec<u8>> {
    let mut tar = TarWriter::new(Vec::new());
    tar.append(&Header::file("pause", 0o755, program.len() as u64), program)
        .await?;
    tar.finish().await
}

impl Cri {
    /// The built-in pause image, imported (and pinned) if it is not there
    /// yet.
    pub(crate) async fn builtin_pause_image(&self) -> Result<Image> {
        let image = PauseImage::build().await?;
        let snapshotter = self.config.containerd.snapshotter.clone();
        if self.pause_image_in_place(&image, &snapshotter).await? {
            return Ok(image.image());
        }
        let (leased, lease) = self.client.with_new_lease(IMPORT_LEASE).await?;
        let imported = import(&leased, &image, &snapshotter).await;
        let released = self.client.leases().delete(&lease, false).await;
        imported.map_err(|e| e.context("import the built-in pause image"))?;
        released.map_err(|e| e.context(format!("delete lease {lease}")))?;
        Ok(image.image())
    }

    /// Whether the record names this very image and its layer is unpacked.
    async fn pause_image_in_place(&self, image: &PauseImage, snapshotter: &str) -> Result<bool> {
        let record = match self.client.images().get(BUILTIN_PAUSE_IMAGE).await {
            Ok(record) => record,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if record.target.digest != image.target().digest
            || record.labels.get(PINNED_LABEL).map(String::as_str) != Some(PINNED_VALUE)
        {
            return Ok(false);
        }
        let chain = image.chain_id().to_string();
        match self.client.snapshotter(snapshotter).stat(&chain).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Writes the blobs and the record and unpacks, with `client` under a lease.
async fn import(client: &Client, image: &PauseImage, snapshotter: &str) -> Result<()> {
    let store = client.content();
    let config = Digest::sha256_of(&image.config);
    let layer = image.chain_id();
    let manifest_labels = HashMap::from([
        (
            "containerd.io/gc.ref.content.config".to_string(),
            config.to_string(),
        ),
        (
            "containerd.io/gc.ref.content.l.0".to_string(),
            layer.to_string(),
        ),
    ]);
    let target = image.target();
    for (bytes, digest, labels) in [
        (&image.layer, &layer, HashMap::new()),
        (&image.config, &config, HashMap::new()),
        (&image.manifest, &target.digest, manifest_labels),
    ] {
        write(&store, bytes, digest, labels).await?;
    }
    let record = berth_core::images::Image {
        name: BUILTIN_PAUSE_IMAGE.to_string(),
        labels: PauseImage::labels(),
        target: target.to_core(),
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
    };
    let images = client.images();
    match images.create(record.clone()).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            images
                .update(record, &["target".to_string(), "labels".to_string()])
                .await?;
        }
        Err(e) => return Err(e),
    }
    let remote = client.snapshotter(snapshotter);
    let diff = client.diff();
    let unpacker = Unpacker {
        content: &store,
        snapshotter: &remote,
        snapshotter_name: snapshotter,
        applier: &diff,
    };
    unpacker
        .unpack(&target, &Matcher::host())
        .await
        .map(|_| ())
        .map_err(|e| e.context(format!("unpack into snapshotter {snapshotter:?}")))
}

/// Writes one blob (an existing one is fine).
async fn write(
    store: &dyn ContentStore,
    bytes: &[u8],
    digest: &Digest,
    labels: HashMap<String, String>,
) -> Result<()> {
    let reference = format!("berth-cri-pause-{}", digest.encoded());
    content::write_blob(store, &reference, bytes, bytes.len() as i64, digest, labels)
        .await
        .map_err(|e| e.context(format!("write blob {digest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_a_small_static_executable() {
        assert_eq!(&PAUSE_PROGRAM[..4], b"\x7fELF");
        assert!(PAUSE_PROGRAM.len() < 64 * 1024, "{}", PAUSE_PROGRAM.len());
    }

    #[tokio::test]
    async fn the_image_is_deterministic_and_runs_pause() {
        let (a, b) = (
            PauseImage::build().await.expect("test step"),
            PauseImage::build().await.expect("test step"),
        );
        assert_eq!(a.target(), b.target());
        let config: serde_json::Value = serde_json::from_slice(&a.config).expect("test step");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/pause"])
        );
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            serde_json::json!(a.chain_id().to_string())
        );
        assert_eq!(config["os"], "linux");
        let manifest: berth_image::Manifest =
            serde_json::from_slice(&a.manifest).expect("test step");
        assert_eq!(manifest.config.digest, a.id());
        assert_eq!(manifest.layers[0].digest, a.chain_id());
        let image = a.image();
        assert!(image.pinned);
        assert_eq!(image.references, vec![BUILTIN_PAUSE_IMAGE.to_string()]);
        // The layer holds exactly /pause, executable.
        let mut entries = berth_image::tar::TarReader::new(&a.layer[..]);
        let header = entries
            .next_header()
            .await
            .expect("test step")
            .expect("test step");
        assert_eq!(header.name, "pause");
        assert_eq!(header.mode, 0o755);
        assert_eq!(header.size, PAUSE_PROGRAM.len() as u64);
    }
}
