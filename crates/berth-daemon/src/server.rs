//! Running the daemon: lock the root, bind the socket, load the plugins,
//! serve until told to stop, then shut down in order.
//!
//! Shutdown (SIGTERM/SIGINT): stop accepting, end event subscriptions so
//! their streams do not hold connections open, let in-flight calls finish
//! (bounded by a grace period), then drop the plugins — which closes the
//! database cleanly — and remove the socket.

use crate::config::Config;
use crate::events::Exchange;
use crate::metrics::{GrpcMetrics, GrpcMetricsLayer, Metrics};
use crate::notify::Notifier;
use crate::plugin::{types, Plugins};
use crate::services::{unbuilt, GrpcService};
use crate::{builtins, metrics, shim_events, socket};
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::RoutesBuilder;

/// How long in-flight calls get to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

/// Runs berthd with `config` until `shutdown` resolves, telling `notifier`
/// (systemd) when it serves and when it stops.
pub async fn run(
    config: Config,
    notifier: Notifier,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    crate::dirs::prepare(&config.root, &config.state)?;
    let _lock = lock_root(&config)?;
    let address = config.grpc.address.clone();
    // Bound first, so a busy address stops start-up before anything is made.
    let metrics_listener = match config.metrics.address.as_str() {
        "" => None,
        metrics_address => Some(metrics::endpoint::bind(metrics_address).await?),
    };
    let listener = socket::bind(&address, config.grpc.uid, config.grpc.gid)?;

    let plugins = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Plugins::init(&builtins::registrations(), &config))
            .await
            .context("plugin init panicked")??
    };
    let mut routes = RoutesBuilder::default();
    let mut served = Vec::new();
    let grpc_services = plugins.all::<GrpcService>(types::GRPC);
    for service in &grpc_services {
        service.register(&mut routes);
        served.push(service.name());
    }
    unbuilt::add_missing(&mut routes, &served);
    let exchanges = plugins.all::<Exchange>(types::EVENT);
    let ttrpc_address = config.ttrpc_address();
    let mut shim_server = match exchanges.first() {
        Some(exchange) => Some(shim_events::serve(&ttrpc_address, (**exchange).clone()).await?),
        None => None,
    };
    let grpc_metrics = GrpcMetrics::new(config.metrics.grpc_histogram);
    let metrics_server = metrics_listener.map(|listener| {
        let metrics = Arc::new(Metrics::new(&grpc_metrics, &plugins));
        tracing::info!(address = %config.metrics.address, path = metrics::endpoint::PATH, "serving metrics");
        AbortOnDrop(tokio::spawn(metrics::endpoint::serve(listener, metrics)))
    });
    let grpc_layer = match metrics_server {
        Some(_) => grpc_metrics.layer(),
        None => GrpcMetricsLayer::default(),
    };
    tracing::info!(address = %address.display(), "berthd serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tonic::transport::Server::builder()
        .trace_fn(|request| {
            let method = request.uri().path();
            tracing::debug!(%method, "call");
            tracing::debug_span!("grpc", %method)
        })
        .layer(grpc_layer)
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = stop_rx.await;
        });
    let mut serving = Box::pin(serving);
    // The listener is bound and listening, so connections made from here on
    // are served as soon as `serving` is first polled below.
    notifier.ready();
    grpc_services.iter().for_each(|service| service.serving());
    tokio::select! {
        result = &mut serving => result.context("serve")?,
        () = shutdown => {
            notifier.stopping();
            tracing::info!("stopping: finishing in-flight calls");
            grpc_services.iter().for_each(|service| service.stopping());
            exchanges.iter().for_each(|e| e.close());
            let _ = stop_tx.send(());
            match tokio::time::timeout(GRACE, serving).await {
                Ok(result) => result.context("serve")?,
                Err(_) => tracing::warn!("calls still running after {GRACE:?}: closing anyway"),
            }
        }
    }
    if let Some(server) = shim_server.as_mut() {
        let _ = server.shutdown().await;
        let _ = std::fs::remove_file(&ttrpc_address);
    }
    for manager in plugins.all::<berth_runtime::TaskManager>(crate::local::tasks::RUNTIME_PLUGIN) {
        manager.settle().await;
    }
    for network in plugins.all::<crate::local::network::Networking>(types::INTERNAL) {
        network.settle().await;
    }
    drop(metrics_server);
    drop(plugins);
    if let Err(err) = std::fs::remove_file(&address) {
        tracing::warn!(error = %err, "remove socket");
    }
    tracing::info!("berthd stopped");
    Ok(())
}

/// Aborts a spawned task when dropped: the metrics endpoint ends with the
/// daemon.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes an exclusive lock on `<root>/berthd.lock` so two daemons never share
/// one root (and one database), whatever sockets they use.
fn lock_root(config: &Config) -> Result<Flock<File>> {
    let path = config.root.join("berthd.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "root {} is in use by another berthd: refusing to start",
            config.root.display()
        )
    })
}

/// Installs the SIGTERM and SIGINT handlers now (call it inside the
/// runtime, before serving: a signal that comes before a handler is
/// installed kills berthd uncleanly) and returns what resolves on the first
/// of them.
pub fn stop_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers: stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    }
}
