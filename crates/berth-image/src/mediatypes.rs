//! Media types of OCI and Docker schema 2 images, and how containerd
//! classifies them (`core/images/mediatypes.go`): which descriptors are
//! manifests, indexes, configs and layers decides how an image is walked
//! and which GC label links a parent to a child.

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer prefix (Windows base layers).
pub const OCI_LAYER_NON_DISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";

/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign (non-distributable) layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// containerd's checkpoint config (treated as a config).
pub const CONTAINERD_CHECKPOINT_CONFIG: &str =
    "application/vnd.containerd.container.checkpoint.config.v1+proto";

/// The media type without parameters or a `+suffix` after the base.
fn base(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or(media_type).trim()
}

/// A single-platform manifest (OCI or Docker schema 2).
pub fn is_manifest(media_type: &str) -> bool {
    matches!(base(media_type), OCI_MANIFEST | DOCKER_MANIFEST)
}

/// An index or manifest list (OCI or Docker schema 2).
pub fn is_index(media_type: &str) -> bool {
    matches!(base(media_type), OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// An image config containerd knows (`IsKnownConfig`).
pub fn is_config(media_type: &str) -> bool {
    matches!(
        base(media_type),
        OCI_CONFIG | DOCKER_CONFIG | CONTAINERD_CHECKPOINT_CONFIG
    )
}

/// A layer (`IsLayerType`): OCI and Docker layers in any compression,
/// foreign and non-distributable ones included.
pub fn is_layer(media_type: &str) -> bool {
    let mt = base(media_type);
    if mt.starts_with("application/vnd.oci.image.layer.") {
        return true;
    }
    // Docker layers, with any compression suffix.
    let mt = mt.split('+').next().unwrap_or(mt);
    matches!(
        mt,
        DOCKER_LAYER | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN | DOCKER_LAYER_FOREIGN_GZIP
    )
}

/// A layer the image's publisher said must not be redistributed
/// (`IsNonDistributable`).
pub fn is_non_distributable(media_type: &str) -> bool {
    let mt = base(media_type);
    mt.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || mt.starts_with("application/vnd.docker.image.rootfs.foreign.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_manifests_indexes_configs_and_layers() {
        assert!(is_manifest(OCI_MANIFEST) && is_manifest(DOCKER_MANIFEST));
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(is_config(DOCKER_CONFIG) && is_config(OCI_CONFIG));
        for layer in [
            OCI_LAYER,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            DOCKER_LAYER,
            DOCKER_LAYER_GZIP,
        ] {
            assert!(is_layer(layer), "{layer}");
            assert!(!is_non_distributable(layer), "{layer}");
        }
        assert!(is_non_distributable(DOCKER_LAYER_FOREIGN_GZIP));
        assert!(is_non_distributable(OCI_LAYER_NON_DISTRIBUTABLE));
        assert!(!is_layer(OCI_CONFIG) && !is_manifest(OCI_INDEX));
        assert!(is_manifest(
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8"
        ));
    }
}
