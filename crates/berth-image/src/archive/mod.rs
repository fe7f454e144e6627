//! Image archives: OCI image layouts and Docker `save` archives as tar
//! streams, with the semantics of containerd's `core/images/archive`, its
//! client's `Import` and `ctr images import/export`.
//!
//! **Import** ([`import`]) has two steps. [`import_index`] streams the
//! archive into the content store — every regular file becomes a blob,
//! nothing is written anywhere else — and returns an index: the archive's
//! own `index.json` for an OCI layout, or for a Docker archive a new OCI
//! index over Docker schema 2 manifests built from `manifest.json`. Then
//! [`import`] names images after the index's manifests
//! (`io.containerd.image.name`, else `org.opencontainers.image.ref.name`
//! through a [`RefTranslator`]), labels the content of the selected
//! platforms for garbage collection ([`crate::gc`]) and creates or updates
//! the image records. Run it under a lease, as ctr does, so that nothing is
//! collected before the labels and records exist.
//!
//! **Export** ([`export`]) writes an OCI layout with an `index.json` that
//! names each image, plus Docker's `manifest.json` unless told not to. The
//! tar is deterministic — members sorted by name, fixed modes, zero times —
//! so exporting, importing and exporting again gives the same bytes.
//!
//! **Safety.** An archive is untrusted input. Members with absolute paths
//! or `..` components, hard links, devices and symbolic links that point
//! outside the archive are refused with `InvalidArgument`; a symbolic link
//! inside it only aliases another member (Docker archives use them for
//! shared layers). Blobs named `blobs/<alg>/<hex>` must hash to their name.

mod exporter;
mod import;
mod importer;
mod names;

pub use exporter::{export, image_target, ExportOptions};
pub use import::{import, ImportOptions};
pub use importer::import_index;
pub use names::{digest_ref, RefTranslator};

#[cfg(test)]
mod tests;
