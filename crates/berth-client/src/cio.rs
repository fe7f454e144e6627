//! A process's standard streams, as containerd's `cio` package wires them.
//!
//! The daemon never sees the client's stdin or stdout. It gets three paths
//! in the task (or exec) request, and the shim opens them: usually FIFOs
//! the client made in a private directory, which the client then copies
//! to and from its own streams. An [`Io`] says how:
//!
//! - [`Io::inherit`]: FIFOs copied to and from this process's stdin,
//!   stdout and stderr (`cio.WithStdio`);
//! - [`Io::with_streams`]: FIFOs copied to and from the caller's readers
//!   and writers (`cio.WithStreams`);
//! - [`Io::fifos`]: FIFOs whose ends the caller takes with
//!   [`crate::task::Task::take_streams`] (`cio.NewDirectIO`);
//! - [`Io::log_file`]: stdout and stderr appended to a file by the shim
//!   (`cio.LogFile`), no stdin;
//! - [`Io::null`]: nothing (`cio.NullIO`).
//!
//! With [`Io::terminal`] the process gets a pty: its output arrives on
//! stdout alone, so there is no stderr FIFO.
//!
//! Ordering matters, as in containerd: the client opens the read ends of
//! stdout and stderr (non-blocking, so the open never waits) *before* the
//! create request, so the shim finds a reader; stdin is opened read-write
//! (which never blocks on Linux) and copied only once the task exists, so a
//! short input is not lost in a FIFO nobody opened yet. When the input
//! ends, the FIFO is closed and the task is told to close the process's
//! stdin (CloseIO), because the shim keeps its own end open.
//!
//! FIFOs outlive a detached client: deleting the task, from this process or
//! another one that loaded it, removes them and their directory.

use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where FIFOs go unless [`Io::fifo_dir`] says otherwise.
pub const DEFAULT_FIFO_DIR: &str = "/run/berth/fifo";

/// A boxed reader for [`Io::with_streams`].
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A boxed writer for [`Io::with_streams`].
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The stdio paths and terminal flag sent to the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoConfig {
    /// The stdin path (empty: none).
    pub stdin: String,
    /// The stdout path or URI (`file://…`, `binary://…`; empty: none).
    pub stdout: String,
    /// The stderr path or URI (empty: none).
    pub stderr: String,
    /// Whether the process has a terminal.
    pub terminal: bool,
}

enum Kind {
    Null,
    Inherit,
    Streams {
        stdin: Option<Reader>,
        stdout: Option<Writer>,
        stderr: Option<Writer>,
    },
    Fifos,
    LogFile(PathBuf),
}

/// How a new process's stdio is set up; see the [module docs](self).
pub struct Io {
    kind: Kind,
    terminal: bool,
    stdin: bool,
    fifo_dir: PathBuf,
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Null => "null",
            Kind::Inherit => "inherit",
            Kind::Streams { .. } => "streams",
            Kind::Fifos => "fifos",
            Kind::LogFile(_) => "log-file",
        };
        f.debug_struct("Io")
            .field("kind", &kind)
            .field("terminal", &self.terminal)
            .field("stdin", &self.stdin)
            .field("fifo_dir", &self.fifo_dir)
            .finish()
    }
}

impl Io {
    fn new(kind: Kind) -> Io {
        Io {
            kind,
            terminal: false,
            stdin: true,
            fifo_dir: PathBuf::from(DEFAULT_FIFO_DIR),
        }
    }

    /// No stdio at all: the process's streams are `/dev/null`.
    pub fn null() -> Io {
        Io::new(Kind::Null)
    }

    /// FIFOs copied to and from this process's stdin, stdout and stderr.
    pub fn inherit() -> Io {
        Io::new(Kind::Inherit)
    }

    /// FIFOs copied from `stdin` and to `stdout` and `stderr`; a `None`
    /// stream is not connected.
    pub fn with_streams(
        stdin: Option<Reader>,
        stdout: Option<Writer>,
        stderr: Option<Writer>,
    ) -> Io {
        let has_stdin = stdin.is_some();
        Io {
            stdin: has_stdin,
            ..Io::new(Kind::Streams {
                stdin,
                stdout,
                stderr,
            })
        }
    }

    /// FIFOs whose ends the caller takes from the task or process
    /// ([`crate::task::Task::take_streams`]); nothing is copied. Keep every
    /// end open until the process has started: containerd's own shim waits
    /// (with a deadline) for a reader on each output FIFO, where berth's
    /// does not. Dropping the ends afterwards leaves the FIFOs for a later
    /// client, as a detached `ctr run -d` does.
    pub fn fifos() -> Io {
        Io::new(Kind::Fifos)
    }

