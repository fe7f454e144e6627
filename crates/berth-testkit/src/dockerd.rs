//! A private Docker Engine (`dockerd`) on top of a test's berthd.
//!
//! Docker Engine does not run containers itself: it drives an external
//! containerd-API daemon over gRPC (`--containerd SOCK`), in namespaces
//! `moby` and `plugins.moby`, with runtime `io.containerd.runc.v2`. Pointed
//! at a [`Daemon`]'s socket, a `dockerd` therefore exercises berthd as Docker
//! users do. Everything the engine owns lives in one temporary directory:
//!
//! ```text
//! DIR/data/          --data-root (images in overlay2, container configs, logs)
//! DIR/exec/          --exec-root (stdio FIFOs, network namespaces)
//! DIR/docker.sock    -H unix://… (the Engine API)
//! DIR/daemon.json    --config-file, so no global /etc/docker/daemon.json is read
//! DIR/cli/           DOCKER_CONFIG of the docker CLI run by the tests
//! DIR/dockerd.log    stdout and stderr of every start, appended
//! ```
//!
//! The engine gets no bridge, no iptables rules and no userland proxy:
//! containers run with `--network none`. Its trust key (which dockerd 20.10
//! would write to `/etc/docker/key.json`) goes to the directory through the
//! config file's `deprecated-key-path`. The one global path it still creates
//! is the empty directory `/run/docker/plugins`, hard-wired in dockerd 20.10
//! as the legacy plugin socket directory; it is left alone.
//!
//! ```no_run
//! use berth_testkit::{require_docker, Daemon, Dockerd};
//!
//! #[test]
//! fn docker_talks_to_berthd() {
//!     require_docker!();
//!     let daemon = Daemon::start().expect("start berthd");
//!     let docker = Dockerd::start(&daemon).expect("start dockerd");
//!     let out = docker.docker(&["version"]).assert_success();
//!     assert!(out.stdout.contains("containerd"));
//! }
//! ```
//!
//! [`Dockerd`] is a guard: dropping it removes every container through the
//! engine, stops `dockerd`, unmounts what it left below the directory (the
//! overlay2 mounts of containers, network namespace files) and removes it,
//! printing the engine log first if the test is panicking.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::command::{describe, terminate};
use crate::{run_with_timeout, CmdOutput, Daemon, LineStream};

/// Debian's Docker Engine (`docker.io`).
pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
/// How long `start` waits for the Engine API to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` lets dockerd shut down before killing it. dockerd waits
/// for its containers' own stop timeouts when it is not live-restoring.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// A docker CLI call's default bound: a pull or a `run` on a loaded machine.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of log quoted in a start error.
const LOG_TAIL_LINES: usize = 60;

/// Debian's docker CLI: `$DOCKER_BIN`, else `/usr/bin/docker` (the CLI of
/// `docker.io`, the same release as its dockerd), else the first `docker` on
/// `PATH` (a newer CLI negotiates the API version down).
pub fn docker_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DOCKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let usr = PathBuf::from("/usr/bin/docker");
    if usr.exists() {
        return Ok(usr);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("docker"))
        .find(|p| p.exists())
        .context("no docker CLI in /usr/bin or on PATH (install Debian's docker.io)")
}

/// True when Debian's `dockerd` and a docker CLI are installed and the
/// process runs as root (dockerd needs it). Otherwise prints why the test is
/// skipped and returns false — or panics in CI.
#[track_caller]
pub fn require_docker() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return crate::guards::unmet("needs root to run dockerd");
    }
    if !Path::new(DOCKERD_BIN).exists() {
        return crate::guards::unmet("needs Debian's docker.io (dockerd)");
    }
    match docker_bin() {
        Ok(_) => true,
        Err(err) => crate::guards::unmet(&format!("{err:#}")),
    }
}

/// Skips (or, in CI, fails) the calling test without root, dockerd and the docker CLI.
#[macro_export]
macro_rules! require_docker {
    () => {
        if !$crate::require_docker() {
            return;
        }
    };
}

