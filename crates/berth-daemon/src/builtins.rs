//! The one list of what berthd contains, and how each plugin is built from
//! the plugins it requires. Implementations do not know the registry exists.

use crate::events::Exchange;
use crate::gc::{Cleanup, GcScheduler};
use crate::local::content::{delete_publisher, ContentService};
use crate::local::diff::DiffService;
use crate::local::network::Networking;
use crate::local::snapshots::{Snapshots, SnapshotterPlugin};
use crate::local::streaming::StreamManager;
use crate::local::tasks::{Tasks, RUNTIME_PLUGIN};
use crate::local::transfer::TransferService;
use crate::local::{
    containers::Containers, images::Images, leases::Leases, namespaces::Namespaces,
};
use crate::plugin::{types, InitContext, Instance, Registration};
use crate::services::{self, GrpcService};
use anyhow::{Context, Result};
use berth_runtime::manager::DaemonAddresses;
use berth_runtime::{Publisher, Resolver, TaskManager};
use berth_store::content::Content;
use berth_store::MetadataStore;
use std::sync::Arc;

/// Wraps a tonic server as a gRPC plugin instance, with the configured
/// message size limits.
macro_rules! grpc_service {
    ($ctx:expr, $server:expr) => {{
        let grpc = &$ctx.config.grpc;
        let server = $server
            .max_decoding_message_size(grpc.max_recv_message_size)
            .max_encoding_message_size(grpc.max_send_message_size);
        let name = services::unbuilt::service_name(&server);
        let instance: Instance = Arc::new(GrpcService::new(name, move |routes| {
            routes.add_service(server.clone());
        }));
        Ok(instance)
    }};
}

