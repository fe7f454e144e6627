//! `/tasks/oom` on cgroup v1: an eventfd registered on the container's
//! `memory.oom_control` through `cgroup.event_control` fires on every OOM
//! in the cgroup (and once more when the cgroup is removed, which ends the
//! watch), as containerd's v1 OOM epoller does.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use containerd_shim_protos::events::task::TaskOOM;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::events::Publisher;

/// Starts watching the memory cgroup of `pid` for container `id`; does
/// nothing where there is no v1 memory controller.
pub fn watch(pid: u32, id: String, events: Publisher) {
    let Some(dir) = memory_cgroup(pid) else {
        return;
    };
    let Ok(efd) = register(&dir) else {
        return;
    };
    tokio::spawn(async move {
        let Ok(fd) = crate::sys::async_eventfd(efd) else {
            return;
        };
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            let _ = fd.get_ref().read();
            ready.clear_ready();
            if !dir.exists() {
                return;
            }
            let mut e = TaskOOM::new();
            e.container_id = id.clone();
            events.publish("/tasks/oom", &e);
        }
    });
}

fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == "memory").then(|| {
            PathBuf::from("/sys/fs/cgroup")
                .join(ctrls)
                .join(path.trim_start_matches('/'))
        })
    })
}

fn register(dir: &std::path::Path) -> std::io::Result<EventFd> {
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    let control = std::fs::File::open(dir.join("memory.oom_control"))?;
    let mut events = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))?;
    // One write(2): the kernel parses each write on its own.
    let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
    events.write_all(line.as_bytes())?;
    // The kernel holds its own reference to `control` from here on.
    Ok(efd)
}
