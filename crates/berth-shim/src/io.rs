//! A process's standard streams.
//!
//! The client (ctr, the daemon) creates FIFOs and passes their paths. The
//! shim never blocks on them: each FIFO is opened read-write and
//! non-blocking (on Linux that open never waits for the other end) and
//! copied by a task on the runtime:
//!
//! - without a terminal, the container gets pipes; `pipe → stdout FIFO`,
//!   `pipe → stderr FIFO`, `stdin FIFO → pipe` (until CloseIO);
//! - with a terminal, runc sends the pty master over `--console-socket`
//!   (SCM_RIGHTS); `master → stdout FIFO` and `stdin FIFO → master`;
//! - `file://PATH` gives the container the file itself; `binary://PATH?k=v`
//!   starts a logging binary with the output pipes as fds 3 and 4 and a
//!   readiness pipe as fd 5, as containerd does.
//!
//! [`ProcessIo::drained`] resolves when every output copy has seen EOF:
//! the exit of a process is reported only after that, so the output of a
//! container that exits at once is never cut short.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::monitor::Monitor;
use crate::runc::ChildStdio;

/// The stdio paths of a create or exec request.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The running copies of one process's streams.
#[derive(Default)]
pub struct ProcessIo {
    outputs: Vec<JoinHandle<()>>,
    stdin_stop: Option<oneshot::Sender<()>>,
    /// The pty master, for ResizePty.
    console: Option<OwnedFd>,
}