/// Every plugin berthd registers, in registration order.
pub fn registrations() -> Vec<Registration> {
    vec![
        Registration {
            plugin_type: types::INTERNAL,
            id: "opt",
            requires: &[],
            init: init_opt,
        },
        Registration {
            plugin_type: types::EVENT,
            id: "exchange",
            requires: &[],
            init: init_exchange,
        },
        Registration {
            plugin_type: types::METADATA,
            id: "redb",
            requires: &[],
            init: init_metadata,
        },
        Registration {
            plugin_type: types::CONTENT,
            id: "content",
            requires: &[types::METADATA, types::EVENT],
            init: init_content,
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "content-service",
            requires: &[types::CONTENT],
            init: |ctx| {
                let content = ctx.get::<Content>(types::CONTENT)?;
                Ok(Arc::new(ContentService::new((*content).clone())))
            },
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "namespaces-service",
            requires: &[types::METADATA, types::EVENT],
            init: init_namespaces_service,
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "containers-service",
            requires: &[types::METADATA, types::EVENT],
            init: init_containers_service,
        },
        Registration {
            plugin_type: types::GC,
            id: "scheduler",
            requires: &[types::METADATA, types::EVENT, types::CONTENT],
            init: init_gc_scheduler,
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "leases-service",
            requires: &[types::METADATA, types::GC],
            init: |ctx| {
                let store = ctx.get::<MetadataStore>(types::METADATA)?;
                let gc = ctx.get::<GcScheduler>(types::GC)?;
                Ok(Arc::new(Leases::new((*store).clone(), gc)))
            },
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "images-service",
            requires: &[types::METADATA, types::EVENT, types::GC],
            init: |ctx| {
                let (store, events) = metadata_and_events(ctx)?;
                let gc = ctx.get::<GcScheduler>(types::GC)?;
                Ok(Arc::new(Images::new(store, events, gc)))
            },
        },
        Registration {
            plugin_type: RUNTIME_PLUGIN,
            id: "task",
            requires: &[types::EVENT],
            init: init_task_manager,
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "tasks-service",
            requires: &[types::METADATA, RUNTIME_PLUGIN, types::INTERNAL],
            init: |ctx| {
                let store = ctx.get::<MetadataStore>(types::METADATA)?;
                let manager = ctx.get::<TaskManager>(RUNTIME_PLUGIN)?;
                let network = ctx.get::<Networking>(types::INTERNAL)?;
                Ok(Arc::new(Tasks::new((*store).clone(), manager, network)))
            },
        },
        Registration {
            plugin_type: types::INTERNAL,
            id: "cni",
            requires: &[types::METADATA, RUNTIME_PLUGIN],
            init: init_networking,
        },
        Registration {
            plugin_type: types::GRPC,
            id: "tasks",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::tasks::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::SNAPSHOTTER,
            id: "overlayfs",
            requires: &[],
            init: |ctx| {
                let root_path = ctx.config.plugins.overlayfs.root_path.clone();
                init_snapshotter(ctx, "overlayfs", root_path, |root| {
                    Ok(Arc::new(berth_snapshot::overlay::open(root)?))
                })
            },
        },
        Registration {
            plugin_type: types::SNAPSHOTTER,
            id: "native",
            requires: &[],
            init: |ctx| {
                let root_path = ctx.config.plugins.native.root_path.clone();
                init_snapshotter(ctx, "native", root_path, |root| {
                    Ok(Arc::new(berth_snapshot::native::open(root)?))
                })
            },
        },
        Registration {
            plugin_type: types::SERVICE,
            id: "snapshots-service",
            requires: &[types::SNAPSHOTTER, types::METADATA, types::EVENT, types::GC],
            init: init_snapshots_service,
        },
        Registration {
            plugin_type: types::GRPC,
            id: "snapshots",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::snapshots::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "version",
            requires: &[],
            init: |ctx| grpc_service!(ctx, services::version::server()),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "healthcheck",
            requires: &[],
            init: |ctx| grpc_service!(ctx, services::health::server()),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "namespaces",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::namespaces::server(service(ctx)?)),
        },
        Registration {
            plugin_type: DIFF,
            id: "walking",
            requires: &[types::SERVICE],
            init: init_walking_differ,
        },
        Registration {
            plugin_type: types::GRPC,
            id: "diff",
            requires: &[DIFF],
            init: |ctx| {
                let differ = ctx.get::<DiffService>(DIFF)?;
                grpc_service!(ctx, services::diff::server(differ))
            },
        },
        Registration {
            plugin_type: types::GRPC,
            id: "content",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::content::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "containers",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::containers::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "images",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::images::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "leases",
            requires: &[types::SERVICE],
            init: |ctx| grpc_service!(ctx, services::leases::server(service(ctx)?)),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "events",
            requires: &[types::EVENT],
            init: |ctx| {
                let exchange = (*ctx.get::<Exchange>(types::EVENT)?).clone();
                grpc_service!(ctx, services::events::server(exchange))
            },
        },
        Registration {
            plugin_type: STREAMING,
            id: "manager",
            requires: &[],
            init: |_| Ok(Arc::new(StreamManager::default())),
        },
        Registration {
            plugin_type: types::GRPC,
            id: "streaming",
            requires: &[STREAMING],
            init: |ctx| {
                let manager = ctx.get::<StreamManager>(STREAMING)?;
                grpc_service!(ctx, services::streaming::server(manager))
            },
        },
        Registration {
            plugin_type: TRANSFER,
            id: "local",
            requires: &[types::SERVICE, DIFF, STREAMING],
            init: init_transfer,
        },
        Registration {
            plugin_type: types::GRPC,
            id: "transfer",
            requires: &[TRANSFER],
            init: |ctx| {
                let transfer = ctx.get::<TransferService>(TRANSFER)?;
                grpc_service!(ctx, services::transfer::server(transfer))
            },
        },
        Registration {
            plugin_type: types::GRPC,
            id: "introspection",
            requires: &["*"],
            init: init_introspection,
        },
        Registration {
            plugin_type: types::GRPC,
            id: berth_cri::PLUGIN_ID,
            requires: &[types::SERVICE, types::INTERNAL],
            init: init_cri,
        },
    ]
}

/// The loaded service.v1 plugin of type `T`.
fn service<T: Send + Sync + 'static>(ctx: &InitContext<'_>) -> Result<Arc<T>> {
    ctx.all::<T>(types::SERVICE)
        .into_iter()
        .next()
        .with_context(|| format!("no {} is loaded", std::any::type_name::<T>()))
}
/// containerd's opt plugin: `<path>/bin` goes first in `PATH` and
/// `<path>/lib` in `LD_LIBRARY_PATH`, so shims and runtimes installed there
/// are found. It loads first, before anything looks up a binary.
fn init_opt(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let path = ctx.config.plugins.opt.path.clone();
    for (dir, var) in [("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")] {
        let dir = path.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut paths = vec![dir];
        paths.extend(std::env::var_os(var).iter().flat_map(std::env::split_paths));
        let joined = std::env::join_paths(paths).with_context(|| format!("set {var}"))?;
        std::env::set_var(var, joined);
    }
    ctx.exports
        .insert("path".into(), path.display().to_string());
    Ok(Arc::new(path))
}

