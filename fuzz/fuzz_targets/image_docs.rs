//! Manifests, indexes and image configs as a registry or archive hands them
//! over: every parser must refuse bad input with an error, never panic.
#![no_main]

use berth_image::mediatypes;
use berth_image::spec::{self, ImageLayout, ImageSpec, Index, Manifest};
use libfuzzer_sys::fuzz_target;

const MEDIA_TYPES: &[&str] = &[
    mediatypes::OCI_MANIFEST,
    mediatypes::OCI_INDEX,
    mediatypes::DOCKER_MANIFEST,
    mediatypes::DOCKER_MANIFEST_LIST,
];

fuzz_target!(|data: &[u8]| {
    for media_type in MEDIA_TYPES {
        if let Ok(manifest) = Manifest::parse(data, media_type) {
            let _ = manifest.config.to_core();
            for layer in &manifest.layers {
                let _ = layer.to_core();
            }
        }
        if let Ok(index) = Index::parse(data, media_type) {
            for m in &index.manifests {
                let _ = m.to_core();
            }
        }
    }
    let _ = spec::parse_json::<ImageSpec>(data, "image config");
    let _ = spec::parse_json::<ImageLayout>(data, "oci-layout");
    let _ = spec::parse_json::<Vec<spec::DockerArchiveEntry>>(data, "manifest.json");
});
