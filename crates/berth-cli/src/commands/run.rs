//! `berth run`: create a container from an image (or a directory) and run
//! it, as `ctr run` does.
//!
//! In the foreground the task's stdio is this process's (through FIFOs),
//! signals sent to berth are forwarded to the task (with `-t` the terminal
//! is put in raw mode instead, and resized along with the local one), and
//! berth exits with the container's exit code. `-d` starts the task and
//! returns at once; its FIFOs stay until the task is deleted.

use std::path::PathBuf;
use std::pin::pin;

use anyhow::{anyhow, bail, Context as _};
use berth_client::berth_oci::spec::Mount;
use berth_client::cio::{Io, DEFAULT_FIFO_DIR};
use berth_client::container::{Container, NewContainer};
use berth_client::network::{NetworkConfig, NetworkMode, PortMapping};
use berth_client::task::{ExitStatus, ExitWaiter, Process, Task};
use rustix::termios::{self, OptionalActions, Termios};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::{Context, Exit};

/// `run` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the container (and its snapshot) after it exits
    #[arg(long)]
    rm: bool,
    /// Start the task and return without waiting for it
    #[arg(short, long)]
    detach: bool,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    tty: bool,
    /// Use the first argument as a root directory instead of an image
    #[arg(long)]
    rootfs: bool,
    /// Environment variables, KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Labels on the container, KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Mounts, type=bind,src=/host,dst=/container,options=rbind:ro
    #[arg(long, value_name = "SPEC", value_parser = parse_mount)]
    mount: Vec<Mount>,
    /// Share the host's network namespace
    #[arg(long)]
    net_host: bool,
    /// The network: none, host, cni or cni:NAME (berthd attaches the CNI
    /// network between task create and start)
    #[arg(long, value_name = "MODE")]
    net: Option<NetworkMode>,
    /// Attach the default CNI network (ctr's spelling of --net cni)
    #[arg(long)]
    cni: bool,
    /// Publish a port through CNI's portmap: [IP:]HOST:CONTAINER[/tcp|udp]
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    publish: Vec<PortMapping>,
    /// A name server for the container's /etc/resolv.conf (CNI networks)
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// Run privileged
    #[arg(long)]
    privileged: bool,
    /// Mount the rootfs read-only
    #[arg(long)]
    read_only: bool,
    /// The runtime
    #[arg(long, default_value = berth_client::container::DEFAULT_RUNTIME)]
    runtime: String,
    /// The OCI runtime binary the runc shim runs (e.g. crun)
    #[arg(long, value_name = "BINARY")]
    runc_binary: Option<String>,
    /// Memory limit in bytes
    #[arg(long, value_name = "BYTES")]
    memory_limit: Option<u64>,
    /// The working directory
    #[arg(long)]
    cwd: Option<String>,
    /// The user (name, uid, name:group or uid:gid)
    #[arg(short, long)]
    user: Option<String>,
    /// The hostname
    #[arg(long)]
    hostname: Option<String>,
    /// The snapshotter
    #[arg(long, default_value = berth_client::container::DEFAULT_SNAPSHOTTER)]
    snapshotter: String,
    /// Send the task's output nowhere
    #[arg(long)]
    null_io: bool,
    /// Send stdout and stderr to this file URI (file:///path)
    #[arg(long, value_name = "URI")]
    log_uri: Option<String>,
    /// Where the stdio FIFOs are made
    #[arg(long, default_value = DEFAULT_FIFO_DIR)]
    fifo_dir: PathBuf,
    /// The image (or, with --rootfs, the root directory)
    #[arg(value_name = "IMAGE|ROOTFS")]
    source: String,
    /// The container's id
    id: String,
    /// The command and its arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// A `--mount` value as ctr takes it: `type=T,src=S,dst=D,options=a:b`.
fn parse_mount(text: &str) -> Result<Mount, String> {
    let mut mount = Mount::default();
    for field in text.split(',') {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("mount {text:?}: {field:?} is not KEY=VALUE"))?;
        match key {
            "type" => mount.kind = value.to_string(),
            "source" | "src" => mount.source = value.to_string(),
            "destination" | "dst" => mount.destination = value.to_string(),
            "options" => mount.options = value.split(':').map(String::from).collect(),
            other => return Err(format!("mount {text:?}: unknown key {other:?}")),
        }
    }
    if mount.destination.is_empty() {
        return Err(format!("mount {text:?}: no destination"));
    }
    Ok(mount)
}

