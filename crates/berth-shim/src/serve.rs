//! The serving shim: a child subreaper running the ttrpc Task service on a
//! current-thread runtime until the daemon calls Shutdown.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::shim_async::create_task;
use tokio::sync::Notify;
use ttrpc::asynchronous::transport::Listener;
use ttrpc::asynchronous::Server;

use crate::address::{socket_address, socket_path, OwnSocket};
use crate::args::Args;
use crate::events::{Publisher, Target};
use crate::monitor::Monitor;
use crate::service::{Shim, TaskService};

/// The service name `containerd-shim-protos` registers.
const TASK_V3: &str = "containerd.task.v3.Task";
/// The name containerd 1.6 calls; same methods and messages.
const TASK_V2: &str = "containerd.task.v2.Task";
/// How long an exiting shim waits for its queued events to be delivered.
const FLUSH_ON_EXIT: Duration = Duration::from_secs(3);

/// Serves on `listener` until Shutdown; exits the process.
pub fn run(args: &Args, listener: std::os::unix::net::UnixListener) -> Result<(), String> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    redirect_stderr_to_log();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building the runtime: {e}"))?;
    // The path `start` bound: its group's, which need not be this id's.
    let bound = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(std::path::Path::to_path_buf));
    let socket = match bound {
        Some(path) => OwnSocket::new(&path),
        None => {
            let address = socket_address(&args.address, &args.namespace, &args.id);
            OwnSocket::new(std::path::Path::new(socket_path(&address)))
        }
    };
    let result = rt.block_on(serve(args, listener, socket.clone()));
    socket.remove();
    if let Err(err) = result {
        crate::log::line(format_args!("{err}"));
        std::process::exit(1);
    }
    // Not dropping the runtime: its connection tasks may be blocked on the
    // daemon, and there is nothing left to clean up.
    std::process::exit(0)
}

/// containerd 1.6 reads a shim's log from the `log` FIFO in the bundle.
fn redirect_stderr_to_log() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let log = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("log");
    if let Ok(file) = log {
        let _ = nix::unistd::dup2_stderr(&file);
        let _ = file.as_raw_fd();
    }
}

async fn serve(
    args: &Args,
    listener: std::os::unix::net::UnixListener,
    socket: OwnSocket,
) -> Result<(), String> {
    let (monitor, mut exits) = Monitor::new();
    tokio::spawn(monitor.clone().run());
    let target = Target {
        namespace: args.namespace.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS")
            .unwrap_or_else(|_| format!("{}.ttrpc", args.address)),
        address: args.address.clone(),
        publish_binary: args.publish_binary.clone(),
    };
    let events = Publisher::start(target, monitor.clone());
    let shutdown = Arc::new(Notify::new());
    let shim = Arc::new(Shim::new(
        args.namespace.clone(),
        monitor,
        events.clone(),
        shutdown.clone(),
        socket,
    ));
    let reaped = shim.clone();
    tokio::spawn(async move {
        while let Some(exit) = exits.recv().await {
            reaped.handle_exit(exit);
        }
    });
    let task = Arc::new(TaskService(shim));
    let mut services = create_task(task.clone());
    if let Some(v3) = create_task(task).remove(TASK_V3) {
        services.insert(TASK_V2.to_string(), v3);
    }
    let listener = Listener::try_from(listener).map_err(|e| e.to_string())?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(services);
    server.start().await.map_err(|e| e.to_string())?;
    shutdown.notified().await;
    // The last events (`/tasks/delete`) go out before the shim exits; an
    // event the daemon keeps refusing is retried for up to 15 s, which must
    // not hold the exit that long (containerd's shim drops its retries too).
    let _ = tokio::time::timeout(FLUSH_ON_EXIT, events.flush()).await;
    // Let the Shutdown reply leave; then exit without waiting for the
    // daemon to hang up (as containerd's shims do).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = server.stop_listen().await;
    Ok(())
}
