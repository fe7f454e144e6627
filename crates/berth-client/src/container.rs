//! Containers as objects: create one from an image or a directory, load it,
//! run tasks in it, delete it — containerd's `client.NewContainer` and
//! `Container`.
//!
//! [`Client::new_container`] does what containerd's `NewContainer` does
//! with `WithNewSnapshot`, `WithImageConfig` and friends: it reads the
//! image's manifest and config for the host platform, prepares the rootfs
//! snapshot (key: the container id) on the chain ID of the image's layers,
//! builds the OCI spec (`berth-oci`'s default spec, the image's env,
//! entrypoint, cmd, working directory and user, then the caller's
//! options), and writes the container record. All of it happens under a
//! short-lived lease, so garbage collection cannot take the new snapshot
//! before the record that references it exists; the lease goes once the
//! record is there.
//!
//! ```no_run
//! # async fn demo(client: berth_client::Client) -> berth_client::Result<()> {
//! use berth_client::cio::Io;
//! use berth_client::container::NewContainer;
//!
//! let container = client
//!     .new_container(
//!         "web",
//!         NewContainer::from_image("docker.io/library/busybox:latest")
//!             .args(["sleep", "30"])
//!             .env(["GREETING=hello"]),
//!     )
//!     .await?;
//! let task = container.new_task(Io::inherit()).await?;
//! let exit = task.wait().await?; // before start: the exit cannot be missed
//! task.start().await?;
//! task.kill(berth_client::task::SIGTERM, false).await?;
//! println!("exited with {}", exit.await?.code);
//! task.delete().await?;
//! container.delete(true).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::images::ImageStore;
use berth_core::mount::{Mount, TempMount};
use berth_core::snapshots::Snapshotter;
use berth_core::{Error, ErrorKind, Result};
use berth_image::{Descriptor, Matcher};
use berth_oci::opts;
use berth_oci::spec::Mount as SpecMount;
use berth_oci::Spec;
use prost_types::Any;

use crate::cio::{Attached, Io, IoConfig};
use crate::pb::services::v1::container::Runtime;
use crate::pb::services::v1::Container as Record;
use crate::pb::services::v1::CreateTaskRequest;
use crate::pb::types::Mount as WireMount;
use crate::spec::{self, SpecOpt};
use crate::task::Task;
use crate::Client;

/// The snapshotter containers use unless told otherwise (containerd's
/// default).
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// The runtime containers use unless told otherwise.
pub const DEFAULT_RUNTIME: &str = "io.containerd.runc.v2";
pub use crate::runc_options::RUNC_OPTIONS_TYPE_URL;

/// How long the lease protecting a container's creation may live if the
/// client dies before deleting it.
const CREATE_LEASE: Duration = Duration::from_secs(24 * 3600);

enum Source {
    Image(String),
    Rootfs(PathBuf),
}

/// What [`Client::new_container`] makes: the rootfs source, and the spec
/// and record options. Start with [`NewContainer::from_image`] or
/// [`NewContainer::from_rootfs`].
pub struct NewContainer {
    source: Source,
    snapshotter: String,
    args: Vec<String>,
    env: Vec<String>,
    mounts: Vec<SpecMount>,
    tty: bool,
    cwd: Option<String>,
    user: Option<String>,
    hostname: Option<String>,
    host_network: bool,
    network: Option<crate::network::NetworkConfig>,
    privileged: bool,
    readonly_rootfs: bool,
    memory_limit: Option<u64>,
    runtime: String,
    runtime_options: Option<Any>,
    labels: HashMap<String, String>,
    platform: Matcher,
    spec_opts: Vec<SpecOpt>,
}

impl std::fmt::Debug for NewContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Image(name) => format!("image {name}"),
            Source::Rootfs(path) => format!("rootfs {}", path.display()),
        };
        f.debug_struct("NewContainer")
            .field("source", &source)
            .field("snapshotter", &self.snapshotter)
            .field("args", &self.args)
            .field("runtime", &self.runtime)
            .field("spec_opts", &self.spec_opts.len())
            .finish_non_exhaustive()
    }
}

impl NewContainer {
    fn new(source: Source) -> NewContainer {
        NewContainer {
            source,
            snapshotter: DEFAULT_SNAPSHOTTER.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            tty: false,
            cwd: None,
            user: None,
            hostname: None,
            host_network: false,
            network: None,
            privileged: false,
            readonly_rootfs: false,
            memory_limit: None,
            runtime: DEFAULT_RUNTIME.to_string(),
            runtime_options: None,
            labels: HashMap::new(),
            platform: Matcher::host(),
            spec_opts: Vec::new(),
        }
    }