/// Options for a private dockerd; [`DockerdBuilder::start`] launches it.
#[derive(Debug, Clone)]
pub struct DockerdBuilder {
    containerd: PathBuf,
    live_restore: bool,
    args: Vec<OsString>,
}

impl DockerdBuilder {
    /// `--live-restore`: containers keep running while dockerd is down and
    /// are adopted again when it comes back.
    pub fn live_restore(mut self, on: bool) -> Self {
        self.live_restore = on;
        self
    }

    /// An extra dockerd argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Creates the directory, starts dockerd and waits until it answers.
    pub fn start(self) -> Result<Dockerd> {
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .context("create the dockerd directory")?;
        let base = dir.path();
        for sub in ["data", "exec", "cli"] {
            fs::create_dir(base.join(sub)).with_context(|| format!("create {sub}/"))?;
        }
        let config = serde_json::json!({
            "deprecated-key-path": base.join("key.json"),
            "live-restore": self.live_restore,
        });
        fs::write(base.join("daemon.json"), config.to_string()).context("write daemon.json")?;
        let mut args: Vec<OsString> = vec!["--containerd".into(), self.containerd.into()];
        for (flag, path) in [
            ("--data-root", base.join("data")),
            ("--exec-root", base.join("exec")),
            ("--pidfile", base.join("docker.pid")),
            ("--config-file", base.join("daemon.json")),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        args.push("-H".into());
        args.push(format!("unix://{}", base.join("docker.sock").display()).into());
        args.extend(
            [
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                "--userland-proxy=false",
                "--log-level=debug",
            ]
            .map(OsString::from),
        );
        args.extend(self.args);
        let mut dockerd = Dockerd {
            docker: docker_bin()?,
            args,
            child: None,
            dir: Some(dir),
        };
        dockerd.launch()?;
        Ok(dockerd)
    }
}

/// A running private dockerd on a berthd; see the module docs for its layout.
#[derive(Debug)]
pub struct Dockerd {
    docker: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
    /// Dropped last (after dockerd is gone), which removes the directory.
    dir: Option<TempDir>,
}

impl Dockerd {
    /// Starts a dockerd on `daemon`'s socket with the standard options.
    pub fn start(daemon: &Daemon) -> Result<Dockerd> {
        Self::builder(daemon).start()
    }

    /// Options for a dockerd on `daemon`'s socket.
    pub fn builder(daemon: &Daemon) -> DockerdBuilder {
        DockerdBuilder {
            containerd: daemon.address().to_path_buf(),
            live_restore: false,
            args: Vec::new(),
        }
    }

    /// The directory holding everything.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// `--data-root`.
    pub fn data_root(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// `--exec-root`.
    pub fn exec_root(&self) -> PathBuf {
        self.dir().join("exec")
    }

    /// The Engine API address, `unix://DIR/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir().join("docker.sock").display())
    }

