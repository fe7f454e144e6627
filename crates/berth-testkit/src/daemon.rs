//! A private `berthd` per test.
//!
//! Everything the daemon owns lives in one temporary directory:
//!
//! ```text
//! DIR/berth.sock     --address (the gRPC socket)
//! DIR/root/          --root
//! DIR/state/         --state
//! DIR/config.toml    --config: the builder's contents, or by default a
//!                    containerd 1.x config.toml (see [`default_config`])
//! DIR/opt/           the opt plugin's directory in the default config
//! DIR/berthd.log     stdout and stderr of every start, appended
//! ```
//!
//! [`Daemon`] is a guard: dropping it kills the process, kills the shims
//! started for its socket and the container processes below them (see
//! [`crate::kill_shims_of`]), unmounts whatever is still mounted below the
//! directory and removes it. If the thread is
//! panicking (a failed assertion), the daemon log is printed first, as
//! containerd's `DumpDirOnFailure` does for its temp trees. Set
//! `BERTH_TESTKIT_KEEP=1` to keep the directory for a post-mortem.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::command::DEFAULT_COMMAND_TIMEOUT;
use crate::command::{describe, run_with_timeout, terminate, CmdOutput};
use crate::pb::services::v1::VersionResponse;
use crate::rpc::{block_on, version_once};
use crate::stream::LineStream;

/// How long `start` waits for Version to answer: generous, since a debug
/// build on a loaded two-core CI machine can be slow to open its database.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` lets a daemon shut down gracefully before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest unix socket path Linux accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Lines of log quoted in a start error.
const LOG_TAIL_LINES: usize = 80;

/// Options for a private daemon; [`DaemonBuilder::start`] launches it.
#[derive(Debug, Clone)]
pub struct DaemonBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    config: Option<String>,
    edit_config: Option<fn(&Path, String) -> String>,
    ready_timeout: Duration,
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            config: None,
            edit_config: None,
            ready_timeout: READY_TIMEOUT,
        }
    }
}

impl DaemonBuilder {
    /// Appends one argument after the standard ones.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments after the standard ones.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Writes `contents` to `DIR/config.toml` and passes `--config` with it,
    /// instead of the default containerd-style file ([`default_config`]).
    pub fn config(mut self, contents: impl Into<String>) -> Self {
        self.config = Some(contents.into());
        self
    }

    /// Rewrites the config file (the default one unless [`config`](Self::config)
    /// gave another) before it is written: `edit(dir, contents)`, with the
    /// daemon's directory, for a test that changes a few keys.
    pub fn edit_config(mut self, edit: fn(&Path, String) -> String) -> Self {
        self.edit_config = Some(edit);
        self
    }

    /// How long to wait for the Version RPC to answer (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Creates the directory, starts `berthd` and waits until it answers Version.
    pub fn start(self) -> Result<Daemon> {
        let containerd = testing_containerd();
        let bin = if containerd {
            crate::containerd_bin()?
        } else {
            crate::berthd_bin()?
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .context("creating the daemon's temporary directory")?;
        let base = dir.path().to_path_buf();
        let address = base.join("berth.sock");
        if address.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "socket path {} is longer than {MAX_SOCKET_PATH} bytes; set TMPDIR to a shorter directory",
                address.display()
            );
        }
        let mut args = if containerd {
            self.containerd_args(&base)?
        } else {
            self.berthd_args(&base)?
        };
        args.extend(self.args);
        let mut daemon = Daemon {
            log: base.join("berthd.log"),
            root: base.join("root"),
            state: base.join("state"),
            address,
            bin,
            args,
            env: self.env,
            ready_timeout: self.ready_timeout,
            child: None,
            dir: Some(dir),
        };
        daemon.launch()?;
        Ok(daemon)
    }

    fn berthd_args(&self, base: &Path) -> Result<Vec<OsString>> {
        let mut args: Vec<OsString> = vec![
            "--address".into(),
            base.join("berth.sock").into(),
            "--root".into(),
            base.join("root").into(),
            "--state".into(),
            base.join("state").into(),
            "--log-level".into(),
            "debug".into(),
        ];
        let mut contents = self.config.clone().unwrap_or_else(|| default_config(base));
        if let Some(edit) = self.edit_config {
            contents = edit(base, contents);
        }
        let path = base.join("config.toml");
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        args.extend(["--config".into(), path.into()]);
        Ok(args)
    }

    /// containerd takes its sockets and directories from a config file. The
    /// CRI plugin is disabled: berth's foundation tests do not need it and it
    /// slows every start.
    fn containerd_args(&self, base: &Path) -> Result<Vec<OsString>> {
        if self.config.is_some() {
            bail!("a berthd config file cannot be given to containerd (BERTH_TESTKIT_DAEMON=containerd)");
        }
        let path = base.join("containerd.toml");
        let sock = base.join("berth.sock");
        let contents = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock:?}\n\
             [ttrpc]\n  address = {ttrpc:?}\n\
             [debug]\n  address = {debug:?}\n",
            root = base.join("root"),
            state = base.join("state"),
            sock = sock,
            ttrpc = base.join("berth.sock.ttrpc"),
            debug = base.join("debug.sock"),
        );
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(vec![
            "--config".into(),
            path.into(),
            "--log-level".into(),
            "debug".into(),
        ])
    }
}

