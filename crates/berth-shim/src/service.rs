//! The ttrpc Task service: containers of one shim and their processes.
//!
//! Ordering: `start` holds the container's `order` lock across `runc start`
//! and the `/tasks/start` event; the exit of a process is reported under the
//! same lock, after its output has drained. So `/tasks/exit` always follows
//! `/tasks/start`, and `Wait` never returns before the output is complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use berth_core::Error;
use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecStarted, TaskExit, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::{Options, ProcessDetails};
use containerd_shim_protos::shim_async::Task;
use tokio::sync::Notify;
use ttrpc::asynchronous::TtrpcContext;

use crate::address::OwnSocket;
use crate::error::{to_ttrpc, unknown, Result};
use crate::events::{pack, task_io, timestamp, Publisher};
use crate::io::{ConsoleSocket, LogEnv, ProcessIo, StdioPaths};
use crate::monitor::{Exit, Monitor};
use crate::process::Process;
use crate::runc::{Runc, RuncConfig, RuncError};

mod exec;

/// How long an exit waits for its output copies before it is reported.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long an exit nobody claimed is kept for a pid learned later.
const UNCLAIMED_TTL: Duration = Duration::from_secs(30);
/// The file in the bundle that tells `delete` how to call runc.
pub const RUNC_CONFIG_FILE: &str = "berth-runc";

/// One container: its init process and exec'd processes.
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    /// The OCI spec of the bundle, as runc got it (for the built-in exec).
    spec: serde_json::Value,
    runc: Runc,
    /// The rootfs the shim mounted (none for a spec root path).
    rootfs: Option<crate::rootfs::MountedRootfs>,
    /// What the spec says about the end of the init process.
    on_exit: OnInitExit,
    /// `runc delete`, when started early (see [`OnInitExit::clean_up`]).
    runc_delete: Mutex<RuncDelete>,
    init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Serializes starts with exit reports (see the module docs).
    order: tokio::sync::Mutex<()>,
    /// Held by the init's Delete under way: a second one waits for it and
    /// then finds the container gone (`NotFound`, as containerd's shim
    /// answers a deleted process) instead of running `runc delete` again.
    deleting: tokio::sync::Mutex<()>,
}

type RuncDeleteTask = tokio::task::JoinHandle<std::result::Result<(), RuncError>>;

/// Where a container's `runc delete` stands.
enum RuncDelete {
    NotStarted,
    Running(RuncDeleteTask),
    /// Delete took it over.
    Claimed,
}

/// A deleted container whose early `runc delete` may still be running:
/// Shutdown waits for it (and retries it forced if it failed) before the
/// shim exits, so the daemon may answer Delete without waiting for runc.
struct Retiring {
    id: String,
    runc: Runc,
    task: RuncDeleteTask,
}

impl Container {
    /// Starts `runc delete` in the background unless Delete already runs it.
    /// It logs to its own stderr, not to the bundle's `log.json`: it may
    /// outlive the task's Delete, after which the daemon removes the bundle.
    fn start_runc_delete(&self) {
        let mut state = lock(&self.runc_delete);
        if matches!(*state, RuncDelete::NotStarted) {
            let (runc, id) = (self.runc.clone(), self.id.clone());
            let task = tokio::spawn(async move { runc.delete_unlogged(&id, false).await });
            *state = RuncDelete::Running(task);
        }
    }

    /// Takes over the `runc delete` started early, if one was.
    fn claim_runc_delete(&self) -> Option<RuncDeleteTask> {
        match std::mem::replace(&mut *lock(&self.runc_delete), RuncDelete::Claimed) {
            RuncDelete::Running(task) => Some(task),
            _ => None,
        }
    }

    fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        lock(&self.execs)
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("process {exec_id}")))
    }
}