    /// A container on a new snapshot of image `name` (which must be
    /// unpacked for the snapshotter), configured by the image's config.
    pub fn from_image(name: impl Into<String>) -> NewContainer {
        NewContainer::new(Source::Image(name.into()))
    }

    /// A container whose root is the directory `path` as it is (no image,
    /// no snapshot), like `ctr run --rootfs`.
    pub fn from_rootfs(path: impl Into<PathBuf>) -> NewContainer {
        NewContainer::new(Source::Rootfs(path.into()))
    }

    /// The snapshotter for the rootfs (default: [`DEFAULT_SNAPSHOTTER`]).
    pub fn snapshotter(mut self, name: impl Into<String>) -> Self {
        self.snapshotter = name.into();
        self
    }

    /// The command, replacing the image's cmd (its entrypoint stays).
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// `KEY=value` entries added after the image's (a bare `KEY` unsets).
    pub fn env<I: IntoIterator<Item = S>, S: Into<String>>(mut self, env: I) -> Self {
        self.env.extend(env.into_iter().map(Into::into));
        self
    }

    /// An extra mount (replacing a default one on the same destination).
    pub fn mount(mut self, mount: SpecMount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Gives the process a terminal (and `TERM=xterm`).
    pub fn tty(mut self, tty: bool) -> Self {
        self.tty = tty;
        self
    }

    /// The working directory, replacing the image's.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// The user (`name`, `uid`, `name:group`, `uid:gid`), resolved in the
    /// rootfs, replacing the image's.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The hostname.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Shares the host's network namespace (and its hosts and DNS files).
    pub fn host_network(mut self, host: bool) -> Self {
        self.host_network = host;
        self
    }

    /// The container's network: none (the default: a namespace with only
    /// loopback), the host's, or a CNI network that berthd attaches at task
    /// create, with published ports and name servers; see
    /// [`crate::network`].
    pub fn network(mut self, network: crate::network::NetworkConfig) -> Self {
        if network.mode == crate::network::NetworkMode::Host {
            self.host_network = true;
        }
        self.network = Some(network);
        self
    }

    /// Every capability, every device, nothing masked.
    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// Mounts the rootfs read-only.
    pub fn readonly_rootfs(mut self, readonly: bool) -> Self {
        self.readonly_rootfs = readonly;
        self
    }

    /// A memory limit in bytes.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The runtime (default: [`DEFAULT_RUNTIME`]).
    pub fn runtime(mut self, name: impl Into<String>) -> Self {
        self.runtime = name.into();
        self
    }

    /// The runtime's options, as the shim expects them.
    pub fn runtime_options(mut self, options: Any) -> Self {
        self.runtime_options = Some(options);
        self
    }

    /// The OCI runtime binary the runc shim runs (`ctr run
    /// --runc-binary`): runtime options naming it.
    pub fn runc_binary(self, binary: impl Into<String>) -> Self {
        let options = crate::runc_options::RuncOptions::binary(binary).to_any();
        self.runtime_options(options)
    }

    /// A label on the container record.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The image platforms to choose from (default: the host's).
    pub fn platform(mut self, matcher: Matcher) -> Self {
        self.platform = matcher;
        self
    }

    /// Any other change to the spec, applied last.
    pub fn spec_opt(mut self, opt: impl FnOnce(&mut Spec) -> Result<()> + Send + 'static) -> Self {
        self.spec_opts.push(Box::new(opt));
        self
    }

    /// Applies everything but the image config and the root to `spec`.
    fn apply(&mut self, spec: &mut Spec, rootfs: Option<&Path>) -> Result<()> {
        opts::with_env(spec, &self.env);
        if let Some(cwd) = &self.cwd {
            opts::with_cwd(spec, cwd);
        }
        if let Some(user) = &self.user {
            let root = rootfs.unwrap_or(Path::new("/nonexistent"));
            opts::with_user(spec, root, user)?;
        }
        if self.tty {
            opts::with_tty(spec);
        }
        if let Some(hostname) = &self.hostname {
            opts::with_hostname(spec, hostname);
        }
        if self.host_network {
            opts::with_host_network(spec);
        }
        if self.privileged {
            opts::with_privileged(spec);
        }
        if let Some(bytes) = self.memory_limit {
            opts::with_memory_limit(spec, bytes);
        }
        opts::with_mounts(spec, &self.mounts);
        for opt in self.spec_opts.drain(..) {
            opt(spec)?;
        }
        Ok(())
    }
}

/// A container record in the daemon, and the client to act on it with.
#[derive(Clone, Debug)]
pub struct Container {
    client: Client,
    id: String,
}

impl Client {
    /// Creates container `id` as `new` says; see the [module docs](self).
    ///
    /// Fails with `FailedPrecondition` when the image is not unpacked for
    /// the snapshotter, `AlreadyExists` when the id (or its snapshot) is
    /// taken, `NotFound` when the image does not exist.
    pub async fn new_container(&self, id: &str, mut new: NewContainer) -> Result<Container> {
        berth_core::identifiers::validate(id)?;
        let (leased, lease) = self.with_new_lease(CREATE_LEASE).await?;
        let created = leased.create_container(id, &mut new).await;
        // The record (or nothing) now holds the snapshot; the lease goes
        // either way.
        let released = self.leases().delete(&lease, false).await;
        let container = created?;
        released.map_err(|e| e.context(format!("delete lease {lease}")))?;
        Ok(container)
    }

