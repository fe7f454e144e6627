//! Running a client program with a deadline and keeping everything it said.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long [`run_with_timeout`] callers in this crate let a client run: long
/// enough for a debug build under load, short enough that a hung call fails the
/// test instead of the CI job.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command did: its exit status and its output as text.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing the whole output, unless the command succeeded.
    #[track_caller]
    pub fn assert_success(self) -> Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics, showing the whole output, unless the command failed; a failure
    /// must be an ordinary non-zero exit, not a crash by signal.
    #[track_caller]
    pub fn assert_failure(self) -> Self {
        assert!(
            matches!(self.code(), Some(code) if code != 0),
            "expected a non-zero exit:\n{self}"
        );
        self
    }

    /// Panics unless the command failed and its stderr contains `needle`
    /// (case-insensitive, so gRPC code names match however a client spells them).
    #[track_caller]
    pub fn assert_failure_containing(self, needle: &str) -> Self {
        let out = self.assert_failure();
        assert!(
            out.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "expected stderr to contain {needle:?}:\n{out}"
        );
        out
    }

    /// Stdout split into non-empty trimmed lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured, killing it if it
/// has not exited after `timeout` (then the error carries what it printed).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput> {
    run(cmd, None, timeout)
}

/// Like [`run_with_timeout`], with `input` written to the command's stdin
/// (from a thread, so a command that answers as it reads cannot deadlock),
/// which is then closed.
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Result<CmdOutput> {
    run(cmd, Some(input.to_vec()), timeout)
}

fn run(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> Result<CmdOutput> {
    let command = describe(cmd);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning `{command}`"))?;
    let pipe = child.stdin.take();
    let writer = input.map(|input| {
        thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let _ = pipe.write_all(&input);
            }
        })
    });
    // Drain both pipes while waiting, so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let finished = wait_deadline(&mut child, timeout)?;
    let status = match finished {
        Some(status) => status,
        None => {
            let _ = child.kill();
            child.wait().context("reaping a timed-out command")?
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let out = CmdOutput {
        command,
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    };
    if finished.is_none() {
        anyhow::bail!("timed out after {timeout:?}, killed:\n{out}");
    }
    Ok(out)
}

/// Sends SIGTERM to `child` and waits up to `timeout` for it to exit;
/// kills it when it does not (`None`). `name` is for the error.
pub(crate) fn terminate(
    child: &mut Child,
    name: &str,
    timeout: Duration,
) -> Result<Option<ExitStatus>> {
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
    kill(pid, Signal::SIGTERM).with_context(|| format!("sending SIGTERM to {name}"))?;
    let finished = wait_deadline(child, timeout)?;
    if finished.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(finished)
}

/// Polls `child` until it exits or `timeout` passes; `None` means still running.
pub(crate) fn wait_deadline(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

type Reader = Option<thread::JoinHandle<Vec<u8>>>;

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Reader {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(reader: Reader) -> String {
    let bytes = reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("run sh");
        assert_eq!(out.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        out.assert_failure_containing("ERR");
    }

    #[test]
    fn feeds_input_to_stdin() {
        let out = run_with_input(
            Command::new("sh").args(["-c", "tr a-z A-Z"]),
            b"hello\n",
            Duration::from_secs(10),
        )
        .expect("run tr");
        assert_eq!(out.stdout, "HELLO\n");
    }

    #[test]
    fn kills_a_command_that_overruns() {
        let err = run_with_timeout(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(200),
        )
        .expect_err("sleep must time out");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("timed out") && msg.contains("started"),
            "{msg}"
        );
    }
}