/// The config file a private berthd gets unless the test brings its own:
/// a containerd 1.x `config.toml` (`version = 2`) of the kind users and
/// test harnesses hand a containerd-compatible daemon, CRI section included
/// (berthd warns about it and ignores it). Its paths point into `base`, as
/// the flags do, and the socket is owned by the user running the test, so
/// tests that need no privilege run anywhere. (A test that brings its own
/// config file must set `[grpc] uid`/`gid` itself, or require root.)
pub fn default_config(base: &Path) -> String {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    format!(
        r#"version = 2
root = {root:?}
state = {state:?}
oom_score = 0

[grpc]
  address = {sock:?}
  uid = {uid}
  gid = {gid}
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[debug]
  level = "debug"

[metrics]
  address = ""
  grpc_histogram = false

[plugins]
  [plugins."io.containerd.gc.v1.scheduler"]
    pause_threshold = 0.02
    deletion_threshold = 0
    mutation_threshold = 100
    schedule_delay = "0s"
    startup_delay = "100ms"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/berth/pause:builtin"
    max_concurrent_downloads = 3
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = {cni:?}
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt:?}
"#,
        root = base.join("root"),
        state = base.join("state"),
        sock = base.join("berth.sock"),
        cni = base.join("cni"),
        opt = base.join("opt"),
    )
}

/// Whether the harness runs Debian's containerd instead of berthd
/// (`BERTH_TESTKIT_DAEMON=containerd`).
pub fn testing_containerd() -> bool {
    std::env::var("BERTH_TESTKIT_DAEMON").is_ok_and(|v| v == "containerd")
}

/// A running private `berthd`; see the module docs for its directory layout.
#[derive(Debug)]
pub struct Daemon {
    address: PathBuf,
    root: PathBuf,
    state: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
    child: Option<Child>,
    /// Dropped last (after the process is dead), which removes the directory.
    dir: Option<TempDir>,
}

impl Daemon {
    /// Starts a daemon with the standard options.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Options for a daemon with extra arguments, environment or a config file.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// The gRPC socket (`--address`).
    pub fn address(&self) -> &Path {
        &self.address
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `--state` directory.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The temporary directory holding everything; free for tests to use too.
    pub fn dir(&self) -> &Path {
        self.address.parent().unwrap_or(Path::new("/"))
    }

    /// The log file (stdout and stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The daemon log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// The process id while the daemon runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (reaping it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Kills the daemon with SIGKILL and reaps it: a crash, for crash-safety tests.
    pub fn kill9(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("berthd is not running");
        };
        child.kill().context("sending SIGKILL to berthd")?;
        child.wait().context("reaping berthd")?;
        Ok(())
    }

