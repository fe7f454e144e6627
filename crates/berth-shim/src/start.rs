//! `start`: bind the task socket, start the serving shim on it, print the
//! address.
//!
//! Containers can share one serving shim: a container whose spec carries
//! the annotation `io.containerd.runc.v2.group`, or else the CRI's
//! `io.kubernetes.cri.sandbox-id`, gets the socket of that group instead
//! of its own id's, as containerd's runc shim does; so every container of a
//! pod is served by the pod's shim. The first of a group starts the shim;
//! the others find it listening and print its address.
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
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::address::{socket_address, socket_path};
use crate::args::Args;

/// Spec annotations naming a container's shim group, in order of
/// precedence (containerd's runc shim's `groupLabels`).
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

pub fn run(args: &Args) -> Result<(), String> {
    let group = group(Path::new("config.json")).unwrap_or_else(|| args.id.clone());
    let address = socket_address(&args.address, &args.namespace, &group);
    let path = Path::new(socket_path(&address));
    if let Some(dir) = path.parent() {
        // Root's alone, as containerd's shims make theirs.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
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
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
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

/// The shim group the bundle's spec names, if any (see the module docs).
/// An unreadable spec names none: the create that follows reports it.
fn group(spec: &Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(spec).ok()?).ok()?;
    let annotations = spec.get("annotations")?;
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|key| annotations.get(*key)?.as_str())
        .filter(|group| !group.is_empty())
        .map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn group_of(spec: &str) -> Option<String> {
        let dir = std::env::temp_dir().join(format!("berth-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{:x}.json", spec.len()));
        std::fs::write(&path, spec).expect("write spec");
        let group = group(&path);
        let _ = std::fs::remove_file(&path);
        group
    }

    #[test]
    fn group_comes_from_the_spec_annotations() {
        assert_eq!(group_of(r#"{"ociVersion":"1.0.2"}"#), None);
        assert_eq!(group_of("not json"), None);
        assert_eq!(
            group_of(r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#),
            Some("pod1".into())
        );
        assert_eq!(
            group_of(
                r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1","io.containerd.runc.v2.group":"g"}}"#
            ),
            Some("g".into())
        );
        assert_eq!(
            group_of(r#"{"annotations":{"io.containerd.runc.v2.group":""}}"#),
            None
        );
    }
}
