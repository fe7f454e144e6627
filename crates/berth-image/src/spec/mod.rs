//! The image documents: OCI descriptors, platforms, indexes, manifests,
//! configs and the image layout, plus Docker's archive `manifest.json`.
//!
//! Field order and `omitempty` follow the Go types containerd 1.6 encodes
//! (`opencontainers/image-spec` v1.1.0-rc2), so [`json::to_vec`] of a value
//! built here has the bytes `json.Marshal` gives. Documents read from
//! content are parsed leniently (unknown fields ignored, missing ones
//! defaulted) but digests are validated as they are parsed.

mod image;
pub mod json;

pub use image::{Empty, History, ImageSpec, RunConfig};

use std::collections::{BTreeMap, HashMap};

use berth_core::{Digest, Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mediatypes;

/// The annotation containerd puts the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's reference-name annotation (a tag, or for containerd exports the
/// tag part of the image name).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The layout version of the `oci-layout` file.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// The name of the OCI layout marker file.
pub const IMAGE_LAYOUT_FILE: &str = "oci-layout";

/// An OCI content descriptor as JSON documents carry it (with the platform
/// that the API's descriptor lacks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The blob's digest.
    #[serde(with = "digest_string")]
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: i64,
    /// Where else the blob may be fetched from.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub urls: Vec<String>,
    /// Annotations, sorted as Go encodes maps.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the manifest this describes, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: i64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// The API's descriptor (media type, digest, size, annotations).
    pub fn to_core(&self) -> berth_core::Descriptor {
        berth_core::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            annotations: self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// From the API's descriptor (which has no platform).
    pub fn from_core(desc: &berth_core::Descriptor) -> Self {
        Descriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            urls: Vec::new(),
            annotations: desc
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            platform: None,
        }
    }
}

/// A platform: OS, architecture and variant (see [`crate::platforms`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub os_features: Vec<String>,
    /// CPU variant, e.g. `v7`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// An OCI image index (or Docker manifest list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: i32,
    /// The media type, if the document names it.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The manifests (Go writes a nil list as `null`).
    #[serde(
        default,
        serialize_with = "null_if_empty",
        deserialize_with = "nullable"
    )]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest (or Docker schema 2 manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: i32,
    /// The media type, if the document names it.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default, deserialize_with = "nullable")]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// The parts of an image config berth reads: platform and root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: String,
    /// The layers' uncompressed digests.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// An image's root filesystem: the diff IDs of its layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

/// The `oci-layout` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayout {
    /// The layout version, `1.0.0`.
    #[serde(rename = "imageLayoutVersion", default)]
    pub version: String,
}

/// One entry of a Docker archive's `manifest.json` (Go writes the field
/// names as they are and nil lists as `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerArchiveEntry {
    /// The config file's path in the archive.
    #[serde(rename = "Config", default)]
    pub config: String,
    /// The image's names, e.g. `busybox:latest`.
    #[serde(
        rename = "RepoTags",
        default,
        serialize_with = "null_if_empty",
        deserialize_with = "nullable"
    )]
    pub repo_tags: Vec<String>,
    /// The layer files' paths, base first.
    #[serde(
        rename = "Layers",
        default,
        serialize_with = "null_if_empty",
        deserialize_with = "nullable"
    )]
    pub layers: Vec<String>,
}

/// What a manifest or index document says it is, for containerd's
/// `validateMediaType` check.
#[derive(Deserialize)]
struct UnknownDocument {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(rename = "fsLayers", default)]
    fs_layers: Option<serde_json::Value>,
}

fn present(value: &Option<serde_json::Value>) -> bool {
    !matches!(value, None | Some(serde_json::Value::Null))
}

