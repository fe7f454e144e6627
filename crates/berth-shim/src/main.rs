//! `containerd-shim-berth-v2`: containerd's runtime v2 shim, driving runc.
//!
//! One binary, three roles chosen by the last argument (containerd's
//! `docs/runtime-v2.md`):
//!
//! - `start`: run by the daemon in the bundle directory. Binds the task
//!   socket, starts this binary again without `start` to serve it, moves
//!   that process into the shim cgroup of the runtime options, writes the
//!   address to `<bundle>/address`, prints it and exits.
//! - none: the long-lived shim. Takes the socket `start` passed as fd 3,
//!   starts a session of its own and serves `containerd.task.v2.Task` and
//!   `containerd.task.v3.Task` over ttrpc on it until Shutdown.
//! - `delete`: run by the daemon after a shim died. Force-deletes the
//!   container with runc, unmounts the rootfs and prints a `DeleteResponse`.
//!
//! The action is decided in this synchronous, single-threaded `main`; only
//! the serving shim builds a (current-thread) tokio runtime.

mod address;
mod args;
mod cgroup;
mod delete;
mod error;
mod events;
mod io;
mod log;
mod monitor;
mod nsexec;
mod oom;
mod process;
mod rootfs;
mod runc;
mod serve;
mod service;
mod start;
mod stats;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("containerd-shim-berth-v2: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match args.action.as_deref() {
        Some("start") => start::run(&args),
        Some("delete") => delete::run(&args),
        Some(other) => Err(format!("unknown action {other:?}")),
        None => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("containerd-shim-berth-v2: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The serving shim: started by `start` with the listening socket on fd 3.
fn serve(args: &args::Args) -> Result<(), String> {
    let listener = sys::take_listener_fd()
        .map_err(|e| format!("no action given (run with `start` or `delete`), and {e}"))?;
    // A session of its own: away from the daemon's process group and any
    // terminal (spawned by `start`, it is no group leader, so this works).
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    serve::run(args, listener)
}
