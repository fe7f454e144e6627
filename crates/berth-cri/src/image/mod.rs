//! The ImageService (list, status, pull, remove, fs info) over the
//! daemon's image records in `k8s.io`, and the images the runtime side
//! needs: an image's run config for CreateContainer and the sandbox (pause)
//! image, with berth's built-in pause image as the fallback.
//!
//! There is no image index of CRI's own: every call reads the records in
//! `k8s.io` (so images `ctr -n k8s.io` pulls are CRI's images at once)
//! and groups them by image id (`view`); what a record's
//! target says is cached by digest. A name is found as containerd's
//! `localResolve` finds it (`resolve`).

mod auth;
mod fs_info;
mod pull;
mod remove;
mod resolve;
mod sandbox;
mod status;
mod view;

use berth_image::spec::ImageSpec;

/// What the image side remembers between calls.
#[derive(Debug, Default)]
pub struct State {
    /// What image targets say, by digest.
    targets: view::Cache,
    /// When a pull of the sandbox image last failed.
    sandbox_pulls: sandbox::Backoff,
}

/// The label on every image record CRI's pulls make (containerd's
/// `io.cri-containerd.image=managed`).
pub const MANAGED_LABEL: &str = "io.cri-containerd.image";
/// [`MANAGED_LABEL`]'s value.
pub const MANAGED_VALUE: &str = "managed";
/// The label on the records of a pinned image (the sandbox image), which
/// the kubelet's image GC leaves alone. containerd 1.6 pins nothing; this
/// is containerd 1.7's label.
pub const PINNED_LABEL: &str = "io.cri-containerd.pinned";
/// [`PINNED_LABEL`]'s value.
pub const PINNED_VALUE: &str = "pinned";

/// An image as CRI sees it: one config digest, however many names.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// The image id: its config's digest (`sha256:…`).
    pub id: String,
    /// Every image record naming it: tags (`docker.io/library/busybox:1`),
    /// digests (`…@sha256:…`) and the id itself (`sha256:…`), which CRI's
    /// pulls name it by too.
    pub references: Vec<String>,
    /// The chain ID of its layers: the snapshot a container's rootfs is
    /// prepared on; `None` for an image without layers.
    pub chain_id: Option<String>,
    /// The size of its content (manifest, config and layers), in bytes.
    pub size: u64,
    /// Its run config.
    pub config: RunConfig,
    /// Whether it is pinned (the sandbox image): the kubelet's image GC
    /// leaves it alone.
    pub pinned: bool,
    /// Its config as the image has it (ImageStatus' verbose info).
    pub spec: ImageSpec,
}

/// The parts of an image config CRI uses.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// `Env`.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `StopSignal`.
    pub stop_signal: String,
    /// `Volumes`: paths in the image to copy up into volumes.
    pub volumes: Vec<String>,
}
