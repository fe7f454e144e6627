//! `start`: bind the task socket, re-execute detached to serve it, print the
//! address.
//!
//! The starting process binds the socket itself and hands it to the serving
//! child as fd 3 (as containerd's Go shims do), so the address is connectable
//! the moment it is printed. If a shim for this id already serves the
//! address, its address is printed instead (containerd's behaviour when the
//! daemon retries a start).

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::address::{socket_address, socket_path};
use crate::args::Args;

/// The descriptor the serving child finds its listener on.
pub const LISTEN_FD: i32 = 3;
/// Set in the serving child's environment: the listener is on [`LISTEN_FD`].
pub const LISTEN_ENV: &str = "BERTH_SHIM_LISTEN_FD";

pub fn run(args: &Args) -> Result<(), String> {
    let address = socket_address(&args.address, &args.namespace, &args.id);
    let path = Path::new(socket_path(&address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return announce(&address);
            }
            // A socket left by a dead shim.
            let _ = std::fs::remove_file(path);
            UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?
        }
        Err(e) => return Err(format!("binding {}: {e}", path.display())),
    };
    if let Err(err) = spawn_server(args, &listener) {
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    announce(&address)
}

/// Writes `address` to the bundle (the working directory) and prints it.
fn announce(address: &str) -> Result<(), String> {
    std::fs::write("address", address).map_err(|e| format!("writing address: {e}"))?;
    print!("{address}");
    Ok(())
}

fn spawn_server(args: &Args, listener: &UnixListener) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(args.to_serve_argv())
        .env(LISTEN_ENV, LISTEN_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::sys::pre_exec_setsid_and_fds(&mut cmd, true, vec![(listener.as_raw_fd(), LISTEN_FD)]);
    // The child is never waited for: once this process exits it is
    // reparented (to the daemon if it is a subreaper, else to init).
    cmd.spawn()
        .map_err(|e| format!("starting the serving shim: {e}"))?;
    Ok(())
}
