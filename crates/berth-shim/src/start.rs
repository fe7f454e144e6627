//! `start`: bind the task socket, fork a detached child to serve it, print
//! the address.
//!
//! The starting process binds the socket itself, so the address is
//! connectable the moment it is printed, and forks: the child starts a new
//! session, points its standard streams away from the daemon's pipes and goes
//! on to serve (no second `exec` of the shim: this process is still
//! single-threaded, so the fork is safe, and it saves the daemon a program
//! load on every task create). If a shim for this id already serves the
//! address, its address is printed instead (containerd's behaviour when the
//! daemon retries a start).

use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::address::{socket_address, socket_path};
use crate::args::Args;

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
    match crate::sys::fork_detached() {
        Ok(true) => {
            // The serving child: never returns to `main`.
            crate::serve::run(args, listener)
        }
        Ok(false) => {
            drop(listener);
            announce(&address)
        }
        Err(err) => {
            let _ = std::fs::remove_file(path);
            Err(format!("starting the serving shim: {err}"))
        }
    }
}

/// Writes `address` to the bundle (the working directory) and prints it.
fn announce(address: &str) -> Result<(), String> {
    std::fs::write("address", address).map_err(|e| format!("writing address: {e}"))?;
    print!("{address}");
    Ok(())
}