/// Identifies console sockets of one shim.
static CONSOLE_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A listening `--console-socket`; removed when dropped.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> io::Result<Self> {
        let n = CONSOLE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("berth-pty-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the pty master runc sent. Called after runc succeeded, so
    /// the connection and its message are already queued on the socket.
    pub fn receive_master(&self) -> io::Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let (conn, _) = self.listener.accept()?;
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 4096];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        use std::os::fd::AsRawFd;
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    return Ok(crate::sys::received_fd(fd));
                }
            }
        }
        Err(io::Error::other(
            "no pty master received on the console socket",
        ))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ProcessIo {
    /// Prepares pipes (or files, or a logger) for a process without a
    /// terminal and starts copying; returns the container's side.
    pub fn pipes(paths: &StdioPaths, env: &LogEnv<'_>) -> io::Result<(Self, ChildStdio)> {
        let mut io = ProcessIo::default();
        let mut child = ChildStdio::default();
        if !paths.stdin.is_empty() {
            let (rx, tx) = std::io::pipe()?;
            child.stdin = Some(rx.into());
            let (stop, stopped) = oneshot::channel();
            io.stdin_stop = Some(stop);
            let fifo = open_fifo_reader(&paths.stdin)?;
            tokio::spawn(copy_stdin(fifo, OwnedFd::from(tx), stopped));
        }
        if paths.stdout.starts_with("binary://") {
            let (out, err) = start_logger(&paths.stdout, env)?;
            child.stdout = Some(out);
            child.stderr = Some(err);
            return Ok((io, child));
        }
        child.stdout = io.output(&paths.stdout)?;
        child.stderr = io.output(&paths.stderr)?;
        Ok((io, child))
    }

    /// The container's side of one output stream, starting its copy.
    fn output(&mut self, uri: &str) -> io::Result<Option<OwnedFd>> {
        if uri.is_empty() {
            return Ok(None);
        }
        if let Some(path) = uri.strip_prefix("file://") {
            if let Some(dir) = Path::new(path).parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            return Ok(Some(file.into()));
        }
        let (rx, tx) = std::io::pipe()?;
        let fifo = open_fifo_writer(uri)?;
        let source = pipe::Receiver::from_owned_fd(OwnedFd::from(rx))?;
        self.outputs.push(tokio::spawn(copy_output(source, fifo)));
        Ok(Some(tx.into()))
    }

    /// Starts copying a terminal: master to stdout, stdin to master.
    pub fn console(master: OwnedFd, paths: &StdioPaths) -> io::Result<Self> {
        set_nonblocking(&master)?;
        let mut io = ProcessIo::default();
        if !paths.stdin.is_empty() {
            let (stop, stopped) = oneshot::channel();
            io.stdin_stop = Some(stop);
            let fifo = open_fifo_reader(&paths.stdin)?;
            tokio::spawn(copy_stdin(fifo, master.try_clone()?, stopped));
        }
        if !paths.stdout.is_empty() {
            let fifo = open_fifo_writer(&paths.stdout)?;
            let source = pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?;
            io.outputs.push(tokio::spawn(copy_output(source, fifo)));
        }
        io.console = Some(master);
        Ok(io)
    }

    /// Resizes the terminal; without one there is nothing to do, and
    /// containerd's shim answers such a ResizePty with success.
    pub fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        let Some(master) = &self.console else {
            return Ok(());
        };
        crate::sys::set_winsize(master, width as u16, height as u16)
    }

    /// Closes the process's stdin (CloseIO).
    pub fn close_stdin(&mut self) {
        if let Some(stop) = self.stdin_stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until every output copy has finished, at most `limit` (a
    /// daemonized grandchild may hold the pipe open forever).
    pub async fn drained(&mut self, limit: Duration) {
        let outputs = std::mem::take(&mut self.outputs);
        let all = async {
            for task in outputs {
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// What a `binary://` logger is told about its container.
pub struct LogEnv<'a> {
    pub namespace: &'a str,
    pub id: &'a str,
    pub monitor: &'a Monitor,
}

fn open_fifo_writer(path: &str) -> io::Result<pipe::Sender> {
    pipe::OpenOptions::new()
        .read_write(true)
        .unchecked(true)
        .open_sender(path)
}

fn open_fifo_reader(path: &str) -> io::Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .read_write(true)
        .unchecked(true)
        .open_receiver(path)
}

async fn copy_output(from: pipe::Receiver, mut to: pipe::Sender) {
    let mut from = EioIsEof(from);
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
}

/// A reader whose EIO is end of file: a pty master answers EIO once every
/// slave end is closed and its buffer read. As an error, it would make
/// `tokio::io::copy` (which reads ahead while the FIFO is full) drop the
/// bytes it had read but not yet written: the tail of a terminal's output,
/// lost when the client reads slowly.
struct EioIsEof<R>(R);

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for EioIsEof<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

async fn copy_stdin(mut from: pipe::Receiver, to: OwnedFd, stop: oneshot::Receiver<()>) {
    let Ok(mut to) = pipe::Sender::from_owned_fd_unchecked(to) else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy(&mut from, &mut to) => {}
        _ = stop => {}
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// Starts a `binary://` logger: stdout pipe as fd 3, stderr as fd 4, and a
/// pipe on fd 5 the logger closes once ready. Returns the writing ends.
fn start_logger(uri: &str, env: &LogEnv<'_>) -> io::Result<(OwnedFd, OwnedFd)> {
    let rest = &uri["binary://".len()..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut cmd = Command::new(path);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        cmd.arg(k);
        if !v.is_empty() {
            cmd.arg(v);
        }
    }
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let (ready_r, ready_w) = std::io::pipe()?;
    use std::os::fd::AsRawFd;
    let fds = vec![
        (out_r.as_raw_fd(), 3),
        (err_r.as_raw_fd(), 4),
        (ready_w.as_raw_fd(), 5),
    ];
    cmd.env("CONTAINER_ID", env.id)
        .env("CONTAINER_NAMESPACE", env.namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::sys::pre_exec_setsid_and_fds(&mut cmd, false, fds);
    let (_child, _exit) = env.monitor.spawn(&mut cmd)?;
    drop(cmd);
    drop((out_r, err_r, ready_w));
    // The logger closes fd 5 when it is ready: EOF here.
    wait_readable_eof(OwnedFd::from(ready_r))?;
    Ok((out_w.into(), err_w.into()))
}

/// How long a `binary://` logger may take to signal that it is ready.
const LOGGER_READY_LIMIT: Duration = Duration::from_secs(5);

/// Waits for EOF on the logger's readiness pipe, at most
/// [`LOGGER_READY_LIMIT`]: a logger that never closes fd 5 must not freeze
/// the shim (this runs on the runtime's only thread).
fn wait_readable_eof(fd: OwnedFd) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Read;
    let deadline = std::time::Instant::now() + LOGGER_READY_LIMIT;
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as u32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, ms).map_err(io::Error::from)? == 0 {
            return Err(io::Error::other(
                "logging binary did not close fd 5 within 5s",
            ));
        }
        if file.read(&mut buf)? == 0 {
            return Ok(());
        }
    }
}

/// Creates a FIFO (tests).
#[cfg(test)]
pub fn mkfifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A terminal's last bytes reach a FIFO that was full when the
    /// terminal closed: the copy has read them and holds them while the
    /// FIFO waits, and the master's EIO (slave closed) must not drop them.
    #[tokio::test(flavor = "current_thread")]
    async fn a_terminals_tail_survives_a_full_fifo() {
        use std::io::{Read, Write};
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut attrs = nix::sys::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        nix::sys::termios::cfmakeraw(&mut attrs);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &attrs)
            .expect("raw");
        let tail = vec![b'x'; 3000];
        std::fs::File::from(pty.slave)
            .write_all(&tail)
            .expect("write the tail");
        // The slave is closed now: once read, the master answers EIO.
        set_nonblocking(&pty.master).expect("nonblocking master");
        let source = pipe::Receiver::from_owned_fd_unchecked(pty.master).expect("master");
        let (rx, tx) = std::io::pipe().expect("pipe");
        let tx = OwnedFd::from(tx);
        set_nonblocking(&tx).expect("nonblocking pipe");
        let mut full = std::fs::File::from(tx.try_clone().expect("dup"));
        let mut filled = 0;
        while let Ok(n) = full.write(&[0u8; 4096]) {
            filled += n;
        }
        drop(full);
        let sink = pipe::Sender::from_owned_fd(tx).expect("sink");
        let copy = tokio::spawn(copy_output(source, sink));
        // Let the copy read the tail, find the FIFO full and read ahead.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            std::fs::File::from(OwnedFd::from(rx))
                .read_to_end(&mut all)
                .expect("read the FIFO");
            all
        });
        copy.await.expect("copy task");
        let all = reader.join().expect("reader thread");
        assert_eq!(all.len(), filled + tail.len());
        assert!(all.ends_with(&tail));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pipe_output_reaches_the_fifo_and_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        mkfifo(&out).expect("mkfifo");
        let (monitor, _rx) = Monitor::new();
        let env = LogEnv {
            namespace: "n",
            id: "i",
            monitor: &monitor,
        };
        let paths = StdioPaths {
            stdout: out.display().to_string(),
            ..Default::default()
        };
        let mut reader = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&out)
            .expect("reader");
        let (mut io, child) = ProcessIo::pipes(&paths, &env).expect("pipes");
        let stdout = child.stdout.expect("stdout");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo hello"]).stdout(stdout);
        let (mut c, _) = monitor.spawn(&mut cmd).expect("spawn");
        drop(cmd);
        let _ = c.wait();
        io.drained(Duration::from_secs(5)).await;
        let mut buf = [0u8; 6];
        reader.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello\n");
    }
}