    /// stdout and stderr appended to `path` by the shim; no stdin.
    pub fn log_file(path: impl Into<PathBuf>) -> Io {
        Io {
            stdin: false,
            ..Io::new(Kind::LogFile(path.into()))
        }
    }

    /// Gives the process a terminal (default: no). Its output then comes
    /// on stdout only.
    pub fn terminal(mut self, terminal: bool) -> Io {
        self.terminal = terminal;
        self
    }

    /// Whether to connect stdin (default: yes, except for
    /// [`Io::with_streams`] without a reader and [`Io::log_file`]).
    pub fn stdin(mut self, stdin: bool) -> Io {
        self.stdin = stdin;
        self
    }

    /// The directory under which a private directory of FIFOs is made
    /// (default: [`DEFAULT_FIFO_DIR`]).
    pub fn fifo_dir(mut self, dir: impl Into<PathBuf>) -> Io {
        self.fifo_dir = dir.into();
        self
    }

    /// Creates the FIFOs for process `id` (if any) and opens their
    /// output ends; stdin starts flowing with [`Attached::start_stdin`].
    pub(crate) async fn create(self, id: &str) -> Result<Attached> {
        let terminal = self.terminal;
        match self.kind {
            Kind::Null => Ok(Attached::new(
                IoConfig {
                    terminal,
                    ..IoConfig::default()
                },
                None,
            )),
            Kind::LogFile(path) => {
                let uri = format!("file://{}", path.display());
                let config = IoConfig {
                    stdin: String::new(),
                    stdout: uri.clone(),
                    stderr: uri,
                    terminal,
                };
                Ok(Attached::new(config, None))
            }
            kind => {
                // Without a reader to copy from, stdin gets no FIFO. Output
                // FIFOs always exist (containerd's shim opens whatever path
                // it is given); one the caller does not want is drained.
                let stdin = match &kind {
                    Kind::Streams { stdin, .. } => stdin.is_some(),
                    _ => true,
                };
                let dir = fifo_set_dir(&self.fifo_dir).await?;
                let path = |stream: &str, wanted: bool| {
                    if wanted {
                        path_string(&dir.join(format!("{id}-{stream}")))
                    } else {
                        String::new()
                    }
                };
                let config = IoConfig {
                    stdin: path("stdin", stdin && self.stdin),
                    stdout: path("stdout", true),
                    stderr: path("stderr", !terminal),
                    terminal,
                };
                let mut attached = Attached::new(config, Some(dir.clone()));
                let made = async {
                    for p in [
                        &attached.config.stdin,
                        &attached.config.stdout,
                        &attached.config.stderr,
                    ] {
                        if !p.is_empty() {
                            mkfifo(Path::new(p))?;
                        }
                    }
                    attached.connect(kind)
                };
                if let Err(err) = made.await {
                    attached.remove_fifos().await;
                    return Err(err);
                }
                Ok(attached)
            }
        }
    }

    /// Opens the existing stdio paths of a process (`cio.NewAttach`): a
    /// second client following a running task. Paths that are not FIFOs
    /// (null or file I/O) are left alone.
    pub(crate) fn attach(self, config: IoConfig) -> Result<Attached> {
        let mut attached = Attached::new(config, None);
        attached.connect(self.kind)?;
        Ok(attached)
    }
}

/// The direct ends of a process's FIFOs ([`Io::fifos`]).
#[derive(Debug, Default)]
pub struct Streams {
    /// Writes to the process's stdin; drop it to send end of file (the
    /// task is not told: call `close_stdin` too).
    pub stdin: Option<pipe::Sender>,
    /// Reads the process's stdout.
    pub stdout: Option<pipe::Receiver>,
    /// Reads the process's stderr.
    pub stderr: Option<pipe::Receiver>,
}

/// A process's stdio once set up: the paths the daemon got, the copies
/// running in the background, and what to remove when the process goes.
pub(crate) struct Attached {
    pub(crate) config: IoConfig,
    /// The private FIFO directory this client made, if any.
    dir: Option<PathBuf>,
    /// Output copies; done once the shim closed its ends.
    copies: Vec<JoinHandle<()>>,
    /// The stdin FIFO and what to copy into it, until started.
    pending_stdin: Option<(pipe::Sender, Reader)>,
    /// The FIFO ends for [`Io::fifos`].
    direct: Option<Streams>,
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("config", &self.config)
            .field("dir", &self.dir)
            .field("copies", &self.copies.len())
            .field("pending_stdin", &self.pending_stdin.is_some())
            .finish_non_exhaustive()
    }
}

