//! The OCI runtime spec of a container, as the client builds and stores it.
//!
//! A container record carries its spec as an `Any` whose type URL is
//! containerd's [`SPEC_TYPE_URL`] and whose value is the spec's JSON.
//! [`crate::container::NewContainer`] builds it from `berth-oci`'s default
//! spec, the image's config ([`image_config`]) and the caller's options;
//! [`SpecOpt`] is the escape hatch for anything else, like a Go `oci.SpecOpts`.

use berth_core::content::ContentStore;
use berth_core::{Error, Result};
use berth_image::images::{manifest, read_document};
use berth_image::{Descriptor, Digest, Matcher};
use berth_oci::opts::ImageConfig;
use berth_oci::Spec;
use prost_types::Any;
use serde::Deserialize;

/// containerd's type URL for a runtime spec.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// A change to a spec, applied after everything else
/// ([`crate::container::NewContainer::spec_opt`]).
pub type SpecOpt = Box<dyn FnOnce(&mut Spec) -> Result<()> + Send>;

/// The spec as a container record carries it.
pub fn to_any(spec: &Spec) -> Any {
    Any {
        type_url: SPEC_TYPE_URL.to_string(),
        value: spec.to_json(),
    }
}

/// The spec a container record carries.
pub fn from_any(any: &Any) -> Result<Spec> {
    Spec::from_json(&any.value)
        .map_err(|e| Error::invalid_argument(format!("invalid runtime spec: {e}")))
}

/// What the client needs from an image for a container: the run config and
/// the chain ID of its layers (the snapshot to build the rootfs on).
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The image's env, entrypoint, cmd, working directory and user.
    pub config: ImageConfig,
    /// The chain ID of the layers, the name of the top snapshot once
    /// unpacked; `None` for an image without layers.
    pub chain_id: Option<Digest>,
}

/// An image config as JSON has it (`config` and `rootfs` only).
#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    rootfs: RootFs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: String,
    #[serde(default)]
    user: String,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// The config and chain ID of `image` (a manifest or an index) for the
/// platforms `matcher` takes, read from `store`.
pub async fn image_config(
    store: &dyn ContentStore,
    image: &Descriptor,
    matcher: &Matcher,
) -> Result<ImageInfo> {
    let (_, manifest) = manifest(store, image, matcher).await?;
    let bytes = read_document(store, &manifest.config).await?;
    parse_config(&bytes)
}

fn parse_config(bytes: &[u8]) -> Result<ImageInfo> {
    let file: ConfigFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid_argument(format!("invalid image config: {e}")))?;
    let run = file.config.unwrap_or_default();
    let diff_ids = file
        .rootfs
        .diff_ids
        .unwrap_or_default()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    Ok(ImageInfo {
        config: ImageConfig {
            env: run.env.unwrap_or_default(),
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            working_dir: run.working_dir,
            user: run.user,
        },
        chain_id: berth_image::images::chain_id(&diff_ids),
    })
}

/// Whether resolving `user` needs the rootfs' `/etc/passwd` or
/// `/etc/group` (a name rather than numbers).
pub(crate) fn needs_rootfs(user: &str) -> bool {
    !user.is_empty()
        && !user
            .split(':')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_gives_run_settings_and_chain() {
        let layer = Digest::sha256_of(b"layer");
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["A=1"],"Entrypoint":null,"Cmd":["sh"],"WorkingDir":"/w","User":"1:2"}},"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
        );
        let info = parse_config(json.as_bytes()).expect("config");
        assert_eq!(info.config.env, vec!["A=1"]);
        assert!(info.config.entrypoint.is_empty());
        assert_eq!(info.config.cmd, vec!["sh"]);
        assert_eq!(info.config.working_dir, "/w");
        assert_eq!(info.chain_id, Some(layer));
    }

    #[test]
    fn only_names_need_the_rootfs() {
        assert!(!needs_rootfs(""));
        assert!(!needs_rootfs("0"));
        assert!(!needs_rootfs("1000:100"));
        assert!(needs_rootfs("nobody"));
        assert!(needs_rootfs("0:users"));
        assert!(needs_rootfs("1:"));
    }

    #[test]
    fn spec_round_trips_through_any() {
        let spec = berth_oci::default_spec("default", "c");
        let any = to_any(&spec);
        assert_eq!(any.type_url, SPEC_TYPE_URL);
        assert_eq!(from_any(&any).expect("spec"), spec);
    }
}
