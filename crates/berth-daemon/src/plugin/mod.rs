//! The plugin registry, modelled on containerd's.
//!
//! Every part of the daemon is a plugin: a [`Registration`] with a type
//! (containerd's strings, so `ctr plugins ls` reads the same), an id, the
//! plugin types it requires and an init function. [`Plugins::init`] walks
//! the registrations in dependency order ([`graph`]); a plugin whose init fails
//! is recorded with its error, and the plugins that require its type are
//! skipped, not the whole daemon — unless the config lists it as required.
//! [`builtins`](crate::builtins) is the one list of what berthd contains.

pub mod graph;
mod registry;

pub use registry::{InitContext, Instance, PluginInfo, Plugins, PluginsHandle};

/// containerd's plugin type strings.
pub mod types {
    /// gRPC services.
    pub const GRPC: &str = "io.containerd.grpc.v1";
    /// The metadata database.
    pub const METADATA: &str = "io.containerd.metadata.v1";
    /// The event exchange.
    pub const EVENT: &str = "io.containerd.event.v1";
    /// Local services the gRPC services wrap.
    pub const SERVICE: &str = "io.containerd.service.v1";
    /// Internal daemon parts.
    pub const INTERNAL: &str = "io.containerd.internal.v1";
    /// The content store.
    pub const CONTENT: &str = "io.containerd.content.v1";
    /// Snapshotters.
    pub const SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";
    /// The garbage collection scheduler.
    pub const GC: &str = "io.containerd.gc.v1";
}

/// The message containerd uses for a plugin that chose not to load; `ctr
/// plugins ls` shows such plugins as `skip`.
pub const SKIP_PLUGIN: &str = "skip plugin";

/// Builds a plugin instance; may read other plugins through the context.
pub type InitFn = fn(&mut InitContext<'_>) -> anyhow::Result<Instance>;

/// A plugin as registered: what it is and how to start it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// containerd's type string, e.g. `io.containerd.grpc.v1`.
    pub plugin_type: &'static str,
    /// The id, unique within the type.
    pub id: &'static str,
    /// The plugin types that must initialise first (`*` for all).
    pub requires: &'static [&'static str],
    /// Builds the instance.
    pub init: InitFn,
}

impl Registration {
    /// `type.id`, the plugin's full name.
    pub fn uri(&self) -> String {
        format!("{}.{}", self.plugin_type, self.id)
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("type", &self.plugin_type)
            .field("id", &self.id)
            .field("requires", &self.requires)
            .finish()
    }
}