/// The network the flags ask for; `None` when they say nothing.
fn network(args: &Args) -> anyhow::Result<Option<NetworkConfig>> {
    let mut mode = args.net.clone();
    for (flag, implied) in [
        (args.cni, NetworkMode::Cni(None)),
        (args.net_host, NetworkMode::Host),
    ] {
        if !flag {
            continue;
        }
        match &mode {
            Some(m)
                if *m != implied
                    && !(implied == NetworkMode::Cni(None) && matches!(m, NetworkMode::Cni(_))) =>
            {
                bail!("--cni, --net-host and --net {m} conflict")
            }
            Some(_) => {}
            None => mode = Some(implied),
        }
    }
    let wants_cni = !args.publish.is_empty() || !args.dns.is_empty();
    let mode = match mode {
        // Plain --net-host stays as it was: a spec option, no network label.
        Some(NetworkMode::Host) if args.net.is_none() && !wants_cni => return Ok(None),
        Some(mode) => mode,
        None if wants_cni => bail!("-p/--publish and --dns need --net cni (or --cni)"),
        None => return Ok(None),
    };
    let config = NetworkConfig {
        mode,
        ports: args.publish.clone(),
        dns: args.dns.clone(),
    };
    config.labels()?;
    Ok(Some(config))
}

/// What the container is made of and how.
fn new_container(args: &Args) -> NewContainer {
    let mut new = if args.rootfs {
        NewContainer::from_rootfs(&args.source)
    } else {
        NewContainer::from_image(args.source.as_str()).snapshotter(args.snapshotter.as_str())
    };
    if !args.command.is_empty() {
        new = new.args(args.command.iter().cloned());
    }
    new = new
        .env(args.env.iter().cloned())
        .tty(args.tty)
        .host_network(args.net_host)
        .privileged(args.privileged)
        .readonly_rootfs(args.read_only)
        .runtime(args.runtime.as_str());
    for (key, value) in crate::args::labels(&args.label) {
        new = new.label(key, value);
    }
    for mount in &args.mount {
        new = new.mount(mount.clone());
    }
    if let Some(binary) = &args.runc_binary {
        new = new.runc_binary(binary.as_str());
    }
    if let Some(bytes) = args.memory_limit {
        new = new.memory_limit(bytes);
    }
    if let Some(cwd) = &args.cwd {
        new = new.cwd(cwd.as_str());
    }
    if let Some(user) = &args.user {
        new = new.user(user.as_str());
    }
    if let Some(hostname) = &args.hostname {
        new = new.hostname(hostname.as_str());
    }
    if let Ok(Some(network)) = network(args) {
        new = new.network(network);
    }
    new
}

/// The stdio of a task or exec as ctr's flags choose it.
pub fn stdio(
    null_io: bool,
    log_uri: Option<&str>,
    detach: bool,
    tty: bool,
    fifo_dir: &PathBuf,
) -> anyhow::Result<Io> {
    let io = if null_io {
        Io::null()
    } else if let Some(uri) = log_uri {
        let path = uri
            .strip_prefix("file://")
            .ok_or_else(|| anyhow!("log URI {uri:?}: only file:// URIs are supported"))?;
        Io::log_file(path)
    } else if detach {
        Io::fifos()
    } else {
        Io::inherit()
    };
    Ok(io.terminal(tty).fifo_dir(fifo_dir))
}

/// Runs `berth run`.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    if args.detach && args.rm {
        bail!("flags --detach and --rm cannot be specified together");
    }
    network(&args)?;
    let client = ctx.connect().await?;
    let container = client.new_container(&args.id, new_container(&args)).await?;
    let result = run_task(&container, &args).await;
    if args.rm && !args.detach {
        let deleted = container
            .delete(true)
            .await
            .with_context(|| format!("delete container {}", args.id));
        if result.is_ok() {
            deleted?;
        }
    }
    match result? {
        Some(status) if status.code != 0 => Err(Exit(status.code).into()),
        _ => Ok(()),
    }
}

async fn run_task(container: &Container, args: &Args) -> anyhow::Result<Option<ExitStatus>> {
    let io = stdio(
        args.null_io,
        args.log_uri.as_deref(),
        args.detach,
        args.tty,
        &args.fifo_dir,
    )?;
    let task = container.new_task(io).await?;
    if args.detach {
        task.start().await?;
        return Ok(None);
    }
    let status = foreground(&task, args.tty).await;
    let deleted = task.delete().await;
    let status = status?;
    deleted?;
    Ok(Some(status))
}

/// Something to start, signal, resize and wait for: a task or an exec.
pub(crate) trait Foreground {
    /// Starts waiting for the exit.
    async fn waiter(&self) -> berth_client::Result<ExitWaiter>;
    /// Starts the process.
    async fn begin(&self) -> berth_client::Result<u32>;
    /// Sends a signal.
    async fn signal(&self, signal: u32) -> berth_client::Result<()>;
    /// Resizes the terminal.
    async fn size(&self, width: u32, height: u32) -> berth_client::Result<()>;
}

