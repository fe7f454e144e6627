//! The few system calls neither `std` nor `nix` wrap safely: every `unsafe`
//! block of the shim is here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
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

/// The descriptor on which `start` hands the serving shim its listening
/// socket (containerd's shims use the same).
pub const LISTENER_FD: RawFd = 3;

/// Makes `listener` available as [`LISTENER_FD`] to programs this process
/// executes (no close-on-exec there).
///
/// For `start`, which exits right after: whatever was on fd 3 before (the
/// listener itself, or a descriptor inherited by accident that nothing in
/// this process owns) is replaced.
pub fn inherit_as_listener_fd(listener: &UnixListener) -> io::Result<()> {
    let fd = listener.as_raw_fd();
    // SAFETY: dup2 and fcntl on plain descriptor numbers: `fd` is open
    // (borrowed from `listener` for the call), and LISTENER_FD is owned by
    // no Rust object here (see above) so replacing it breaks no ownership.
    unsafe {
        if fd != LISTENER_FD && libc::dup2(fd, LISTENER_FD) < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::fcntl(LISTENER_FD, libc::F_GETFD);
        if flags < 0 || libc::fcntl(LISTENER_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes the listening unix socket `start` left on [`LISTENER_FD`], marked
/// close-on-exec so runc and the containers do not inherit it. Fails if
/// that descriptor is not one.
pub fn take_listener_fd() -> io::Result<UnixListener> {
    let mut listening: libc::c_int = 0;
    let mut domain: libc::c_int = 0;
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let (mut len1, mut len2) = (size, size);
    // SAFETY: getsockopt on a descriptor number (an unopened one fails with
    // EBADF) writing at most `size` bytes into the two c_ints.
    let ok = unsafe {
        libc::getsockopt(
            LISTENER_FD,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len1,
        ) == 0
            && libc::getsockopt(
                LISTENER_FD,
                libc::SOL_SOCKET,
                libc::SO_DOMAIN,
                (&mut domain as *mut libc::c_int).cast(),
                &mut len2,
            ) == 0
    };
    if !ok || listening == 0 || domain != libc::AF_UNIX {
        return Err(io::Error::other(format!(
            "fd {LISTENER_FD} is not a listening unix socket"
        )));
    }
    // SAFETY: fd 3 is the socket `start` passed to this process, checked
    // above; nothing else in this process owns it (it is taken once, in
    // `main`, before anything else runs).
    let listener = unsafe { UnixListener::from_raw_fd(LISTENER_FD) };
    let flags = nix::fcntl::fcntl(&listener, nix::fcntl::FcntlArg::F_GETFD)?;
    let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) | nix::fcntl::FdFlag::FD_CLOEXEC;
    nix::fcntl::fcntl(&listener, nix::fcntl::FcntlArg::F_SETFD(flags))?;
    Ok(listener)
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
