//! A worker: the container lifecycle in a loop, with pulls and garbage
//! collection interleaved.
//!
//! Each round is one of
//! - **lifecycle** (most rounds): create a container from the busybox image,
//!   create and start its task, exec `echo` in it through FIFOs, kill it,
//!   wait for the exit, delete the task and the container with its snapshot;
//! - **churn**: pull the churn image under the worker's own name, create a
//!   container on it (no task), delete the container and then the image with
//!   `sync`, so the daemon collects the image's content and snapshots
//!   before answering;
//! - **lease**: create a lease, re-pull the busybox image under it, delete
//!   the lease with `sync` (another collection).
//!
//! The chaos loop makes any step fail at any time. A failed round is
//! counted, and what it made is cleaned up through the API (retrying while
//! the daemon is away) before the next round starts, as a careful client
//! would; what even that cannot remove is left for the final checks.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_client::berth_core::images::ImageStore;
use berth_client::cio::Io;
use berth_client::container::{Container, NewContainer};
use berth_client::pb::types::v1::Status;
use berth_client::task::SIGKILL;
use berth_client::transfer::{PullOptions, RegistryOptions};
use berth_client::{Client, ErrorKind};
use tokio::io::AsyncReadExt;
use tokio::time::{sleep, timeout};

use crate::fixture::Images;
use crate::rng::Rng;
use crate::stats::Stats;

/// The label on every lease the soak makes itself.
pub const LEASE_LABEL: &str = "berth.soak";
/// A round taking longer than this is a hang, which the soak reports.
const ROUND_TIMEOUT: Duration = Duration::from_secs(180);
/// The deadline of each API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    pub address: PathBuf,
    pub namespace: String,
    pub images: Images,
    pub fifo_dir: PathBuf,
    pub stats: Arc<Stats>,
    pub stop: AtomicBool,
}

/// A client for the soak's namespace with per-call deadlines.
pub async fn connect(shared: &Shared) -> berth_client::Result<Client> {
    Client::builder(shared.address.to_string_lossy())
        .namespace(shared.namespace.as_str())
        .timeout(Some(CALL_TIMEOUT))
        .connect_timeout(Some(Duration::from_secs(5)))
        .connect()
        .await
}

/// Runs rounds until `shared.stop` is set.
pub async fn run(shared: Arc<Shared>, worker: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ (worker as u64 + 1).wrapping_mul(0x1234_5678_9abc));
    let mut round = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        round += 1;
        let client = match connect(&shared).await {
            Ok(client) => client,
            Err(err) => {
                shared.stats.error("connect", &err);
                sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let id = format!("w{worker}-{round}");
        let w = Round {
            shared: &shared,
            client: &client,
            id: &id,
            worker,
        };
        let (what, result) = match rng.below(10) {
            0 => ("churn", timeout(ROUND_TIMEOUT, w.churn()).await),
            1 => ("lease", timeout(ROUND_TIMEOUT, w.lease()).await),
            _ => ("lifecycle", timeout(ROUND_TIMEOUT, w.lifecycle()).await),
        };
        match result {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => shared.stats.error(what, &format!("{err:#}")),
            Err(_) => shared.stats.failure(format!(
                "{what} round of {id} hung for more than {ROUND_TIMEOUT:?}"
            )),
        }
        w.clean_up().await;
    }
}

struct Round<'a> {
    shared: &'a Shared,
    client: &'a Client,
    id: &'a str,
    worker: usize,
}