    /// The handle of existing container `id`; `NotFound` if there is none.
    pub async fn load_container(&self, id: &str) -> Result<Container> {
        self.containers().get(id).await?;
        Ok(Container {
            client: self.clone(),
            id: id.to_string(),
        })
    }

    async fn create_container(&self, id: &str, new: &mut NewContainer) -> Result<Container> {
        let namespace = self.namespace().to_string();
        let mut spec = berth_oci::default_spec(&namespace, id);
        let mut labels = std::mem::take(&mut new.labels);
        if let Some(network) = &new.network {
            labels.extend(network.labels()?);
        }
        let mut record = Record {
            id: id.to_string(),
            labels,
            runtime: Some(Runtime {
                name: new.runtime.clone(),
                options: new.runtime_options.clone(),
            }),
            ..Record::default()
        };
        match &new.source {
            Source::Rootfs(path) => {
                let path = std::path::absolute(path)?;
                opts::with_root(&mut spec, &path.to_string_lossy(), new.readonly_rootfs);
                opts::with_default_path_env(&mut spec);
                opts::with_args(&mut spec, &new.args);
                new.apply(&mut spec, Some(&path))?;
                record.spec = Some(spec::to_any(&spec));
                let record = self.containers().create(record).await?;
                return Ok(self.container_handle(record.id));
            }
            Source::Image(name) => record.image = name.clone(),
        }
        let image = self.images().get(&record.image).await?;
        let target = Descriptor::from_core(&image.target);
        let info = spec::image_config(&self.content(), &target, &new.platform).await?;
        let snapshotter = self.snapshotter(new.snapshotter.clone());
        let parent = match &info.chain_id {
            Some(chain) => {
                let parent = chain.to_string();
                if let Err(err) = snapshotter.stat(&parent).await {
                    if err.kind() != ErrorKind::NotFound {
                        return Err(err);
                    }
                    return Err(Error::failed_precondition(format!(
                        "image {:?} is not unpacked for snapshotter {:?} \
                         (snapshot {parent} not found)",
                        record.image, new.snapshotter
                    )));
                }
                parent
            }
            None => String::new(),
        };
        let mounts = snapshotter.prepare(id, &parent, HashMap::new()).await?;
        let built = async {
            opts::with_root(&mut spec, "rootfs", new.readonly_rootfs);
            let user = new.user.clone().unwrap_or_else(|| info.config.user.clone());
            // Users given by name are looked up in the rootfs itself, as
            // containerd's `WithUser` does through a temporary mount.
            let root = if spec::needs_rootfs(&user) {
                Some(mount_rootfs(&mounts).await?)
            } else {
                None
            };
            let root_path = root.as_ref().map(|r| r.path().to_path_buf());
            let fallback = PathBuf::from("/nonexistent");
            let rootfs = root_path.as_deref().unwrap_or(&fallback);
            let applied = opts::with_image_config(&mut spec, rootfs, &info.config, &new.args)
                .and_then(|()| new.apply(&mut spec, Some(rootfs)));
            if let Some(root) = root {
                unmount_rootfs(root).await?;
            }
            applied?;
            record.snapshotter = new.snapshotter.clone();
            record.snapshot_key = id.to_string();
            record.spec = Some(spec::to_any(&spec));
            self.containers().create(record).await
        };
        match built.await {
            Ok(record) => Ok(self.container_handle(record.id)),
            Err(err) => {
                if let Err(cleanup) = snapshotter.remove(id).await {
                    return Err(
                        err.context(format!("(and removing snapshot {id} failed: {cleanup})"))
                    );
                }
                Err(err)
            }
        }
    }

