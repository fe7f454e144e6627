//! A typed runc command line.
//!
//! Each method builds one `runc` invocation with the global flags (`--root`,
//! `--log`, `--systemd-cgroup`), spawns it through the [`Monitor`] (so the
//! reaper cannot steal its exit) and waits for its exit on the monitor's
//! channel. A failure is a [`RuncError`] that keeps the command, the exit
//! status, stdout, stderr and the last error runc wrote to its JSON log,
//! which is where `create` and `exec` report (their stdio belongs to the
//! container).

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::monitor::Monitor;

/// The runtime's flags, from `containerd.runc.v1.Options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncConfig {
    /// The runtime binary: `runc`, or `BinaryName` (crun, youki…).
    pub binary: String,
    /// `--root`: the runtime's state directory.
    pub root: String,
    pub systemd_cgroup: bool,
}

impl RuncConfig {
    /// runc with berth's state root for `namespace`.
    pub fn default_for(namespace: &str) -> Self {
        RuncConfig {
            binary: "runc".into(),
            root: format!("/run/berth/runc/{namespace}"),
            systemd_cgroup: false,
        }
    }

    /// One line per field, as stored in the bundle for `delete`.
    pub fn encode(&self) -> String {
        format!("{}\n{}\n{}\n", self.binary, self.root, self.systemd_cgroup)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        Some(RuncConfig {
            binary: lines.next()?.to_string(),
            root: lines.next()?.to_string(),
            systemd_cgroup: lines.next()? == "true",
        })
    }
}

/// A failed runtime command.
#[derive(Debug)]
pub struct RuncError {
    pub command: String,
    /// Exit status (128+signal when killed); -1 if it could not be spawned.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RuncError {
    /// What the runtime said: its stderr (or log), else its stdout.
    pub fn detail(&self) -> &str {
        if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        }
    }
}

impl fmt::Display for RuncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (exit status {}): {}",
            self.command,
            self.status,
            self.detail()
        )
    }
}

impl std::error::Error for RuncError {}

impl RuncError {
    /// containerd's wording for a failed `create`, `start` or `exec`
    /// (`runtimeError` in its `pkg/process`): `OCI runtime create failed: `
    /// and runc's own last error, the whole failure only when runc said
    /// nothing. Docker shows this text and matches on it (an "executable
    /// file not found" naming the command makes `docker run` exit 127).
    pub fn oci(&self, action: &str) -> String {
        match self.detail() {
            "" => format!("OCI runtime {action} failed: {self}"),
            said => format!("OCI runtime {action} failed: {said}"),
        }
    }
}

/// The standard streams a `create` or `exec` hands to the container.
#[derive(Debug, Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// runc for one container (bundle) and its log file.
#[derive(Clone)]
pub struct Runc {
    config: RuncConfig,
    /// `config.binary`, looked up on `PATH` once rather than by every spawn.
    program: PathBuf,
    log: PathBuf,
    monitor: Monitor,
}

