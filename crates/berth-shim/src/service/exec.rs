//! Exec'd processes: Exec (record), Start (`runc exec --detach`), Kill and
//! Delete of one, as containerd's shim answers them (`pkg/process/exec.go`).
//!
//! A start that fails leaves nothing: runc's spec and pid files are
//! removed, the process's streams are closed (so the client's FIFOs have no
//! holder left in the shim) and anyone waiting for it is released. The
//! process stays `CREATED`, as in containerd, so the client deletes it as
//! usual.

use std::sync::Arc;
use std::time::SystemTime;

use berth_core::Error;
use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::TaskExecAdded;

use super::{lock, read_pid, Container, Shim};
use crate::error::{unknown, Result};
use crate::io::{ConsoleSocket, LogEnv, ProcessIo, StdioPaths};
use crate::monitor::Exit;
use crate::nsexec::{Fallback, Plan};
use crate::process::Process;

/// The status Wait reports for an exec whose start failed: it never ran,
/// and containerd 1.6's shim releases such a waiter with its zero status
/// (the Start call itself carries the error).
pub const START_FAILED_STATUS: u32 = 0;

impl Shim {
    /// Records an exec process; Start runs it.
    pub(super) async fn exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        if c.init.state().status == Status::STOPPED {
            return Err(Error::failed_precondition(format!(
                "container {} is stopped",
                req.id
            )));
        }
        let stdio = StdioPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        {
            let mut execs = lock(&c.execs);
            if execs.contains_key(&req.exec_id) {
                return Err(Error::already_exists(format!("process {}", req.exec_id)));
            }
            execs.insert(
                req.exec_id.clone(),
                Arc::new(Process::new(&req.exec_id, stdio, spec)),
            );
        }
        let mut e = TaskExecAdded::new();
        e.container_id = req.id.clone();
        e.exec_id = req.exec_id.clone();
        self.events.publish("/tasks/exec-added", &e);
        Ok(())
    }

    /// Starts `p`, built in (see [`crate::nsexec`]) or with `runc exec`;
    /// returns its pid. On failure nothing of the attempt is left (see the
    /// module docs).
    pub(super) async fn start_exec(&self, c: &Container, p: &Process) -> Result<u32> {
        let pid = self.start_exec_process(c, p).await;
        if pid.is_err() {
            let mut io = p.io.lock().await;
            io.close_stdin();
            *io = ProcessIo::default();
            p.release_waiters(Exit {
                pid: 0,
                status: START_FAILED_STATUS,
                at: SystemTime::now(),
            });
        }
        pid
    }

    async fn start_exec_process(&self, c: &Container, p: &Process) -> Result<u32> {
        let oom_floor = crate::rootfs::own_oom_score_adj();
        let spec = exec_process_spec(&p.spec, p.stdio.terminal, oom_floor)?;
        match self.builtin_plan(c, &spec, oom_floor) {
            Ok(plan) => return self.run_builtin(c, p, plan).await,
            Err(Fallback(why)) => {
                crate::log::line(format_args!(
                    "exec {} in {}: runc exec ({why})",
                    p.exec_id, c.id
                ));
            }
        }
        let spec_file = c.bundle.join(format!("exec-{}.json", p.exec_id));
        let pid_file = c.bundle.join(format!("exec-{}.pid", p.exec_id));
        let result = self.run_exec(c, p, &spec, &spec_file, &pid_file).await;
        let _ = std::fs::remove_file(&spec_file);
        let pid = result.and_then(|()| read_pid(&pid_file));
        let _ = std::fs::remove_file(&pid_file);
        pid
    }

    /// The built-in exec's plan for `spec` in `c`, or why runc runs it.
    fn builtin_plan(
        &self,
        c: &Container,
        spec: &serde_json::Value,
        oom_floor: i64,
    ) -> std::result::Result<Plan, Fallback> {
        let init = c.init.state();
        if init.status != Status::RUNNING || init.exited_at.is_some() {
            return Err(Fallback(format!("the init is {:?}", init.status)));
        }
        Plan::prepare(&c.id, &c.spec, spec, init.pid, oom_floor)
    }

    /// Starts `p` with the built-in exec.
    async fn run_builtin(&self, c: &Container, p: &Process, mut plan: Plan) -> Result<u32> {
        let env = LogEnv {
            namespace: &self.namespace,
            id: &c.id,
            monitor: &self.monitor,
        };
        let (io, child) = ProcessIo::pipes(&p.stdio, &env).map_err(unknown)?;
        *p.io.lock().await = io;
        crate::nsexec::set_stdio(&mut plan, child).map_err(unknown)?;
        crate::nsexec::start(plan, &self.monitor)
            .await
            .map_err(|e| unknown(format!("OCI runtime exec failed: {e}")))
    }

    async fn run_exec(
        &self,
        c: &Container,
        p: &Process,
        spec: &serde_json::Value,
        spec_file: &std::path::Path,
        pid_file: &std::path::Path,
    ) -> Result<()> {
        std::fs::write(spec_file, spec.to_string()).map_err(unknown)?;
        if p.stdio.terminal {
            let console = ConsoleSocket::new().map_err(unknown)?;
            c.runc
                .exec(
                    &c.id,
                    spec_file,
                    pid_file,
                    Some(console.path()),
                    Default::default(),
                )
                .await
                .map_err(exec_failed)?;
            let io = console
                .receive_master()
                .and_then(|master| ProcessIo::console(master, &p.stdio));
            return match io {
                Ok(io) => {
                    *p.io.lock().await = io;
                    Ok(())
                }
                Err(err) => {
                    // runc started it: a process nobody can talk to must
                    // not outlive the failed Start.
                    if let Ok(pid) = read_pid(pid_file) {
                        let pid = nix::unistd::Pid::from_raw(pid as i32);
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    Err(unknown(format!("exec terminal: {err}")))
                }
            };
        }
        let env = LogEnv {
            namespace: &self.namespace,
            id: &c.id,
            monitor: &self.monitor,
        };
        let (io, child) = ProcessIo::pipes(&p.stdio, &env).map_err(unknown)?;
        *p.io.lock().await = io;
        c.runc
            .exec(&c.id, spec_file, pid_file, None, child)
            .await
            .map_err(exec_failed)
    }

    /// Signals an exec process. One never started has no pid to signal
    /// (and signalling pid 0 would hit the shim's own process group).
    pub(super) fn kill_exec(&self, p: &Process, signal: u32) -> Result<()> {
        // An exec not started has no pid: kill(2) with 0 would signal the
        // shim's own process group. containerd's shim answers as below.
        let pid = p.pid();
        if pid == 0 {
            return Err(Error::failed_precondition(format!(
                "process {}: process not created: failed precondition",
                p.exec_id
            )));
        }
        let sig = nix::sys::signal::Signal::try_from(signal as i32)
            .map_err(|e| Error::invalid_argument(format!("signal {signal}: {e}")))?;
        let pid = i32::try_from(pid).map_err(unknown)?;
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
            Err(nix::errno::Errno::ESRCH) => Err(Error::not_found(format!(
                "process {}: process already finished",
                p.exec_id
            ))),
            other => other.map_err(unknown),
        }
    }

    /// Forgets an exec process that is not running, closing what is left
    /// of its streams (a stdin copy waits on the client's FIFO forever).
    pub(super) async fn delete_exec(
        &self,
        c: &Container,
        p: &Process,
    ) -> Result<crate::process::ProcState> {
        let st = p.state();
        if st.status != Status::STOPPED && st.status != Status::CREATED {
            return Err(Error::failed_precondition(format!(
                "process {} of {} is still running",
                p.exec_id, c.id
            )));
        }
        lock(&c.execs).remove(&p.exec_id);
        p.io.lock().await.close_stdin();
        Ok(st)
    }
}