    fn container_handle(&self, id: String) -> Container {
        Container {
            client: self.with_lease(None),
            id,
        }
    }
}

async fn mount_rootfs(mounts: &[Mount]) -> Result<TempMount> {
    let mounts = mounts.to_vec();
    tokio::task::spawn_blocking(move || TempMount::new(&mounts, &std::env::temp_dir()))
        .await
        .map_err(|e| Error::internal(format!("mount rootfs: {e}")))?
}

async fn unmount_rootfs(root: TempMount) -> Result<()> {
    tokio::task::spawn_blocking(move || root.unmount())
        .await
        .map_err(|e| Error::internal(format!("unmount rootfs: {e}")))?
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The container's record as the daemon has it now.
    pub async fn info(&self) -> Result<Record> {
        self.client.containers().get(&self.id).await
    }

    /// The container's OCI spec.
    pub async fn spec(&self) -> Result<Spec> {
        let record = self.info().await?;
        let any = record
            .spec
            .ok_or_else(|| Error::not_found(format!("spec for container {:?}", self.id)))?;
        spec::from_any(&any)
    }

    /// Deletes the container record and, with `with_snapshot`, its rootfs
    /// snapshot (`WithSnapshotCleanup`). Its task must be gone
    /// (`FailedPrecondition` otherwise, as containerd answers).
    pub async fn delete(&self, with_snapshot: bool) -> Result<()> {
        let record = self.info().await?;
        match self.client.tasks().get(&self.id).await {
            Ok(_) => {
                return Err(Error::failed_precondition(format!(
                    "cannot delete running task {}",
                    self.id
                )))
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        if with_snapshot && !record.snapshot_key.is_empty() {
            if record.snapshotter.is_empty() {
                return Err(Error::invalid_argument(
                    "container.Snapshotter must be set to cleanup rootfs snapshot",
                ));
            }
            match self
                .client
                .snapshots()
                .remove(&record.snapshotter, &record.snapshot_key)
                .await
            {
                Err(err) if err.kind() != ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        self.client.containers().delete(&self.id).await
    }

    /// Creates the container's task with `io` as its stdio (it does not
    /// start it): the rootfs mounts come from the container's snapshot,
    /// the runtime and spec from its record.
    pub async fn new_task(&self, io: Io) -> Result<Task> {
        let record = self.info().await?;
        let rootfs = if record.snapshot_key.is_empty() {
            Vec::new()
        } else {
            self.client
                .snapshotter(record.snapshotter.clone())
                .mounts(&record.snapshot_key)
                .await?
                .into_iter()
                .map(wire_mount)
                .collect()
        };
        let mut attached = io.create(&self.id).await?;
        let config = attached.config.clone();
        let request = CreateTaskRequest {
            container_id: self.id.clone(),
            rootfs,
            stdin: config.stdin,
            stdout: config.stdout,
            stderr: config.stderr,
            terminal: config.terminal,
            ..CreateTaskRequest::default()
        };
        match self.client.tasks().create(request).await {
            Ok(pid) => Ok(Task::new(self.client.clone(), &self.id, pid, attached)),
            Err(err) => {
                attached.cancel();
                attached.remove_fifos().await;
                Err(err)
            }
        }
    }

    /// The container's existing task (`NotFound` if it has none). With
    /// `attach`, the task's FIFOs are opened and copied as `attach` says
    /// (`cio.NewAttach`); without, nothing is copied, but deleting the
    /// task still removes its FIFOs (`cio.Load`).
    pub async fn task(&self, attach: Option<Io>) -> Result<Task> {
        let process = self.client.tasks().get(&self.id).await?;
        let config = IoConfig {
            stdin: process.stdin.clone(),
            stdout: process.stdout.clone(),
            stderr: process.stderr.clone(),
            terminal: process.terminal,
        };
        let attached = match attach {
            Some(io) => io.attach(config)?,
            None => Attached::loaded(config),
        };
        Ok(Task::new(
            self.client.clone(),
            &self.id,
            process.pid,
            attached,
        ))
    }
}

fn wire_mount(m: Mount) -> WireMount {
    WireMount {
        r#type: m.mount_type,
        source: m.source,
        target: m.target,
        options: m.options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_shape_the_spec() {
        let mut new = NewContainer::from_rootfs("/r")
            .env(["A=1"])
            .cwd("/w")
            .user("5:6")
            .tty(true)
            .hostname("h")
            .memory_limit(1 << 20)
            .mount(SpecMount {
                destination: "/data".into(),
                kind: "bind".into(),
                source: "/src".into(),
                options: vec!["rbind".into()],
            })
            .spec_opt(|spec| {
                spec.annotations.insert("k".into(), "v".into());
                Ok(())
            });
        let mut spec = berth_oci::default_spec("default", "c");
        new.apply(&mut spec, None).expect("apply");
        let process = spec.process.as_ref().expect("process");
        assert!(process.env.contains(&"A=1".to_string()));
        assert!(process.terminal);
        assert_eq!(process.cwd, "/w");
        assert_eq!((process.user.uid, process.user.gid), (5, 6));
        assert_eq!(spec.hostname, "h");
        assert!(spec.mounts.iter().any(|m| m.destination == "/data"));
        assert_eq!(spec.annotations.get("k").map(String::as_str), Some("v"));
    }
}
