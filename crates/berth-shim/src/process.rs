//! One process of a container: the init process or an exec'd one.

use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use containerd_shim_protos::api::Status;
use tokio::sync::watch;

use crate::io::{ProcessIo, StdioPaths};
use crate::monitor::Exit;

/// Mutable state of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcState {
    pub pid: u32,
    pub status: Status,
    pub exit_status: u32,
    pub exited_at: Option<SystemTime>,
}

/// A process and the copies of its streams.
pub struct Process {
    /// Empty for the init process.
    pub exec_id: String,
    pub stdio: StdioPaths,
    state: Mutex<ProcState>,
    /// `Some(exit)` once the process has exited (and its output drained).
    exited: watch::Sender<Option<Exit>>,
    pub io: tokio::sync::Mutex<ProcessIo>,
    /// The exec's OCI process JSON (exec processes only).
    pub spec: Vec<u8>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, spec: Vec<u8>) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            stdio,
            state: Mutex::new(ProcState {
                pid: 0,
                status: Status::CREATED,
                exit_status: 0,
                exited_at: None,
            }),
            exited: watch::channel(None).0,
            io: tokio::sync::Mutex::new(ProcessIo::default()),
            spec,
        }
    }

    pub fn state(&self) -> ProcState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pid(&self) -> u32 {
        self.state().pid
    }

    pub fn set_pid(&self, pid: u32) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pid = pid;
    }

    /// Sets the status unless the process already stopped.
    pub fn set_status(&self, status: Status) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.status != Status::STOPPED {
            s.status = status;
        }
    }

    pub fn set_exited(&self, exit: Exit) {
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.status = Status::STOPPED;
            s.exit_status = exit.status;
            s.exited_at = Some(exit.at);
        }
        self.exited.send_replace(Some(exit));
    }

    /// Lets every Wait return `exit` without recording an exit: for a
    /// process whose start failed, which stays created (containerd's shim
    /// releases its waiters the same way).
    pub fn release_waiters(&self, exit: Exit) {
        self.exited.send_replace(Some(exit));
    }

    /// Waits for the exit.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exited.subscribe();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`; unreachable in practice.
                std::future::pending::<()>().await;
            }
        }
    }
}