/// What the end of a container's init process calls for.
#[derive(Debug, Clone, Copy)]
struct OnInitExit {
    /// `runc kill --all` the rest: only when the container shares a pid
    /// namespace (with the host or another container). In a pid namespace of
    /// its own the kernel kills every process left once init dies
    /// (containerd's `ShouldKillAllOnExit`).
    kill_all: bool,
    /// Clean up at once, in the background: unmount the rootfs (see
    /// [`crate::rootfs::MountedRootfs`]) and `runc delete` the container.
    /// Nothing can use either any more: no process is left, no poststop hook
    /// will run, and requests on a stopped init are answered from the
    /// shim's record or fail as before. So the work overlaps the client's Wait and Delete
    /// round trips instead of following them; Delete waits for it to end.
    clean_up: bool,
}

/// The shim's state, shared by every ttrpc call.
pub struct Shim {
    namespace: String,
    monitor: Monitor,
    events: Publisher,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Exits of pids not yet known (an exec that exited before its pid file
    /// was read), with when they were reaped.
    unclaimed: Mutex<HashMap<i32, Exit>>,
    /// Deleted containers whose `runc delete` Shutdown waits for.
    retiring: Mutex<Vec<Retiring>>,
    shutdown: Arc<Notify>,
    /// The socket file, unlinked as Shutdown is answered.
    socket: OwnSocket,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shim {
    pub fn new(
        namespace: String,
        monitor: Monitor,
        events: Publisher,
        shutdown: Arc<Notify>,
        socket: OwnSocket,
    ) -> Self {
        Shim {
            namespace,
            monitor,
            events,
            containers: Mutex::new(HashMap::new()),
            unclaimed: Mutex::new(HashMap::new()),
            retiring: Mutex::new(Vec::new()),
            shutdown,
            socket,
        }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        lock(&self.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("container {id}")))
    }

    /// Waits for the `runc delete`s of deleted containers; one that failed
    /// runs again, forced. Failures are the shim's to log: the task is
    /// gone from the daemon's view already.
    async fn finish_retiring(&self) {
        let retiring = std::mem::take(&mut *lock(&self.retiring));
        for r in retiring {
            if let Ok(Ok(())) = r.task.await {
                continue;
            }
            if let Err(err) = r.runc.delete_unlogged(&r.id, true).await {
                crate::log::line(format_args!("runc delete {}: {err}", r.id));
            }
        }
    }

    /// Routes one reaped exit (from the monitor's channel) to its process.
    pub fn handle_exit(self: &Arc<Self>, exit: Exit) {
        let found = {
            let mut unclaimed = lock(&self.unclaimed);
            let found = self.find_pid(exit.pid);
            if found.is_none() {
                unclaimed.retain(|_, e| e.at.elapsed().map_or(true, |d| d < UNCLAIMED_TTL));
                unclaimed.insert(exit.pid, exit);
            }
            found
        };
        if let Some((container, process)) = found {
            tokio::spawn(self.clone().report_exit(container, process, exit));
        }
    }

    fn find_pid(&self, pid: i32) -> Option<(Arc<Container>, Arc<Process>)> {
        let pid = u32::try_from(pid).ok()?;
        for c in lock(&self.containers).values() {
            if c.init.pid() == pid && c.init.state().exited_at.is_none() {
                return Some((c.clone(), c.init.clone()));
            }
            for p in lock(&c.execs).values() {
                if p.pid() == pid && p.state().exited_at.is_none() {
                    return Some((c.clone(), p.clone()));
                }
            }
        }
        None
    }

    /// Records a pid; if it already exited, reports that exit.
    fn claim_pid(self: &Arc<Self>, container: &Arc<Container>, process: &Arc<Process>, pid: u32) {
        let exit = {
            let mut unclaimed = lock(&self.unclaimed);
            process.set_pid(pid);
            unclaimed.remove(&(pid as i32))
        };
        if let Some(exit) = exit {
            tokio::spawn(
                self.clone()
                    .report_exit(container.clone(), process.clone(), exit),
            );
        }
    }

    async fn report_exit(
        self: Arc<Self>,
        container: Arc<Container>,
        process: Arc<Process>,
        exit: Exit,
    ) {
        if process.exec_id.is_empty() && container.on_exit.clean_up {
            // Not before a Start in flight has finished: `runc start` removes
            // the exec FIFO from runc's state directory after the process
            // has run (and runs poststart hooks), and fails if `runc delete`
            // took the directory first, as a fast-exiting init allows.
            drop(container.order.lock().await);
            if let Some(rootfs) = &container.rootfs {
                rootfs.start_unmount();
            }
            container.start_runc_delete();
        }
        process.io.lock().await.drained(DRAIN_LIMIT).await;
        let _order = container.order.lock().await;
        if process.exec_id.is_empty() && container.on_exit.kill_all {
            // The init is gone: its exec'd processes go with it.
            let _ = container.runc.kill(&container.id, 9, true).await;
        }
        process.set_exited(exit);
        let mut e = TaskExit::new();
        e.container_id = container.id.clone();
        e.id = if process.exec_id.is_empty() {
            container.id.clone()
        } else {
            process.exec_id.clone()
        };
        e.pid = exit.pid as u32;
        e.exit_status = exit.status;
        e.exited_at = Some(timestamp(exit.at)).into();
        self.events.publish("/tasks/exit", &e);
    }

    async fn create(self: &Arc<Self>, req: api::CreateTaskRequest) -> Result<u32> {
        if lock(&self.containers).contains_key(&req.id) {
            return Err(Error::already_exists(format!("container {}", req.id)));
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::not_implemented("restore from a checkpoint is not supported: criu cannot dump or restore on this host"));
        }
        let bundle = PathBuf::from(&req.bundle);
        let config = runc_config(&self.namespace, req.options.as_ref())?;
        std::fs::write(bundle.join(RUNC_CONFIG_FILE), config.encode()).map_err(unknown)?;
        let rootfs = if req.rootfs.is_empty() {
            None
        } else {
            let target = bundle.join("rootfs");
            Some(crate::rootfs::MountedRootfs::mount(&req.rootfs, &target).map_err(unknown)?)
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let runc = Runc::new(config, &bundle, self.monitor.clone());
        let init = Arc::new(Process::new("", stdio, Vec::new()));
        let created = self.run_create(&req.id, &bundle, &runc, &init).await;
        let (pid, on_exit, spec) = match created {
            Ok(created) => created,
            Err(err) => {
                if let Some(rootfs) = &rootfs {
                    rootfs.unmount().await;
                }
                return Err(err);
            }
        };
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            spec,
            runc,
            rootfs,
            on_exit,
            runc_delete: Mutex::new(RuncDelete::NotStarted),
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            order: tokio::sync::Mutex::new(()),
            deleting: tokio::sync::Mutex::new(()),
        });
        lock(&self.containers).insert(req.id.clone(), container.clone());
        self.claim_pid(&container, &init, pid);
        crate::oom::watch(pid, req.id.clone(), self.events.clone());
        let mut e = TaskCreate::new();
        e.container_id = req.id.clone();
        e.bundle = req.bundle.clone();
        e.rootfs = req.rootfs.clone();
        e.io = Some(task_io(&init.stdio)).into();
        e.pid = pid;
        self.events.publish("/tasks/create", &e);
        Ok(pid)
    }

    /// `runc create` with the process's stdio; returns the init pid and
    /// what its exit means for the rest of the container.
    async fn run_create(
        &self,
        id: &str,
        bundle: &Path,
        runc: &Runc,
        init: &Process,
    ) -> Result<(u32, OnInitExit, serde_json::Value)> {
        let spec = crate::rootfs::clamp_bundle_spec(bundle, crate::rootfs::own_oom_score_adj())
            .map_err(unknown)?;
        let own_pid_namespace = crate::rootfs::has_own_pid_namespace(&spec);
        let on_exit = OnInitExit {
            kill_all: !own_pid_namespace,
            clean_up: own_pid_namespace && !crate::rootfs::has_poststop_hooks(&spec),
        };
        let pid_file = bundle.join("init.pid");
        let env = LogEnv {
            namespace: &self.namespace,
            id,
            monitor: &self.monitor,
        };
        let console = if init.stdio.terminal {
            let console = ConsoleSocket::new().map_err(unknown)?;
            let created = runc
                .create(
                    id,
                    bundle,
                    &pid_file,
                    Some(console.path()),
                    Default::default(),
                )
                .await;
            (created, Some(console))
        } else {
            let (io, child) = ProcessIo::pipes(&init.stdio, &env).map_err(unknown)?;
            *init.io.lock().await = io;
            (runc.create(id, bundle, &pid_file, None, child).await, None)
        };
        let console = match console {
            (Ok(()), console) => console,
            (Err(e), _) => {
                let spec = spec.clone();
                let _ = tokio::task::spawn_blocking(move || crate::cgroup::remove_leftover(&spec))
                    .await;
                return Err(unknown(e.oci("create")));
            }
        };
        if let Some(console) = console {
            let master = console.receive_master().map_err(unknown)?;
            *init.io.lock().await = ProcessIo::console(master, &init.stdio).map_err(unknown)?;
        }
        Ok((read_pid(&pid_file)?, on_exit, spec))
    }

    async fn start(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<u32> {
        let c = self.container(id)?;
        let p = c.process(exec_id)?;
        let _order = c.order.lock().await;
        if p.state().status != Status::CREATED {
            return Err(Error::failed_precondition(format!(
                "process {} of {id} is not created",
                p.exec_id
            )));
        }
        if exec_id.is_empty() {
            c.runc
                .start(id)
                .await
                .map_err(|e| unknown(e.oci("start")))?;
            p.set_status(Status::RUNNING);
            let mut e = TaskStart::new();
            e.container_id = id.to_string();
            e.pid = p.pid();
            self.events.publish("/tasks/start", &e);
            return Ok(p.pid());
        }
        let pid = self.start_exec(&c, &p).await?;
        p.set_status(Status::RUNNING);
        let mut e = TaskExecStarted::new();
        e.container_id = id.to_string();
        e.exec_id = exec_id.to_string();
        e.pid = pid;
        self.events.publish("/tasks/exec-started", &e);
        self.claim_pid(&c, &p, pid);
        Ok(pid)
    }

    async fn delete(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse> {
        let c = self.container(id)?;
        let p = c.process(exec_id)?;
        if !exec_id.is_empty() {
            let st = self.delete_exec(&c, &p).await?;
            return Ok(delete_response(st.pid, st.exit_status, st.exited_at));
        }
        let _turn = c.deleting.lock().await;
        let current = lock(&self.containers)
            .get(id)
            .is_some_and(|now| Arc::ptr_eq(now, &c));
        if !current {
            return Err(Error::not_found(format!("container {id}")));
        }
        let st = p.state();
        if st.status != Status::STOPPED && st.status != Status::CREATED {
            return Err(Error::failed_precondition(format!(
                "task {id} must be stopped before deletion: {:?}",
                st.status
            )));
        }
        match c.claim_runc_delete() {
            // Started when the init exited, and needing nothing the daemon
            // removes after Delete: Shutdown waits for it instead, so the
            // daemon's Delete does not wait for runc.
            Some(task) => lock(&self.retiring).push(Retiring {
                id: c.id.clone(),
                runc: c.runc.clone(),
                task,
            }),
            None => c
                .runc
                .delete(&c.id, st.status == Status::CREATED)
                .await
                .map_err(unknown)?,
        }
        // The daemon removes the bundle, `rootfs` included, once Delete
        // answers: the unmount cannot wait.
        if let Some(rootfs) = &c.rootfs {
            rootfs.unmount().await;
        }
        lock(&self.containers).remove(id);
        let exited_at = st.exited_at.unwrap_or_else(SystemTime::now);
        // No `id`: containerd's shim leaves it empty for the init process.
        let mut e = TaskDelete::new();
        e.container_id = id.to_string();
        e.pid = st.pid;
        e.exit_status = st.exit_status;
        e.exited_at = Some(timestamp(exited_at)).into();
        self.events.publish("/tasks/delete", &e);
        Ok(delete_response(st.pid, st.exit_status, Some(exited_at)))
    }

    async fn kill(&self, req: &api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if p.state().status == Status::STOPPED {
            return Err(Error::not_found(format!(
                "process {} of {}: process already finished",
                p.exec_id, req.id
            )));
        }
        if req.exec_id.is_empty() {
            return c
                .runc
                .kill(&req.id, req.signal, req.all)
                .await
                .map_err(unknown);
        }
        self.kill_exec(&p, req.signal)
    }

    async fn state(&self, id: &str, exec_id: &str) -> Result<api::StateResponse> {
        let c = self.container(id)?;
        let p = c.process(exec_id)?;
        // The shim's own record, as containerd's shim answers: no `runc
        // state` per call (Pause and Resume keep the status current).
        let st = p.state();
        let mut r = api::StateResponse::new();
        r.id = if exec_id.is_empty() {
            id.to_string()
        } else {
            exec_id.to_string()
        };
        r.exec_id = exec_id.to_string();
        r.bundle = c.bundle.display().to_string();
        r.pid = st.pid;
        r.status = st.status.into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        r.exit_status = st.exit_status;
        r.exited_at = st.exited_at.map(timestamp).into();
        Ok(r)
    }

    async fn pause(&self, id: &str, pause: bool) -> Result<()> {
        let c = self.container(id)?;
        if pause {
            c.runc.pause(id).await.map_err(unknown)?;
            c.init.set_status(Status::PAUSED);
            let mut e = TaskPaused::new();
            e.container_id = id.to_string();
            self.events.publish("/tasks/paused", &e);
        } else {
            c.runc.resume(id).await.map_err(unknown)?;
            c.init.set_status(Status::RUNNING);
            let mut e = TaskResumed::new();
            e.container_id = id.to_string();
            self.events.publish("/tasks/resumed", &e);
        }
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<api::PidsResponse> {
        let c = self.container(id)?;
        let mut r = api::PidsResponse::new();
        if c.init.state().status == Status::STOPPED {
            // Nothing is left in a stopped container (and runc may have
            // deleted it already, see `OnInitExit::clean_up`).
            return Ok(r);
        }
        let pids = c.runc.ps(id).await.map_err(unknown)?;
        let execs: Vec<(u32, String)> = lock(&c.execs)
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        for pid in pids {
            let mut info = api::ProcessInfo::new();
            info.pid = pid;
            if let Some((_, exec_id)) = execs.iter().find(|(p, _)| *p == pid) {
                let mut d = ProcessDetails::new();
                d.exec_id = exec_id.clone();
                info.info = Some(pack(&d)).into();
            }
            r.processes.push(info);
        }
        Ok(r)
    }

    async fn update(&self, req: &api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let file = c.bundle.join("update-resources.json");
        std::fs::write(&file, resources).map_err(unknown)?;
        let r = c.runc.update(&req.id, &file).await.map_err(unknown);
        let _ = std::fs::remove_file(&file);
        r
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| unknown(format!("reading {}: {e}", path.display())))?;
    text.trim()
        .parse()
        .map_err(|e| unknown(format!("pid file {}: {e}", path.display())))
}

/// The runtime options of a create request (`containerd.runc.v1.Options`).
fn runc_config(
    namespace: &str,
    options: Option<&containerd_shim_protos::protobuf::well_known_types::any::Any>,
) -> Result<RuncConfig> {
    let mut config = RuncConfig::default_for(namespace);
    let Some(any) = options.filter(|a| !a.value.is_empty()) else {
        return Ok(config);
    };
    if !any.type_url.ends_with("containerd.runc.v1.Options") {
        return Ok(config);
    }
    let opts = Options::parse_from_bytes(&any.value)
        .map_err(|e| Error::invalid_argument(format!("runc options: {e}")))?;
    if !opts.binary_name.is_empty() {
        config.binary = opts.binary_name;
    }
    if !opts.root.is_empty() {
        config.root = format!("{}/{namespace}", opts.root.trim_end_matches('/'));
    }
    config.systemd_cgroup = opts.systemd_cgroup;
    Ok(config)
}

fn delete_response(pid: u32, status: u32, at: Option<SystemTime>) -> api::DeleteResponse {
    let mut r = api::DeleteResponse::new();
    r.pid = pid;
    r.exit_status = status;
    r.exited_at = at.map(timestamp).into();
    r
}

/// The ttrpc face of a [`Shim`].
pub struct TaskService(pub Arc<Shim>);

type TtrpcResult<T> = ttrpc::Result<T>;

#[async_trait::async_trait]
impl Task for TaskService {
    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        self.0.state(&req.id, &req.exec_id).await.map_err(to_ttrpc)
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let pid = self.0.create(req).await.map_err(to_ttrpc)?;
        let mut r = api::CreateTaskResponse::new();
        r.pid = pid;
        Ok(r)
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let pid = self
            .0
            .start(&req.id, &req.exec_id)
            .await
            .map_err(to_ttrpc)?;
        let mut r = api::StartResponse::new();
        r.pid = pid;
        Ok(r)
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        self.0.delete(&req.id, &req.exec_id).await.map_err(to_ttrpc)
    }

    async fn pids(
        &self,
        _: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        self.0.pids(&req.id).await.map_err(to_ttrpc)
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<Empty> {
        self.0
            .pause(&req.id, true)
            .await
            .map_err(to_ttrpc)
            .map(|_| Empty::new())
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<Empty> {
        self.0
            .pause(&req.id, false)
            .await
            .map_err(to_ttrpc)
            .map(|_| Empty::new())
    }

    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        _: api::CheckpointTaskRequest,
    ) -> TtrpcResult<Empty> {
        Err(to_ttrpc(Error::not_implemented(
            "checkpoint is not supported by containerd-shim-berth-v2: criu cannot dump on this host",
        )))
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<Empty> {
        self.0
            .kill(&req)
            .await
            .map_err(to_ttrpc)
            .map(|_| Empty::new())
    }

    async fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<Empty> {
        self.0
            .exec(req)
            .await
            .map_err(to_ttrpc)
            .map(|_| Empty::new())
    }

    async fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<Empty> {
        let c = self.0.container(&req.id).map_err(to_ttrpc)?;
        let p = c.process(&req.exec_id).map_err(to_ttrpc)?;
        let io = p.io.lock().await;
        io.resize(req.width, req.height)
            .map_err(|e| to_ttrpc(unknown(e)))?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<Empty> {
        let c = self.0.container(&req.id).map_err(to_ttrpc)?;
        let p = c.process(&req.exec_id).map_err(to_ttrpc)?;
        if req.stdin {
            p.io.lock().await.close_stdin();
        }
        Ok(Empty::new())
    }

    async fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.0
            .update(&req)
            .await
            .map_err(to_ttrpc)
            .map(|_| Empty::new())
    }

    async fn wait(
        &self,
        _: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        let c = self.0.container(&req.id).map_err(to_ttrpc)?;
        let p = c.process(&req.exec_id).map_err(to_ttrpc)?;
        let exit = p.wait().await;
        let mut r = api::WaitResponse::new();
        r.exit_status = exit.status;
        r.exited_at = Some(timestamp(exit.at)).into();
        Ok(r)
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let c = self.0.container(&req.id).map_err(to_ttrpc)?;
        let any = crate::stats::collect(c.init.pid()).map_err(|e| to_ttrpc(unknown(e)))?;
        let mut r = api::StatsResponse::new();
        r.stats = Some(any).into();
        Ok(r)
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let mut r = api::ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.0.container(&req.id).map(|c| c.init.pid()).unwrap_or(0);
        r.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(r)
    }

    async fn shutdown(&self, _: &TtrpcContext, req: api::ShutdownRequest) -> TtrpcResult<Empty> {
        self.0.finish_retiring().await;
        if req.now || lock(&self.0.containers).is_empty() {
            // Before the answer: a new shim of this id, started once the
            // daemon has it, must bind its own socket rather than find this
            // one still listening for the moments this shim has left.
            self.0.socket.remove();
            self.0.shutdown.notify_one();
        }
        Ok(Empty::new())
    }
}