/// containerd's wording for a process runc could not start, with what runc
/// said (the client sees this, e.g. `exec: "x": … no such file or directory`).
fn exec_failed(err: crate::runc::RuncError) -> Error {
    unknown(err.oci("exec"))
}

/// The exec's OCI process as runc gets it. The request's terminal flag wins
/// over the spec's, as in containerd's shim (`spec.Terminal = r.Terminal`
/// in `pkg/process/init.go`): the Go client takes the spec from its caller
/// and the flag from `cio`, and runc refuses a console socket for a process
/// without a terminal. The OOM score is clamped (see
/// [`crate::rootfs::clamp_oom_score_adj`]).
pub fn exec_process_spec(raw: &[u8], terminal: bool, oom_floor: i64) -> Result<serde_json::Value> {
    let mut spec: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| Error::invalid_argument(format!("exec spec: {e}")))?;
    let Some(process) = spec.as_object_mut() else {
        return Err(Error::invalid_argument(
            "exec spec: not a JSON object (an OCI process)",
        ));
    };
    process.insert("terminal".into(), terminal.into());
    crate::rootfs::clamp_oom_score_adj(&mut spec, oom_floor);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_terminal_overrides_the_spec() {
        let raw = br#"{"args":["sh"],"terminal":true,"oomScoreAdj":-999}"#;
        let spec = exec_process_spec(raw, false, 0).expect("spec");
        assert_eq!(spec["terminal"], false);
        assert_eq!(spec["oomScoreAdj"], 0);
        let spec = exec_process_spec(br#"{"args":["sh"]}"#, true, 0).expect("spec");
        assert_eq!(spec["terminal"], true);
        assert_eq!(spec["args"][0], "sh");
    }

    #[test]
    fn exec_spec_must_be_an_object() {
        let err = exec_process_spec(b"[1]", true, 0).expect_err("array");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
        let err = exec_process_spec(b"{", true, 0).expect_err("bad json");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
    }
}
