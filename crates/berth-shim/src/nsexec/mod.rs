//! The built-in exec: an exec'd process started by the shim itself, without
//! `runc exec` (a Go start-up, a re-exec of `runc init` and its nsexec,
//! some 15 ms).
//!
//! The shim joins the container's init where runc would: its cgroups (from
//! `/proc/PID/cgroup`), its namespaces (`/proc/PID/ns/*`, those that differ
//! from the shim's), and sets the process up as runc's `setns` init does:
//! session, session keyring, rlimits, no_new_privs, bounding set, groups,
//! gid, uid, cwd, capabilities, ambient set, stdio, `HOME`, then looks the
//! program up as Go's `exec.LookPath` and executes it. See [`plan`] for
//! what is read and [`child`] for the fork.
//!
//! Whatever it does not implement falls back to runc (see
//! [`plan::Fallback`]): a terminal, seccomp, AppArmor, SELinux, a user or
//! time namespace, scheduler/ioPriority/personality/umask/Intel RDT, an
//! init that is not running, `BERTH_SHIM_EXEC=runc` in the shim's
//! environment, or the container annotation `io.berth.shim.exec=runc`.

pub mod caps;
mod child;
pub mod plan;

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::AsyncReadExt;

use crate::monitor::Monitor;
use crate::runc::ChildStdio;
use child::{Message, Step, MESSAGE_LEN};
pub use plan::{Fallback, Plan};

/// Gives the plan the exec's streams: `/dev/null` where it has none (as
/// runc's own stdio would be), each above 2.
pub fn set_stdio(plan: &mut Plan, child: ChildStdio) -> std::io::Result<()> {
    let mut fds = [child.stdin, child.stdout, child.stderr];
    for (slot, fd) in plan.stdio.iter_mut().zip(fds.iter_mut()) {
        let fd = match fd.take() {
            Some(fd) => fd,
            None => OwnedFd::from(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")?,
            ),
        };
        *slot = Some(if fd.as_raw_fd() <= 2 {
            fd.try_clone()?
        } else {
            fd
        });
    }
    Ok(())
}

/// Starts the process of `plan` (stdio set); returns its pid. The error is
/// runc's wording for the same failure, as containerd shows it after
/// `OCI runtime exec failed: `.
pub async fn start(plan: Plan, monitor: &Monitor) -> Result<u32, String> {
    let (rx, tx) = std::io::pipe().map_err(|e| format!("exec report pipe: {e}"))?;
    let (_, exit) = monitor
        .spawn_with(|| child::fork(&plan, &tx))
        .map_err(|e| format!("exec: fork: {e}"))?;
    // The children hold their own copies now: EOF comes when both are done.
    drop(tx);
    let arg0 = plan.arg0.clone();
    let cwd = plan.cwd.to_string_lossy().into_owned();
    drop(plan);
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(rx))
        .map_err(|e| format!("exec report pipe: {e}"))?;
    let mut buf = Vec::new();
    let read = rx.read_to_end(&mut buf).await;
    let status = exit.await.map(|e| e.status).unwrap_or(u32::MAX);
    read.map_err(|e| format!("exec report pipe: {e}"))?;
    let mut pid = None;
    for chunk in buf.chunks_exact(MESSAGE_LEN) {
        let chunk: &[u8; MESSAGE_LEN] = chunk.try_into().expect("exact chunk");
        match Message::decode(chunk) {
            Some(Message::Pid(p)) => pid = Some(p),
            Some(Message::Failed(step, errno)) => {
                if let Some(pid) = pid {
                    gone(pid).await;
                }
                return Err(failure(step, errno, &arg0, &cwd));
            }
            None => return Err("exec: garbled report from the child".into()),
        }
    }
    match pid {
        Some(pid) if status == 0 => Ok(pid),
        _ => Err(format!(
            "exec: the intermediate child exited with status {status}"
        )),
    }
}

/// Waits (at most a second) until a failed grandchild, which exits right
/// after reporting, has been reaped: a failed Start leaves no process in
/// the container, as with runc.
async fn gone(pid: u32) {
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..1000 {
        if !proc.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// runc's message for a failed step (its `exec failed: unable to start
/// container process: …`, Go's `exec.LookPath` wording for a lookup).
fn failure(step: Step, errno: i32, arg0: &str, cwd: &str) -> String {
    let text = errno_text(errno);
    let what = match step {
        Step::NotFound => format!("exec: {arg0:?}: executable file not found in $PATH"),
        Step::Lookup if errno == libc::EACCES => {
            format!("exec: {arg0:?}: {text}")
        }
        Step::Lookup => format!("exec: {arg0:?}: stat {arg0}: {text}"),
        Step::Execve => format!("exec {arg0}: {text}"),
        Step::Chdir => format!("chdir to cwd ({cwd:?}) set in config.json failed: {text}"),
        other => format!("{}: {text}", other.describe()),
    };
    format!("exec failed: unable to start container process: {what}")
}

/// An errno as Go prints it: the C library's text, lower case first.
fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match text.rfind(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_runcs() {
        assert_eq!(
            failure(Step::NotFound, libc::ENOENT, "nope", "/"),
            "exec failed: unable to start container process: \
             exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            failure(Step::Lookup, libc::ENOENT, "/nope", "/"),
            "exec failed: unable to start container process: \
             exec: \"/nope\": stat /nope: no such file or directory"
        );
        assert_eq!(
            failure(Step::Lookup, libc::EACCES, "/etc", "/"),
            "exec failed: unable to start container process: exec: \"/etc\": permission denied"
        );
        assert_eq!(
            failure(Step::Chdir, libc::ENOENT, "sh", "/nope"),
            "exec failed: unable to start container process: \
             chdir to cwd (\"/nope\") set in config.json failed: no such file or directory"
        );
    }
}