fn init_exchange(_: &mut InitContext<'_>) -> Result<Instance> {
    Ok(Arc::new(Exchange::default()))
}

fn init_metadata(ctx: &mut InitContext<'_>) -> Result<Instance> {
    // containerd keeps its bolt file in the metadata plugin's root; berth keeps
    // the one database at `<root>/metadata.redb`, as DESIGN.md lays out.
    std::fs::create_dir_all(&ctx.config.root)
        .with_context(|| format!("create root {}", ctx.config.root.display()))?;
    let path = ctx.config.root.join("metadata.redb");
    let store = MetadataStore::open(&path).with_context(|| format!("open {}", path.display()))?;
    // Containers' specs (and the secrets in their environment) are root's.
    std::fs::set_permissions(
        &path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .with_context(|| format!("chmod {}", path.display()))?;
    ctx.exports
        .insert("path".into(), path.display().to_string());
    Ok(Arc::new(store))
}

fn metadata_and_events(ctx: &InitContext<'_>) -> Result<(MetadataStore, Exchange)> {
    let store = ctx.get::<MetadataStore>(types::METADATA)?;
    let events = ctx.get::<Exchange>(types::EVENT)?;
    Ok(((*store).clone(), (*events).clone()))
}

/// The introspection service. Its exports tell clients (`berth info`)
/// where the daemon keeps its data and which config file it read.
fn init_introspection(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let uuid = services::introspection::load_or_create_uuid(&ctx.root)
        .with_context(|| format!("server uuid in {}", ctx.root.display()))?;
    let config = ctx.config;
    let file = config.file.as_deref().map(|f| f.display().to_string());
    ctx.exports.extend([
        ("root".to_string(), config.root.display().to_string()),
        ("state".to_string(), config.state.display().to_string()),
        ("config".to_string(), file.unwrap_or_default()),
        (
            "metrics_address".to_string(),
            config.metrics.address.clone(),
        ),
    ]);
    let plugins = ctx.plugins.clone();
    grpc_service!(ctx, services::introspection::server(plugins, uuid))
}

/// containerd's GC scheduler with the settings of
/// `[plugins."io.containerd.gc.v1.scheduler"]`, removing blob files through
/// the content store.
fn init_gc_scheduler(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let (store, events) = metadata_and_events(ctx)?;
    let content = ctx.get::<Content>(types::CONTENT)?;
    let scheduler = GcScheduler::start(store, events, ctx.config.plugins.gc.clone())?;
    scheduler.set_cleanup(Cleanup {
        content: Some((*content).clone()),
        snapshots: None,
    });
    ctx.exports.extend(scheduler.exports());
    Ok(scheduler)
}

/// containerd's differ plugin type.
const DIFF: &str = "io.containerd.diff.v1";

/// The walking differ over the content service, mounting under its own
/// `tmpmounts` directory.
fn init_walking_differ(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let content = service::<ContentService>(ctx)?;
    let scratch = ctx.root.join("tmpmounts");
    Ok(Arc::new(DiffService::new(content, scratch)))
}

/// containerd's stream manager plugin type.
const STREAMING: &str = "io.containerd.streaming.v1";
/// containerd's transfer plugin type.
const TRANSFER: &str = "io.containerd.transfer.v1";

/// The local transfer service over the content, images, snapshots,
/// leases and diff services and the stream manager.
/// Leases left by transfers of an earlier berthd are released first.
fn init_transfer(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let transfer = TransferService::new(
        service::<ContentService>(ctx)?,
        service::<Images>(ctx)?,
        service::<Snapshots>(ctx)?,
        ctx.get::<DiffService>(DIFF)?,
        service::<Leases>(ctx)?,
        ctx.get::<StreamManager>(STREAMING)?,
        ctx.root.join("tmpmounts"),
    );
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.block_on(transfer.release_dead_leases()) {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "leases of interrupted transfers released"),
            Err(err) => tracing::warn!(error = %err, "releasing leases of interrupted transfers"),
        },
        Err(_) => tracing::warn!("no async runtime: leases of interrupted transfers kept"),
    }
    Ok(Arc::new(transfer))
}