impl Runc {
    pub fn new(config: RuncConfig, bundle: &Path, monitor: Monitor) -> Self {
        Runc {
            program: find_program(&config.binary),
            config,
            log: bundle.join("log.json"),
            monitor,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command_without_log(&[]);
        cmd.arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .args(args);
        cmd
    }

    /// A runc command that logs to its stderr (runc's default) instead of
    /// the bundle's `log.json`.
    fn command_without_log(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--root").arg(&self.config.root);
        if self.config.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuncError> {
        let mut cmd = self.command(&["create", "--bundle"]);
        cmd.arg(bundle).arg("--pid-file").arg(pid_file);
        if let Some(sock) = console {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(id);
        self.run_with_stdio(cmd, stdio).await
    }

    /// `exec --process F --detach --pid-file P [--console-socket S] ID`.
    pub async fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuncError> {
        let mut cmd = self.command(&["exec", "--process"]);
        cmd.arg(process)
            .arg("--detach")
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(sock) = console {
            cmd.arg("--console-socket").arg(sock);
        }
        cmd.arg(id);
        self.run_with_stdio(cmd, stdio).await
    }

    pub async fn start(&self, id: &str) -> Result<(), RuncError> {
        self.output(self.command(&["start", id])).await.map(drop)
    }

    /// `kill [--all] ID SIGNAL`.
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuncError> {
        let sig = signal.to_string();
        let args: &[&str] = if all {
            &["kill", "--all", id, &sig]
        } else {
            &["kill", id, &sig]
        };
        self.output(self.command(args)).await.map(drop)
    }

    /// `delete [--force] ID`.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuncError> {
        self.output(self.command(&delete_args(id, force)))
            .await
            .map(drop)
    }

    /// `delete [--force] ID` logging to its stderr: for a delete that may
    /// outlive the bundle (errors come from the captured stderr).
    pub async fn delete_unlogged(&self, id: &str, force: bool) -> Result<(), RuncError> {
        self.output(self.command_without_log(&delete_args(id, force)))
            .await
            .map(drop)
    }

    pub async fn pause(&self, id: &str) -> Result<(), RuncError> {
        self.output(self.command(&["pause", id])).await.map(drop)
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuncError> {
        self.output(self.command(&["resume", id])).await.map(drop)
    }

    /// `ps --format json ID`: the container's pids.
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, RuncError> {
        let out = self
            .output(self.command(&["ps", "--format", "json", id]))
            .await?;
        Ok(serde_json::from_str(out.trim()).unwrap_or_default())
    }

    /// `update --resources FILE ID` (FILE holds OCI LinuxResources JSON).
    pub async fn update(&self, id: &str, resources: &Path) -> Result<(), RuncError> {
        let mut cmd = self.command(&["update", "--resources"]);
        cmd.arg(resources).arg(id);
        self.output(cmd).await.map(drop)
    }

    /// Runs a command whose stdio belongs to the container; errors come
    /// from runc's log.
    async fn run_with_stdio(&self, mut cmd: Command, stdio: ChildStdio) -> Result<(), RuncError> {
        let or_null = |fd: Option<OwnedFd>| fd.map_or_else(Stdio::null, Stdio::from);
        cmd.stdin(or_null(stdio.stdin))
            .stdout(or_null(stdio.stdout))
            .stderr(or_null(stdio.stderr));
        let (_child, exit) = self
            .monitor
            .spawn(&mut cmd)
            .map_err(|e| spawn_error(&cmd, e))?;
        // Dropping the command closes this process's copies of the
        // container's pipe ends, so EOF arrives when the container exits.
        let command = describe(&cmd);
        drop(cmd);
        let status = exit.await.map(|e| e.status as i32).unwrap_or(-1);
        if status == 0 {
            return Ok(());
        }
        Err(RuncError {
            command,
            status,
            stdout: String::new(),
            stderr: last_log_error(&self.log),
        })
    }

    /// Runs a command capturing its output; both pipes are read by tasks on
    /// the runtime while it runs, so a long output cannot stall it.
    async fn output(&self, mut cmd: Command) -> Result<String, RuncError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (mut child, exit) = self
            .monitor
            .spawn(&mut cmd)
            .map_err(|e| spawn_error(&cmd, e))?;
        let stdout = child.stdout.take().map(read_async);
        let stderr = child.stderr.take().map(read_async);
        let stdout = match stdout {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let stderr = match stderr {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let status = exit.await.map(|e| e.status as i32).unwrap_or(-1);
        if status == 0 {
            return Ok(stdout);
        }
        let stderr = if stderr.trim().is_empty() {
            last_log_error(&self.log)
        } else {
            stderr
        };
        Err(RuncError {
            command: describe(&cmd),
            status,
            stdout,
            stderr,
        })
    }
}

fn delete_args(id: &str, force: bool) -> Vec<&str> {
    if force {
        vec!["delete", "--force", id]
    } else {
        vec!["delete", id]
    }
}

/// `name` itself if it has a `/`, else its first executable on `PATH`; a
/// name not found stays bare, so spawning it reports the error.
fn find_program(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Reads a child's pipe to the end without blocking the runtime.
fn read_async(pipe: impl Into<std::os::fd::OwnedFd>) -> tokio::task::JoinHandle<String> {
    let fd: std::os::fd::OwnedFd = pipe.into();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
            return String::new();
        };
        let mut buf = Vec::new();
        let _ = rx.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn spawn_error(cmd: &Command, err: std::io::Error) -> RuncError {
    RuncError {
        command: describe(cmd),
        status: -1,
        stdout: String::new(),
        stderr: err.to_string(),
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// The `msg` of the last error-level line of runc's JSON log.
fn last_log_error(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path() {
        assert_eq!(find_program("/opt/runc"), PathBuf::from("/opt/runc"));
        assert!(find_program("sh").is_absolute());
        assert_eq!(
            find_program("no-such-runtime-xyz"),
            PathBuf::from("no-such-runtime-xyz")
        );
    }

    #[test]
    fn config_round_trips() {
        let c = RuncConfig {
            binary: "crun".into(),
            root: "/run/x".into(),
            systemd_cgroup: true,
        };
        assert_eq!(RuncConfig::decode(&c.encode()), Some(c));
    }

    #[test]
    fn error_keeps_status_and_stderr() {
        let e = RuncError {
            command: "runc start c".into(),
            status: 1,
            stdout: String::new(),
            stderr: "container not found\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "runc start c (exit status 1): container not found"
        );
    }

    #[test]
    fn oci_errors_read_as_containerds() {
        let said = RuncError {
            command: "runc --root /r create --bundle /b c".into(),
            status: 1,
            stdout: String::new(),
            stderr: "runc create failed: exec: \"x\": executable file not found in $PATH".into(),
        };
        assert_eq!(
            said.oci("create"),
            "OCI runtime create failed: runc create failed: exec: \"x\": executable file not found in $PATH"
        );
        let silent = RuncError {
            stderr: String::new(),
            ..said
        };
        assert_eq!(
            silent.oci("start"),
            "OCI runtime start failed: runc --root /r create --bundle /b c (exit status 1): "
        );
    }

    #[test]
    fn finds_last_error_in_json_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log.json");
        std::fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"old\"}\n{\"level\":\"info\",\"msg\":\"x\"}\n\
             {\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\"}\n",
        )
        .expect("write");
        assert_eq!(last_log_error(&log), "exec: \"nope\": not found");
    }
}