impl Attached {
    fn new(config: IoConfig, dir: Option<PathBuf>) -> Attached {
        Attached {
            config,
            dir,
            copies: Vec::new(),
            pending_stdin: None,
            direct: None,
        }
    }

    /// The stdio of a process loaded from the daemon (`cio.Load`): nothing
    /// is copied, but deleting the process removes its FIFOs.
    pub(crate) fn loaded(config: IoConfig) -> Attached {
        Attached::new(config, None)
    }

    /// Opens the FIFOs' client ends and starts the output copies.
    fn connect(&mut self, kind: Kind) -> Result<()> {
        let (stdin, stdout, stderr): (Option<Reader>, Option<Writer>, Option<Writer>) = match kind {
            Kind::Null | Kind::LogFile(_) => return Ok(()),
            Kind::Inherit => (
                Some(Box::new(tokio::io::stdin())),
                Some(Box::new(tokio::io::stdout())),
                Some(Box::new(tokio::io::stderr())),
            ),
            Kind::Streams {
                stdin,
                stdout,
                stderr,
            } => (stdin, stdout, stderr),
            Kind::Fifos => {
                self.direct = Some(Streams {
                    stdin: open_writer(&self.config.stdin)?,
                    stdout: open_reader(&self.config.stdout)?,
                    stderr: open_reader(&self.config.stderr)?,
                });
                return Ok(());
            }
        };
        for (path, to) in [(&self.config.stdout, stdout), (&self.config.stderr, stderr)] {
            let Some(fifo) = open_reader(path)? else {
                continue;
            };
            // Output nobody wants is read anyway, so the process never
            // blocks on a full FIFO.
            let to = to.unwrap_or_else(|| Box::new(tokio::io::sink()));
            self.copies.push(tokio::spawn(copy_out(fifo, to)));
        }
        if let (Some(fifo), Some(from)) = (open_writer(&self.config.stdin)?, stdin) {
            self.pending_stdin = Some((fifo, from));
        }
        Ok(())
    }

    /// Starts copying into stdin; once the input ends, the FIFO is closed
    /// and `eof` fires (the caller then closes the process's stdin).
    pub(crate) fn start_stdin(&mut self) -> Option<oneshot::Receiver<()>> {
        let (mut fifo, mut from) = self.pending_stdin.take()?;
        let (done, eof) = oneshot::channel();
        tokio::spawn(async move {
            let copied = tokio::io::copy(&mut from, &mut fifo).await;
            drop(fifo);
            if copied.is_ok() {
                let _ = done.send(());
            }
        });
        Some(eof)
    }

    /// Takes the FIFO ends of [`Io::fifos`].
    pub(crate) fn take_streams(&mut self) -> Option<Streams> {
        self.direct.take()
    }

    /// Waits for the output copies to see end of file (the shim closed its
    /// ends: the process exited and its task or exec was deleted).
    pub(crate) async fn wait(&mut self) {
        for copy in self.copies.drain(..) {
            let _ = copy.await;
        }
    }

    /// Stops copying at once (output still in flight is dropped).
    pub(crate) fn cancel(&mut self) {
        for copy in &self.copies {
            copy.abort();
        }
        self.pending_stdin = None;
    }

    /// Removes the FIFOs and their directory: this client's own directory
    /// whole, or for loaded paths, each path that is a FIFO and then its
    /// directory if that is empty (`loadFifos` in containerd).
    pub(crate) async fn remove_fifos(&mut self) {
        self.direct = None;
        self.pending_stdin = None;
        if let Some(dir) = self.dir.take() {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
        let mut dirs = Vec::new();
        for path in [&self.config.stdin, &self.config.stdout, &self.config.stderr] {
            let path = Path::new(path);
            if path.as_os_str().is_empty() {
                continue;
            }
            let is_fifo = tokio::fs::symlink_metadata(path)
                .await
                .is_ok_and(|m| m.file_type().is_fifo());
            if is_fifo && tokio::fs::remove_file(path).await.is_ok() {
                if let Some(parent) = path.parent() {
                    dirs.push(parent.to_path_buf());
                }
            }
        }
        for dir in dirs {
            // Only an empty directory goes: it may hold someone else's FIFOs.
            let _ = tokio::fs::remove_dir(&dir).await;
        }
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Makes `<parent>/<random>`, private to this client.
async fn fifo_set_dir(parent: &Path) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| io_error(e, "create fifo directory", parent))?;
    loop {
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::leases::random_id()
        );
        let dir = parent.join(name);
        // 0700 as containerd's cio: a container's output is its owner's.
        match tokio::fs::DirBuilder::new().mode(0o700).create(&dir).await {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(e, "create fifo directory", &dir)),
        }
    }
}

fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o700))
        .map_err(|e| io_error(e.into(), "mkfifo", path))
}

fn io_error(err: std::io::Error, what: &str, path: &Path) -> Error {
    Error::from(err).context(format!("{what} {}", path.display()))
}

/// The read end of an output FIFO: opened non-blocking, so it never waits
/// for the shim; end of file comes once the shim has closed its end.
fn open_reader(path: &str) -> Result<Option<pipe::Receiver>> {
    if path.is_empty() || !is_fifo(path) {
        return Ok(None);
    }
    pipe::OpenOptions::new()
        .open_receiver(path)
        .map(Some)
        .map_err(|e| io_error(e, "open", Path::new(path)))
}

/// The write end of the stdin FIFO, opened read-write: on Linux that open
/// never blocks, and data written before the shim reads stays in the pipe.
fn open_writer(path: &str) -> Result<Option<pipe::Sender>> {
    if path.is_empty() || !is_fifo(path) {
        return Ok(None);
    }
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map(Some)
        .map_err(|e| io_error(e, "open", Path::new(path)))
}

fn is_fifo(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

async fn copy_out(mut from: pipe::Receiver, mut to: Writer) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn null_and_log_file_make_no_fifos() {
        let null = Io::null().create("c").await.expect("null");
        assert_eq!(null.config, IoConfig::default());
        let log = Io::log_file("/tmp/x.log").create("c").await.expect("log");
        assert_eq!(log.config.stdout, "file:///tmp/x.log");
        assert_eq!(log.config.stderr, "file:///tmp/x.log");
        assert!(log.config.stdin.is_empty());
    }

    #[tokio::test]
    async fn fifos_are_made_in_a_private_dir_and_removed() {
        let parent = std::env::temp_dir().join(format!("berth-cio-{}", std::process::id()));
        let mut io = Io::fifos()
            .terminal(true)
            .fifo_dir(&parent)
            .create("web")
            .await
            .expect("fifos");
        assert!(io.config.terminal);
        assert!(io.config.stderr.is_empty(), "a terminal has no stderr");
        assert!(io.config.stdout.ends_with("/web-stdout"));
        assert!(is_fifo(&io.config.stdin) && is_fifo(&io.config.stdout));
        let streams = io.take_streams().expect("streams");
        assert!(streams.stdin.is_some() && streams.stdout.is_some());
        assert!(streams.stderr.is_none());
        drop(streams);
        let dir = Path::new(&io.config.stdout)
            .parent()
            .expect("dir")
            .to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the FIFO directory is private");
        io.remove_fifos().await;
        assert!(!dir.exists());
        let _ = std::fs::remove_dir(&parent);
    }

    #[tokio::test]
    async fn stream_copies_reach_the_writer() {
        let parent = std::env::temp_dir().join(format!("berth-cio-s-{}", std::process::id()));
        let (client_end, mut reader) = tokio::io::duplex(1024);
        let mut io = Io::with_streams(None, Some(Box::new(client_end)), None)
            .fifo_dir(&parent)
            .create("p")
            .await
            .expect("streams");
        assert!(io.config.stdin.is_empty());
        // Play the shim: it opens every output FIFO it is given (stderr too,
        // which nobody asked for and the client drains), writes, and closes
        // them. A FIFO reader sees end of file only after a writer has come
        // and gone.
        let mut shim = pipe::OpenOptions::new()
            .open_sender(&io.config.stdout)
            .expect("shim end");
        let shim_stderr = pipe::OpenOptions::new()
            .open_sender(&io.config.stderr)
            .expect("shim stderr end");
        shim.write_all(b"hello\n").await.expect("write");
        drop(shim);
        drop(shim_stderr);
        io.wait().await;
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut out)
            .await
            .expect("read");
        assert_eq!(out, "hello\n");
        io.remove_fifos().await;
        let _ = std::fs::remove_dir(&parent);
    }
}
