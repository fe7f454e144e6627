//! `stream_idle_timeout`: a streaming connection (exec, attach, port
//! forward) on which nothing has been read or written for that long is
//! closed, as the kubelet's streaming server closes an idle SPDY or
//! WebSocket connection (containerd's default: 4 h; 0 turns it off).
//!
//! [`Idle`] wraps the upgraded connection: every read or write of data
//! counts as activity; once the timeout has passed without any, reads and
//! writes fail with `TimedOut`, which ends the session as a client that
//! went away does, and the connection's sending side is shut down, so the
//! client's reads end too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `io` closed after `timeout` without traffic (never without one).
pub(crate) struct Idle<IO> {
    io: IO,
    timeout: Option<Duration>,
    last: Instant,
    /// Armed for `last + timeout`; none without a timeout.
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
    /// Whether the connection was shut down on expiry.
    shut: bool,
}

impl<IO> Idle<IO> {
    pub(crate) fn new(io: IO, timeout: Option<Duration>) -> Idle<IO> {
        let now = Instant::now();
        Idle {
            io,
            timeout,
            last: now,
            timer: timeout.map(|t| Box::pin(tokio::time::sleep_until(now + t))),
            expired: false,
            shut: false,
        }
    }

    fn active(&mut self) {
        self.last = Instant::now();
    }

    /// Whether the timeout has passed since the last activity; otherwise
    /// the timer is (re)armed for the current deadline and registered.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.expired {
            return true;
        }
        let (Some(timeout), Some(timer)) = (self.timeout, self.timer.as_mut()) else {
            return false;
        };
        let deadline = self.last + timeout;
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.expired = true;
        }
        self.expired
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "stream idle timeout")
}

use std::future::Future as _;

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Idle<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => {
                // Tell the client too, whatever the session's tasks still
                // hold of the connection: shut the sending side, so its
                // reads end. Best effort, once.
                if !this.shut {
                    this.shut = true;
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                }
                Poll::Ready(Err(timed_out()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Idle<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out()));
        }
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                this.active();
            }
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_a_connection_and_silence_closes_it() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut idle = Idle::new(near, Some(Duration::from_secs(10)));
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            far.write_all(b"x").await.expect("write");
            assert_eq!(idle.read(&mut buf).await.expect("read"), 1);
        }
        // Writing counts too.
        tokio::time::sleep(Duration::from_secs(6)).await;
        idle.write_all(b"y").await.expect("write");
        let started = Instant::now();
        let err = idle.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(
            idle.write(b"z").await.expect_err("closed").kind(),
            io::ErrorKind::TimedOut
        );
        // The far side sees the connection end.
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.expect("far end");
        assert_eq!(rest, b"y");
    }
}
