//! The few system calls neither `std` nor `nix` wrap safely: every `unsafe`
//! block of the shim is here.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s child start a new session (detached from the daemon's
/// terminal and process group) and see each `(fd, target)` pair of
/// `inherit` as `target` (3, 4, …), without close-on-exec.
pub fn pre_exec_setsid_and_fds(cmd: &mut Command, setsid: bool, inherit: Vec<(RawFd, RawFd)>) {
    // SAFETY: the closure runs between fork and exec in the child and only
    // calls async-signal-safe functions (setsid, dup2, fcntl) on descriptors
    // the parent keeps open until spawn returns; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if setsid && libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for &(fd, target) in &inherit {
                if fd == target {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Sets a terminal's window size (`TIOCSWINSZ`).
pub fn set_winsize(fd: &impl AsRawFd, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `fd` is an open descriptor borrowed for the call and `ws` is a
    // valid winsize the kernel only reads.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forks a child detached from the caller: a new session, with stdin,
/// stdout and stderr on `/dev/null` (the daemon reads the parent's stdout
/// to its end, so the child must not hold it). Returns `true` in the child,
/// `false` in the parent. The child is never waited for: once the parent
/// exits it is reparented (to the daemon if it is a subreaper, else to init).
///
/// Must be called while the process has a single thread (before any
/// runtime is built).
pub fn fork_detached() -> io::Result<bool> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: the shim calls this from its synchronous `main` before any
    // thread exists, so the child is a full copy of a single-threaded
    // process: no lock can be held by a thread that does not exist in it.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { .. } => Ok(false),
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().map_err(io::Error::from)?;
            nix::unistd::dup2_stdin(&null).map_err(io::Error::from)?;
            nix::unistd::dup2_stdout(&null).map_err(io::Error::from)?;
            nix::unistd::dup2_stderr(&null).map_err(io::Error::from)?;
            Ok(true)
        }
    }
}

/// Takes ownership of a descriptor received with SCM_RIGHTS.
pub fn received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel just installed `fd` in this process for the caller
    // (recvmsg with SCM_RIGHTS); nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Registers an eventfd with the runtime's reactor.
pub fn async_eventfd(
    efd: nix::sys::eventfd::EventFd,
) -> io::Result<tokio::io::unix::AsyncFd<nix::sys::eventfd::EventFd>> {
    // SAFETY: the EventFd is an owned, open descriptor moved into the
    // AsyncFd, which keeps it (and so the same fd number) until dropped.
    unsafe { tokio::io::unix::AsyncFd::register(efd) }.map_err(|e| e.into_parts().1)
}