    /// Sends SIGTERM and waits for a graceful exit; kills the daemon (and
    /// fails) if it takes longer than 15 seconds.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("berthd is not running");
        };
        match terminate(&mut child, "berthd", STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                bail!(
                    "berthd did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it\n{}",
                    self.log_tail()
                )
            }
        }
    }

    /// Starts the daemon again on the same socket, root, state and config
    /// (stopping it gracefully first if it still runs) and waits for Version.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            self.stop()?;
        }
        self.launch()
    }

    /// The server's Version reply, over a fresh connection.
    pub fn version(&self) -> Result<VersionResponse> {
        block_on(version_once(&self.address, Duration::from_secs(10)))?
    }

    /// Creates a container record in `namespace` over gRPC, as
    /// `ctr containers create --rootfs DIR/rootfs ID sh` would (see
    /// [`crate::container_record`]); the rootfs directory need not exist.
    pub fn create_container(
        &self,
        namespace: &str,
        id: &str,
        labels: &[(&str, &str)],
    ) -> Result<()> {
        let record = crate::container_record(id, &self.dir().join("rootfs"), labels);
        let address = self.address.clone();
        block_on(async move {
            let channel = crate::rpc::connect(&address).await?;
            crate::rpc::create_container(channel, namespace, record).await
        })??;
        Ok(())
    }

    /// A gRPC channel to the daemon, for the calling async runtime.
    pub async fn connect(&self) -> Result<Channel> {
        crate::rpc::connect(&self.address).await
    }

    /// A `ctr --address SOCK [-n NS]` command line, ready for more arguments
    /// (for commands a test spawns itself, such as `ctr events`).
    pub fn ctr_command(&self, namespace: Option<&str>) -> Result<Command> {
        Ok(self.client_command(crate::ctr_bin()?, namespace, "-n"))
    }

    /// Runs Debian's `ctr` against this daemon in the default namespace.
    /// Panics if `ctr` cannot be run or overruns its timeout.
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        expect_ran(self.try_ctr(None, args))
    }

    /// Runs Debian's `ctr` against this daemon in `namespace`.
    #[track_caller]
    pub fn ctr_ns(&self, namespace: &str, args: &[&str]) -> CmdOutput {
        expect_ran(self.try_ctr(Some(namespace), args))
    }

    /// Runs Debian's `ctr`, returning infrastructure failures as errors.
    pub fn try_ctr(&self, namespace: Option<&str>, args: &[&str]) -> Result<CmdOutput> {
        let mut cmd = self.ctr_command(namespace)?;
        run_with_timeout(cmd.args(args), DEFAULT_COMMAND_TIMEOUT)
    }

    /// Spawns `ctr --address SOCK [-n NS] ARGS…` and collects its output line
    /// by line (for `ctr events`); dropping the stream kills it.
    pub fn ctr_stream(&self, namespace: Option<&str>, args: &[&str]) -> Result<LineStream> {
        LineStream::spawn(self.ctr_command(namespace)?.args(args))
    }

    /// Spawns `berth --address SOCK [--namespace NS] ARGS…` and collects its
    /// output line by line; dropping the stream kills it.
    pub fn berth_stream(&self, namespace: Option<&str>, args: &[&str]) -> Result<LineStream> {
        LineStream::spawn(self.berth_command(namespace)?.args(args))
    }

    /// A `berth --address SOCK [--namespace NS]` command line.
    pub fn berth_command(&self, namespace: Option<&str>) -> Result<Command> {
        Ok(self.client_command(crate::berth_bin()?, namespace, "--namespace"))
    }

    /// Runs the `berth` CLI against this daemon in the default namespace.
    #[track_caller]
    pub fn berth(&self, args: &[&str]) -> CmdOutput {
        expect_ran(self.try_berth(None, args))
    }

    /// Runs the `berth` CLI against this daemon in `namespace`.
    #[track_caller]
    pub fn berth_ns(&self, namespace: &str, args: &[&str]) -> CmdOutput {
        expect_ran(self.try_berth(Some(namespace), args))
    }

    /// Runs the `berth` CLI, returning infrastructure failures as errors.
    pub fn try_berth(&self, namespace: Option<&str>, args: &[&str]) -> Result<CmdOutput> {
        let mut cmd = self.berth_command(namespace)?;
        run_with_timeout(cmd.args(args), DEFAULT_COMMAND_TIMEOUT)
    }

    fn client_command(&self, bin: PathBuf, namespace: Option<&str>, ns_flag: &str) -> Command {
        let mut cmd = Command::new(bin);
        // Hermetic: the caller's environment must not redirect the client.
        cmd.env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .arg("--address")
            .arg(&self.address);
        if let Some(ns) = namespace {
            cmd.args([ns_flag, ns]);
        }
        cmd
    }

    /// Spawns the process and waits for it to answer Version; on failure the
    /// process is killed and the error quotes the log.
    fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let log = self.open_log(&describe(&cmd))?;
        let child = cmd
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let child = self.child.insert(child);
        let address = self.address.clone();
        let waited = block_on(wait_ready(child, &address, self.ready_timeout))?;
        if let Err(err) = waited {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(err.context(self.log_tail()));
        }
        Ok(())
    }

    fn open_log(&self, command: &str) -> Result<File> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(log, "=== berth-testkit: {command}").context("writing the log header")?;
        Ok(log)
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- last {} lines of {} ---\n{}",
            tail.len(),
            self.log.display(),
            tail.join("\n")
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "=== berthd log ({}) ===\n{}\n=== end of berthd log ===",
                self.log.display(),
                self.log()
            );
        }
        // The shims outlive berthd by design; the ones this daemon started
        // (and their containers) go with it, before their mounts do.
        crate::kill_shims_of(&self.address);
        let dir = self.dir();
        for (point, err) in crate::unmount_under(dir) {
            eprintln!("berth-testkit: cannot unmount {}: {err}", point.display());
        }
        if std::env::var_os("BERTH_TESTKIT_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("berth-testkit: keeping {}", dir.keep().display());
            }
        }
    }
}

/// Polls until Version answers, the process exits, or `timeout` passes.
async fn wait_ready(child: &mut Child, address: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = anyhow!("socket {} never appeared", address.display());
    loop {
        if let Some(status) = child.try_wait().context("waiting for berthd")? {
            bail!("berthd exited with {status} before answering Version");
        }
        if address.exists() {
            match version_once(address, Duration::from_secs(2)).await {
                Ok(_) => return Ok(()),
                Err(err) => last = err,
            }
        }
        if Instant::now() >= deadline {
            return Err(last.context(format!(
                "berthd did not answer Version on {} within {timeout:?}",
                address.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[track_caller]
fn expect_ran(result: Result<CmdOutput>) -> CmdOutput {
    match result {
        Ok(out) => out,
        Err(err) => panic!("could not run the client: {err:#}"),
    }
}