/// The content store in `<root>/content`, publishing `/content/delete`.
fn init_content(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let (store, events) = metadata_and_events(ctx)?;
    let root = ctx.config.root.join("content");
    let content =
        Content::open(&root, store).with_context(|| format!("open {}", root.display()))?;
    content.set_delete_hook(delete_publisher(events));
    ctx.exports
        .insert("root".into(), root.display().to_string());
    Ok(Arc::new(content))
}

fn init_namespaces_service(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let (store, events) = metadata_and_events(ctx)?;
    Ok(Arc::new(Namespaces::new(store, events)))
}

fn init_containers_service(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let (store, events) = metadata_and_events(ctx)?;
    Ok(Arc::new(Containers::new(store, events)))
}

/// The runtime v2 task manager, with bundles in `<state>/io.containerd.runtime.v2.task`.
/// It adopts the shims a previous daemon left running before anything is served.
fn init_task_manager(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let events = (*ctx.get::<Exchange>(types::EVENT)?).clone();
    let config = ctx.config;
    let dir = config.state.join(berth_runtime::TASK_DIR);
    // 0711 as containerd: a remapped container root must traverse it.
    crate::dirs::create_with_mode(&dir, 0o711)
        .with_context(|| format!("create {}", dir.display()))?;
    let exe = std::env::current_exe().context("locate berthd")?;
    if config.plugins.task.runc_exec {
        // Read by berth's shim (`crates/berth-shim/src/nsexec`); every shim
        // inherits it. Set at plugin load, as the opt plugin sets PATH.
        std::env::set_var("BERTH_SHIM_EXEC", "runc");
    }
    let address = std::path::absolute(&config.grpc.address).context("socket path")?;
    let resolver = Resolver {
        overrides: config.plugins.task.shims.clone().into_iter().collect(),
        berth_dir: exe.parent().map(Into::into),
    };
    let daemon = DaemonAddresses {
        ttrpc_address: std::path::absolute(config.ttrpc_address()).context("ttrpc socket path")?,
        address,
        publish_binary: exe,
    };
    let publisher: Publisher = Arc::new(move |ns, topic, event| {
        if let Err(err) = events.publish(ns, topic, event) {
            tracing::warn!(%topic, error = %err, "publish task event");
        }
    });
    // The runtime clients ask for by default (ctr's, the Go client's) and
    // the shim that serves it here.
    let shim = resolver.resolve(berth_runtime::binary::RUNC_V2);
    ctx.exports.extend([
        (
            "default_runtime".to_string(),
            berth_runtime::binary::RUNC_V2.to_string(),
        ),
        (
            "default_shim".to_string(),
            shim.map(|p| p.display().to_string())
                .unwrap_or_else(|e| e.to_string()),
        ),
    ]);
    let manager = TaskManager::new(dir.clone(), resolver, daemon, publisher);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let adopted = handle.block_on(manager.recover());
            tracing::info!(adopted, "task recovery done");
        }
        Err(_) => tracing::warn!("no async runtime: tasks from an earlier run not recovered"),
    }
    ctx.exports
        .insert("state".into(), dir.display().to_string());
    Ok(manager)
}