impl Foreground for Task {
    async fn waiter(&self) -> berth_client::Result<ExitWaiter> {
        self.wait().await
    }
    async fn begin(&self) -> berth_client::Result<u32> {
        self.start().await
    }
    async fn signal(&self, signal: u32) -> berth_client::Result<()> {
        self.kill(signal, false).await
    }
    async fn size(&self, width: u32, height: u32) -> berth_client::Result<()> {
        self.resize(width, height).await
    }
}

impl Foreground for Process {
    async fn waiter(&self) -> berth_client::Result<ExitWaiter> {
        self.wait().await
    }
    async fn begin(&self) -> berth_client::Result<u32> {
        self.start().await
    }
    async fn signal(&self, signal: u32) -> berth_client::Result<()> {
        self.kill(signal).await
    }
    async fn size(&self, width: u32, height: u32) -> berth_client::Result<()> {
        self.resize(width, height).await
    }
}

/// Starts `process` and follows it to its exit.
pub(crate) async fn foreground(process: &impl Foreground, tty: bool) -> anyhow::Result<ExitStatus> {
    let exit = process.waiter().await?;
    // Listen before starting: a signal that arrives as soon as the process
    // runs is forwarded, not taken by berth's default action.
    let signals = Signals::new(tty)?;
    process.begin().await?;
    follow(process, exit, tty, signals).await
}

/// Follows a started process to its exit: with a terminal, raw mode and
/// resizes; without, signals forwarded.
pub(crate) async fn follow(
    process: &impl Foreground,
    exit: ExitWaiter,
    tty: bool,
    mut signals: Signals,
) -> anyhow::Result<ExitStatus> {
    let raw = if tty { RawMode::enter() } else { None };
    if tty {
        resize(process).await;
    }
    let mut exit = pin!(exit);
    let status = loop {
        tokio::select! {
            status = &mut exit => break status?,
            Some(signal) = signals.next() => {
                if signal == libc_sigwinch() {
                    resize(process).await;
                } else {
                    // A process that has just exited cannot be signalled:
                    // the exit arrives next.
                    let _ = process.signal(signal).await;
                }
            }
        }
    };
    drop(raw);
    Ok(status)
}

/// Sends the local terminal's size to the process.
async fn resize(process: &impl Foreground) {
    if let Ok(size) = termios::tcgetwinsize(std::io::stdin()) {
        if size.ws_col > 0 && size.ws_row > 0 {
            let _ = process
                .size(u32::from(size.ws_col), u32::from(size.ws_row))
                .await;
        }
    }
}

fn libc_sigwinch() -> u32 {
    SignalKind::window_change().as_raw_value() as u32
}

/// The signals berth forwards (or, with a terminal, SIGWINCH alone: the
/// terminal itself turns ^C into input).
pub(crate) struct Signals {
    rx: mpsc::UnboundedReceiver<u32>,
}

impl Signals {
    /// Starts listening; signals are queued until [`follow`] takes them.
    pub(crate) fn new(tty: bool) -> anyhow::Result<Signals> {
        let kinds = if tty {
            vec![SignalKind::window_change()]
        } else {
            vec![
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
                SignalKind::quit(),
                SignalKind::user_defined1(),
                SignalKind::user_defined2(),
            ]
        };
        let (tx, rx) = mpsc::unbounded_channel();
        for kind in kinds {
            let mut stream = signal(kind).context("listen for signals")?;
            let tx = tx.clone();
            let number = kind.as_raw_value() as u32;
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(number).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Signals { rx })
    }

    async fn next(&mut self) -> Option<u32> {
        self.rx.recv().await
    }
}

/// The local terminal in raw mode, restored when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, if it is a terminal.
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !termios::isatty(&stdin) {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_like_ctr() {
        let m = parse_mount("type=bind,src=/a,dst=/b,options=rbind:ro").expect("mount");
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.destination.as_str()),
            ("bind", "/a", "/b")
        );
        assert_eq!(m.options, vec!["rbind", "ro"]);
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=bind,dst=/b,bogus=1").is_err());
        assert!(parse_mount("dst").is_err());
    }

    #[test]
    fn stdio_follows_the_flags() {
        let dir = PathBuf::from("/tmp/f");
        assert!(
            format!("{:?}", stdio(true, None, false, false, &dir).expect("io")).contains("null")
        );
        assert!(
            format!("{:?}", stdio(false, None, true, false, &dir).expect("io")).contains("fifos")
        );
        assert!(
            format!("{:?}", stdio(false, None, false, true, &dir).expect("io")).contains("inherit")
        );
        assert!(stdio(false, Some("binary:///x"), false, false, &dir).is_err());
    }
}