/// Checks that `bytes` is the kind of document `media_type` says (a
/// manifest is not an index and the other way round; schema 1 is refused).
fn validate_media_type(bytes: &[u8], media_type: &str) -> Result<()> {
    let doc: UnknownDocument = parse_json(bytes, media_type)?;
    if present(&doc.fs_layers) {
        return Err(Error::invalid_argument(
            "media-type: schema 1 not supported",
        ));
    }
    if mediatypes::is_manifest(media_type)
        && (present(&doc.manifests) || mediatypes::is_index(&doc.media_type))
    {
        return Err(Error::invalid_argument(format!(
            "media-type: expected manifest but found index ({})",
            doc.media_type
        )));
    }
    if mediatypes::is_index(media_type)
        && (present(&doc.config)
            || present(&doc.layers)
            || mediatypes::is_manifest(&doc.media_type))
    {
        return Err(Error::invalid_argument(format!(
            "media-type: expected index but found manifest ({})",
            doc.media_type
        )));
    }
    Ok(())
}

/// Parses a JSON document, naming what it was in the error.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| Error::invalid_argument(format!("invalid {what} document: {err}")))
}

impl Manifest {
    /// Parses a manifest blob whose descriptor says `media_type`.
    pub fn parse(bytes: &[u8], media_type: &str) -> Result<Manifest> {
        validate_media_type(bytes, media_type)?;
        parse_json(bytes, media_type)
    }
}

impl Index {
    /// Parses an index blob whose descriptor says `media_type`.
    pub fn parse(bytes: &[u8], media_type: &str) -> Result<Index> {
        validate_media_type(bytes, media_type)?;
        parse_json(bytes, media_type)
    }
}

/// Annotations as the API's `HashMap`.
pub fn hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A JSON `null` or missing value as the type's default.
fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An empty list as `null`, as Go encodes a nil slice.
fn null_if_empty<S: Serializer, T: Serialize>(
    list: &[T],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    if list.is_empty() {
        serializer.serialize_none()
    } else {
        list.serialize(serializer)
    }
}

/// Digests as validated strings.
mod digest_string {
    use berth_core::Digest;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(digest.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(|err| D::Error::custom(err.message().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
    }

    #[test]
    fn index_encodes_like_go() {
        let mut desc = Descriptor::new(mediatypes::OCI_MANIFEST, digest('a'), 7);
        desc.annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        desc.annotations.insert(
            ANNOTATION_IMAGE_NAME.into(),
            "docker.io/library/x:latest".into(),
        );
        desc.platform = Some(Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Platform::default()
        });
        let index = Index {
            schema_version: 2,
            manifests: vec![desc],
            ..Index::default()
        };
        let text = String::from_utf8(json::to_vec(&index).expect("encode")).expect("utf-8");
        assert_eq!(
            text,
            format!(
                "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":7,\
                 \"annotations\":{{\"io.containerd.image.name\":\"docker.io/library/x:latest\",\
                 \"org.opencontainers.image.ref.name\":\"latest\"}},\
                 \"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}}}}]}}",
                mediatypes::OCI_MANIFEST,
                digest('a')
            )
        );
        let empty = Index {
            schema_version: 2,
            ..Index::default()
        };
        assert_eq!(
            json::to_vec(&empty).expect("encode"),
            br#"{"schemaVersion":2,"manifests":null}"#
        );
    }

    #[test]
    fn parse_checks_document_kind_and_digests() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(Index::parse(index, mediatypes::OCI_INDEX).is_ok());
        assert!(Manifest::parse(index, mediatypes::OCI_MANIFEST).is_err());
        let bad = br#"{"schemaVersion":2,"config":{"digest":"sha256:xyz","size":1},"layers":null}"#;
        let err = Manifest::parse(bad, mediatypes::OCI_MANIFEST).expect_err("bad digest");
        assert!(err.message().contains("invalid digest"), "{err}");
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[{}]}"#;
        assert!(Manifest::parse(schema1, mediatypes::DOCKER_MANIFEST).is_err());
    }

    #[test]
    fn docker_archive_entries_encode_nil_lists_as_null() {
        let entry = DockerArchiveEntry {
            config: "blobs/sha256/x".into(),
            ..DockerArchiveEntry::default()
        };
        assert_eq!(
            json::to_vec(&[entry]).expect("encode"),
            br#"[{"Config":"blobs/sha256/x","RepoTags":null,"Layers":null}]"#
        );
    }
}