impl Round<'_> {
    /// Awaits one API call, counting it if it succeeds.
    async fn op<T>(
        &self,
        what: &str,
        call: impl Future<Output = berth_client::Result<T>>,
    ) -> Result<T> {
        let value = call.await.with_context(|| format!("{what} {}", self.id))?;
        self.shared.stats.op();
        Ok(value)
    }

    async fn lifecycle(&self) -> Result<()> {
        let new = NewContainer::from_image(self.shared.images.base.as_str()).args(["sleep", "600"]);
        let container = self
            .op("create container", self.client.new_container(self.id, new))
            .await?;
        let task = self
            .op("create task", container.new_task(Io::null()))
            .await?;
        let exit = self.op("wait", task.wait()).await?;
        self.op("start", task.start()).await?;
        self.exec(&container, &task).await?;
        self.op("kill", task.kill(SIGKILL, false)).await?;
        let status = self.op("exit", exit).await?;
        if status.code != 128 + 9 {
            bail!("task {} exited with {} after SIGKILL", self.id, status.code);
        }
        self.op("delete task", task.delete()).await?;
        self.op("delete container", container.delete(true)).await?;
        Ok(())
    }

    async fn exec(&self, container: &Container, task: &berth_client::task::Task) -> Result<()> {
        let mut spec = self
            .op("spec", container.spec())
            .await?
            .process
            .context("the spec has no process")?;
        spec.args = vec!["echo".into(), "soak".into()];
        let io = Io::fifos().stdin(false).fifo_dir(self.fifo_dir());
        let exec = self.op("exec", task.exec("echo", spec, io)).await?;
        // Every FIFO end stays open until the process is done.
        let mut streams = exec.take_streams().context("exec streams")?;
        let exit = self.op("wait exec", exec.wait()).await?;
        self.op("start exec", exec.start()).await?;
        let mut out = String::new();
        if let Some(stdout) = streams.stdout.as_mut() {
            stdout.read_to_string(&mut out).await.context("read exec")?;
        }
        let status = self.op("exec exit", exit).await?;
        drop(streams);
        self.op("delete exec", exec.delete()).await?;
        // The client removed its FIFOs with the exec: the round's directory
        // must be empty (a FIFO left in it stays for the leak check).
        let _ = std::fs::remove_dir(self.fifo_dir());
        if status.code != 0 || out != "soak\n" {
            bail!("exec in {} exited {} with {out:?}", self.id, status.code);
        }
        Ok(())
    }

    /// The round's own FIFO directory. A client whose round failed cannot
    /// delete its exec (the handle is gone), so it removes this directory
    /// instead, as containerd's Go client closes a process's IO.
    fn fifo_dir(&self) -> PathBuf {
        self.shared.fifo_dir.join(self.id)
    }

    /// The image name this worker pulls the churn image under.
    fn churn_name(&self) -> String {
        format!("localhost/soak/churn-w{}:latest", self.worker)
    }

    async fn churn(&self) -> Result<()> {
        let name = self.churn_name();
        let options = PullOptions {
            name: Some(name.clone()),
            ..PullOptions::default()
        };
        let registry = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        let transfer = self.client.transfer();
        let pull = transfer.pull(&self.shared.images.churn, &registry, &options, None);
        self.op("pull churn", pull).await?;
        let new = NewContainer::from_image(name.as_str()).args(["true"]);
        let container = self
            .op(
                "create churn container",
                self.client.new_container(self.id, new),
            )
            .await?;
        self.op("delete churn container", container.delete(true))
            .await?;
        let images = self.client.images();
        self.op("delete churn image", images.delete(&name, true))
            .await?;
        Ok(())
    }

    async fn lease(&self) -> Result<()> {
        let labels = HashMap::from([(LEASE_LABEL.to_string(), self.id.to_string())]);
        let lease = self
            .op("create lease", self.client.leases().create(self.id, labels))
            .await?;
        let leased = self.client.with_lease(Some(lease.id.clone()));
        let registry = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        let transfer = leased.transfer();
        let options = PullOptions::default();
        let pull = transfer.pull(&self.shared.images.base, &registry, &options, None);
        self.op("pull under lease", pull).await?;
        self.op("delete lease", self.client.leases().delete(&lease.id, true))
            .await?;
        Ok(())
    }

    /// Removes what a failed round may have left, through the API, retrying
    /// while the daemon restarts. Gives up after a while: the final checks
    /// clean up (and count) whatever remains.
    async fn clean_up(&self) {
        for _ in 0..10 {
            if self.shared.stop.load(Ordering::Relaxed) {
                return;
            }
            match self.try_clean_up().await {
                Ok(()) => return,
                Err(err) => self.shared.stats.error("clean up", &format!("{err:#}")),
            }
            sleep(Duration::from_secs(1)).await;
        }
    }

    async fn try_clean_up(&self) -> Result<()> {
        let client = connect(self.shared).await?;
        remove_container(&client, self.id).await?;
        let _ = std::fs::remove_dir_all(self.fifo_dir());
        if let Err(err) = client.leases().delete(self.id, false).await {
            if err.kind() != ErrorKind::NotFound {
                return Err(err.into());
            }
        }
        Ok(())
    }
}

/// Kills and deletes the task of container `id` if it has one, then deletes
/// the container and its snapshot. Missing pieces are fine.
pub async fn remove_container(client: &Client, id: &str) -> Result<()> {
    let tasks = client.tasks();
    match tasks.get(id).await {
        Ok(process) => {
            if process.status != Status::Stopped as i32 {
                tolerate_not_found(tasks.kill(id, "", SIGKILL, true).await)?;
                wait_stopped(client, id).await?;
            }
            tolerate_not_found(tasks.delete(id).await.map(drop))?;
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    match client.load_container(id).await {
        Ok(container) => tolerate_not_found(container.delete(true).await)?,
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

async fn wait_stopped(client: &Client, id: &str) -> Result<()> {
    for _ in 0..100 {
        match client.tasks().get(id).await {
            Ok(p) if p.status == Status::Stopped as i32 => return Ok(()),
            Ok(_) => sleep(Duration::from_millis(100)).await,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
    bail!("task {id} did not stop within 10 s of SIGKILL")
}

fn tolerate_not_found(result: berth_client::Result<()>) -> Result<()> {
    match result {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}