/// CNI networking (`io.containerd.internal.v1.cni`); the result cache and
/// the network namespaces live under the state directory, so they end with
/// the machine's namespaces at reboot and survive a daemon restart. Networks
/// a previous daemon left for containers without a task are torn down here,
/// before anything is served.
fn init_networking(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let store = (*ctx.get::<MetadataStore>(types::METADATA)?).clone();
    let manager = ctx.get::<TaskManager>(RUNTIME_PLUGIN)?;
    let config = &ctx.config.plugins.cni;
    let state = ctx.config.state.join("cni");
    let default = &config.default_network;
    let options = berth_cni::CniOptions {
        bin_dirs: config.bin_dirs.clone(),
        conf_dir: config.conf_dir.clone(),
        cache_dir: config.cache_dir.clone().unwrap_or_else(|| state.clone()),
        netns_dir: ctx.config.state.join("netns"),
        timeout: std::time::Duration::from_secs(config.timeout_secs.max(1)),
        default_network: berth_cni::config::DefaultNetwork {
            name: default.name.clone(),
            bridge: default.bridge.clone(),
            subnet: default.subnet.clone(),
            subnet6: default.subnet6.clone(),
            ipam_data_dir: Some(
                default
                    .ipam_data_dir
                    .clone()
                    .unwrap_or_else(|| state.join("networks")),
            ),
        },
    };
    let network = Arc::new(Networking::new(
        berth_cni::Cni::new(options),
        state.join("files"),
        store,
    ));
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.block_on(network.cleanup_orphans(|ns, id| manager.get(ns, id).is_ok()));
        }
        Err(_) => tracing::warn!("no async runtime: orphaned networks not cleaned up"),
    }
    Ok(network)
}

/// A snapshotter plugin rooted at its configured `root_path`, by default
/// `<root>/snapshots/<name>`.
fn init_snapshotter(
    ctx: &mut InitContext<'_>,
    name: &str,
    root_path: Option<std::path::PathBuf>,
    open: fn(&std::path::Path) -> berth_core::Result<Arc<dyn berth_core::snapshots::Snapshotter>>,
) -> Result<Instance> {
    let root = root_path.unwrap_or_else(|| ctx.config.root.join("snapshots").join(name));
    // 0700 as containerd: layers and containers' upper directories are root's.
    crate::dirs::create_with_mode(&root, 0o700)
        .with_context(|| format!("create {}", root.display()))?;
    let backend = open(&root).with_context(|| format!("open {}", root.display()))?;
    ctx.exports
        .insert("root".into(), root.display().to_string());
    Ok(Arc::new(SnapshotterPlugin {
        name: name.to_owned(),
        backend,
    }))
}

/// The namespaced snapshots service over every loaded snapshotter; its
/// prune removes what garbage collection took from the metadata.
fn init_snapshots_service(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let (store, events) = metadata_and_events(ctx)?;
    let plugins = ctx.all::<SnapshotterPlugin>(types::SNAPSHOTTER);
    let service = Snapshots::new(store, events, &plugins);
    ctx.get::<GcScheduler>(types::GC)?
        .set_snapshot_remover(service.remover());
    // Before anything is served: no client may see (or be racing) them.
    service
        .remove_interrupted_unpacks()
        .context("removing interrupted unpacks")?;
    service.reconcile_all_in_background();
    Ok(Arc::new(service))
}

/// The CRI plugin: a client of the daemon's own socket, so it starts its
/// recovery only once the daemon serves.
fn init_cri(ctx: &mut InitContext<'_>) -> Result<Instance> {
    let config = ctx.config;
    let cri = berth_cri::Cri::new(berth_cri::CriOptions {
        config: config.plugins.cri.clone(),
        address: config.grpc.address.clone(),
        root: config
            .root
            .join(format!("{}.{}", types::GRPC, berth_cri::PLUGIN_ID)),
        state: config
            .state
            .join(format!("{}.{}", types::GRPC, berth_cri::PLUGIN_ID)),
        netns_dir: config.state.join("netns"),
        cni_cache_dir: config
            .plugins
            .cni
            .cache_dir
            .clone()
            .unwrap_or_else(|| config.state.join("cni")),
    })
    .context("CRI plugin")?;
    let (runtime, image) = cri.services();
    let grpc = &config.grpc;
    let runtime = runtime
        .max_decoding_message_size(grpc.max_recv_message_size)
        .max_encoding_message_size(grpc.max_send_message_size);
    let image = image
        .max_decoding_message_size(grpc.max_recv_message_size)
        .max_encoding_message_size(grpc.max_send_message_size);
    let service = GrpcService::new("runtime.v1.RuntimeService", move |routes| {
        routes.add_service(runtime.clone());
        routes.add_service(image.clone());
    })
    .on_stopping({
        let cri = cri.clone();
        move || cri.stop()
    })
    .on_serving(move || {
        let cri = cri.clone();
        tokio::spawn(async move {
            if let Err(err) = cri.start().await {
                tracing::error!(error = %err, "CRI plugin: recovery failed");
            }
        });
    });
    Ok(Arc::new(service))
}
