//! Reaping every child and routing each exit to whoever waits for it.
//!
//! The shim is a child subreaper: runc's children (the container's init and
//! exec'd processes) are reparented to it, and it must reap everything. A
//! plain `Child::wait` would race the reaper for runc's own exit, so a
//! command is spawned through [`Monitor::spawn`], which registers the pid's
//! waiter under the same lock the reaper takes to dispatch: the exit cannot be
//! reaped before someone listens for it. Exits nobody registered for (the
//! container processes) go to the channel returned by [`Monitor::new`].
//!
//! The monitor is a value, not a global, so a test can own one.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

/// A reaped child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, or 128 + the signal that killed it (containerd's rule).
    pub status: u32,
    pub at: SystemTime,
}

struct Inner {
    waiters: HashMap<i32, oneshot::Sender<Exit>>,
    others: mpsc::UnboundedSender<Exit>,
}

/// A handle on the reaper; clones share it.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Mutex<Inner>>,
}

impl Monitor {
    /// A monitor and the stream of exits of processes it did not spawn.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Exit>) {
        let (others, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            waiters: HashMap::new(),
            others,
        };
        let monitor = Monitor {
            inner: Arc::new(Mutex::new(inner)),
        };
        (monitor, rx)
    }

    /// Spawns `cmd`; the receiver yields its exit. The waiter is registered
    /// before the reaper can see the pid.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, oneshot::Receiver<Exit>)> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let child = cmd.spawn()?;
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Registers the child `start` forks (returning its pid) the same way:
    /// the reaper cannot run between the fork and the registration.
    pub fn spawn_with(
        &self,
        start: impl FnOnce() -> io::Result<i32>,
    ) -> io::Result<(i32, oneshot::Receiver<Exit>)> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = start()?;
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(pid, tx);
        Ok((pid, rx))
    }

    /// Reaps every child that has exited and dispatches the exits.
    pub fn reap(&self) {
        loop {
            let exit = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => exit(pid, code as u32),
                Ok(WaitStatus::Signaled(pid, sig, _)) => exit(pid, 128 + sig as u32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match inner.waiters.remove(&exit.pid) {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => {
                    let _ = inner.others.send(exit);
                }
            }
        }
    }

    /// Reaps on every SIGCHLD until the runtime stops.
    pub async fn run(self) -> io::Result<()> {
        let mut sigchld = signal(SignalKind::child())?;
        self.reap();
        while sigchld.recv().await.is_some() {
            self.reap();
        }
        Ok(())
    }
}

fn exit(pid: Pid, status: u32) -> Exit {
    Exit {
        pid: pid.as_raw(),
        status,
        at: SystemTime::now(),
    }
}
