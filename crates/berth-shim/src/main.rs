//! `containerd-shim-berth-v2`: containerd's runtime v2 shim, driving runc.
//!
//! One binary, three roles chosen by the last argument (containerd's
//! `docs/runtime-v2.md`):
//!
//! - `start`: run by the daemon in the bundle directory. Binds the task
//!   socket, forks a detached child that serves `containerd.task.v2.Task`
//!   and `containerd.task.v3.Task` over ttrpc on it, writes the address to
//!   `<bundle>/address`, prints it and exits.
//! - `delete`: run by the daemon after a shim died. Force-deletes the
//!   container with runc, unmounts the rootfs and prints a `DeleteResponse`.
//!
//! The action is decided in this synchronous, single-threaded `main`; only
//! the serving child builds a (current-thread) tokio runtime, after the fork.

mod address;
mod args;
mod delete;
mod error;
mod events;
mod io;
mod monitor;
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
        None => Err("no action given: run with `start` or `delete`".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("containerd-shim-berth-v2: {err}");
            ExitCode::FAILURE
        }
    }
}
