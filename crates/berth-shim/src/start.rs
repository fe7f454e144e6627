//! `start`: bind the task socket, start the serving shim on it, print the
//! address.
//!
//! The starting process binds the socket itself, so the address is
//! connectable the moment it is printed, and spawns the shim binary again
//! with the same flags but no `start` (containerd's runc shim does the
//! same): the serving shim's command line is the one tools look for in
//! `/proc/PID/cmdline`, and it inherits the listening socket as fd 3. The
//! spawn is a `posix_spawn` (vfork and exec) of `/proc/self/exe`: no copy
//! of this process's memory, one program load. While the new shim loads,
//! this one reads the runtime options from stdin and moves it into the
//! shim cgroup they name, if any. If a shim for this id already serves the
//! address, its address is printed instead (containerd's behaviour when
//! the daemon retries a start).

use std::io::{ErrorKind, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
    let mut child = match spawn_server(args, &listener) {
        Ok(child) => child,
        Err(err) => {
            let _ = std::fs::remove_file(path);
            return Err(format!("starting the serving shim: {err}"));
        }
    };
    drop(listener);
    if let Err(err) = join_shim_cgroup(child.id()) {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    // The child is not waited for: once this process exits it is
    // reparented (to the daemon if it is a subreaper, else to init).
    announce(&address)
}

/// Spawns the serving shim: this binary with `args`' flags and no action,
/// `listener` as its fd 3, standard streams on `/dev/null` (the daemon
/// reads this process's stdout to its end, so the child must not hold it).
/// It starts its own session itself (see `main`).
fn spawn_server(args: &Args, listener: &UnixListener) -> std::io::Result<Child> {
    crate::sys::inherit_as_listener_fd(listener)?;
    let mut cmd = Command::new("/proc/self/exe");
    if let Ok(exe) = std::env::current_exe() {
        cmd.arg0(exe);
    }
    cmd.args(args.serve_flags())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
}

/// Reads the runtime options from stdin (the daemon writes them and
/// closes it) and moves `pid` into the shim cgroup they name.
fn join_shim_cgroup(pid: u32) -> Result<(), String> {
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| format!("reading the runtime options from stdin: {e}"))?;
    match crate::cgroup::shim_cgroup_from_options(&data)? {
        Some(cgroup) => crate::cgroup::join(&cgroup, pid),
        None => Ok(()),
    }
}

/// Writes `address` to the bundle (the working directory) and prints it.
fn announce(address: &str) -> Result<(), String> {
    std::fs::write("address", address).map_err(|e| format!("writing address: {e}"))?;
    print!("{address}");
    Ok(())
}