    /// The engine log so far.
    pub fn log(&self) -> String {
        fs::read(self.dir().join("dockerd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// dockerd's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A docker CLI command aimed at this engine, with a private
    /// `DOCKER_CONFIG` and none of the caller's `DOCKER_*` redirections.
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(&self.docker);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("DOCKER_CONFIG", self.dir().join("cli"))
            .arg("-H")
            .arg(self.host());
        cmd
    }

    /// Runs `docker ARGS` (stdin closed), panicking if it cannot be run or
    /// outlives two minutes.
    pub fn docker(&self, args: &[&str]) -> CmdOutput {
        self.try_docker(args)
            .unwrap_or_else(|err| panic!("docker {args:?}: {err:#}"))
    }

    /// Like [`Dockerd::docker`], returning errors to run it.
    pub fn try_docker(&self, args: &[&str]) -> Result<CmdOutput> {
        run_with_timeout(self.docker_command().args(args), DOCKER_TIMEOUT)
    }

    /// Runs `docker ARGS` with `input` on its stdin, then stdin closed.
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> CmdOutput {
        crate::run_with_input(self.docker_command().args(args), input, DOCKER_TIMEOUT)
            .unwrap_or_else(|err| panic!("docker {args:?}: {err:#}"))
    }

    /// Spawns a long-running `docker ARGS` (`logs -f`, `events`) whose
    /// output is read line by line.
    pub fn docker_stream(&self, args: &[&str]) -> LineStream {
        LineStream::spawn(self.docker_command().args(args))
            .unwrap_or_else(|err| panic!("docker {args:?}: {err:#}"))
    }

    /// `docker inspect -f FORMAT TARGET`, trimmed; panics unless it succeeds.
    pub fn inspect(&self, target: &str, format: &str) -> String {
        let out = self
            .docker(&["inspect", "-f", format, target])
            .assert_success();
        out.stdout.trim().to_string()
    }

    /// Sends SIGTERM and waits for dockerd to exit; kills it (and fails)
    /// when it takes longer than 40 seconds.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("dockerd is not running");
        };
        match terminate(&mut child, "dockerd", STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                bail!("dockerd did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it")
            }
        }
    }

    /// Starts dockerd again on the same directories and options (stopping
    /// it first if it runs) and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.launch()
    }

    fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(DOCKERD_BIN);
        cmd.args(&self.args)
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir().join("cli"))
            .stdin(Stdio::null());
        let log = self.open_log(&describe(&cmd))?;
        let child = cmd
            .stdout(log.try_clone().context("duplicate the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {DOCKERD_BIN}"))?;
        self.child = Some(child);
        if let Err(err) = self.wait_ready() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(err.context(self.log_tail()));
        }
        Ok(())
    }

    /// Polls `docker version` until the engine reports its containerd too
    /// (the Engine API answers before dockerd finished connecting to it).
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("poll dockerd")? {
                    bail!("dockerd exited with {status} before answering");
                }
            }
            if self.dir().join("docker.sock").exists() {
                let out = run_with_timeout(
                    self.docker_command()
                        .args(["version", "-f", "{{.Server.Version}}"]),
                    Duration::from_secs(10),
                )?;
                if out.success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "dockerd did not answer on {} within {READY_TIMEOUT:?}",
                    self.host()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn open_log(&self, command: &str) -> Result<File> {
        let path = self.dir().join("dockerd.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(log, "=== berth-testkit: {command}").context("write the log header")?;
        Ok(log)
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- last {} lines of dockerd.log ---\n{}",
            tail.len(),
            tail.join("\n")
        )
    }

    /// Removes every container through the engine (best effort), so that
    /// nothing keeps running in berthd after the test.
    fn remove_containers(&self) {
        let Ok(out) = run_with_timeout(
            self.docker_command().args(["ps", "-aq"]),
            Duration::from_secs(20),
        ) else {
            return;
        };
        let ids: Vec<&str> = out.lines();
        if ids.is_empty() || !out.success() {
            return;
        }
        let mut cmd = self.docker_command();
        cmd.args(["rm", "-f", "-v"]).args(&ids);
        if let Ok(out) = run_with_timeout(&mut cmd, Duration::from_secs(60)) {
            if !out.success() {
                eprintln!("berth-testkit: could not remove docker containers:\n{out}");
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "=== dockerd log ({}) ===\n{}\n=== end of dockerd log ===",
                self.dir().display(),
                self.log()
            );
        }
        if self.child.is_some() {
            self.remove_containers();
            if let Err(err) = self.stop() {
                eprintln!("berth-testkit: {err:#}");
            }
        }
        for (point, err) in crate::unmount_under(self.dir()) {
            eprintln!("berth-testkit: cannot unmount {}: {err}", point.display());
        }
        if std::env::var_os("BERTH_TESTKIT_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("berth-testkit: keeping {}", dir.keep().display());
            }
        }
    }
}
