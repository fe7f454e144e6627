//! `berth info`: what a daemon is and holds, on one page — versions, where
//! it keeps its data, the config file it read, its snapshotter and the
//! space its snapshots take, the runtime and shim containers get by
//! default, the host's cgroup mode, how many namespaces, images,
//! containers and running tasks it has across namespaces, and which
//! plugins did not load and why. `--format json` gives the same as one
//! object.
//!
//! Most of it comes over the API (Version, Introspection, the list calls),
//! so it works against containerd too; berthd adds its root, state, config
//! file and default shim to its plugins' exports. The cgroup mode is read
//! on this host.

mod gather;
mod render;

use crate::output::{json_document, print, Format};

use super::Context;

/// `info` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Everything `berth info` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    /// berth's own version and git revision.
    pub client: Build,
    /// The daemon's.
    pub server: Build,
    /// The daemon's UUID.
    pub uuid: String,
    /// The daemon's pid.
    pub pid: u64,
    /// Persistent data directory, if the daemon says.
    pub root: Option<String>,
    /// State directory, if the daemon says.
    pub state: Option<String>,
    /// The config file it read (`Some("")`: none).
    pub config: Option<String>,
    /// Its metrics endpoint (`Some("")`: off).
    pub metrics: Option<String>,
    /// The snapshotter and what it holds.
    pub snapshotter: Snapshotter,
    /// The runtime containers get by default.
    pub runtime: String,
    /// The shim serving it, if the daemon says.
    pub shim: Option<String>,
    /// `v1`, `hybrid` or `v2`, read on this host.
    pub cgroup: String,
    /// Counts across namespaces.
    pub counts: Counts,
    /// Plugin statuses.
    pub plugins: Plugins,
}

/// A version and revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Build {
    /// The version.
    pub version: String,
    /// The git revision.
    pub revision: String,
}

/// The default snapshotter and its snapshots in every namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshotter {
    /// Its name.
    pub name: String,
    /// Its root directory, if it exports one.
    pub root: Option<String>,
    /// How many snapshots it holds.
    pub snapshots: usize,
    /// The disk space they take, in bytes.
    pub bytes: i64,
}

/// Objects across namespaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Namespaces.
    pub namespaces: usize,
    /// Images.
    pub images: usize,
    /// Containers.
    pub containers: usize,
    /// Tasks, in any state.
    pub tasks: usize,
    /// Tasks whose status is running.
    pub running: usize,
}

/// How the daemon's plugins loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plugins {
    /// Loaded.
    pub ok: usize,
    /// Chose not to load (containerd's "skip plugin").
    pub skipped: usize,
    /// Failed.
    pub failed: usize,
    /// Every plugin that did not load: `type.id`, `skip` or `error`, why.
    pub problems: Vec<(String, &'static str, String)>,
}

/// Runs `berth info`.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let info = gather::gather(&client).await?;
    let text = match args.format {
        Format::Table => render::table(&info),
        Format::Json => json_document(&render::json(&info)),
    };
    print(&text)?;
    Ok(())
}
