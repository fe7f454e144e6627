//! systemd's readiness protocol (`sd_notify`), for a `Type=notify` unit.
//!
//! systemd passes a datagram socket in `$NOTIFY_SOCKET`: a filesystem path,
//! or an abstract address spelled with a leading `@`. berthd sends `READY=1`
//! once its gRPC socket serves and `STOPPING=1` when it starts shutting down,
//! as containerd does. Without `$NOTIFY_SOCKET` every call is a no-op.
//!
//! [`Notifier::from_env`] takes the variable out of the environment so the
//! shims and runc that berthd starts never inherit it.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where to send state changes, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<OsString>,
}

impl Notifier {
    /// Reads and removes `$NOTIFY_SOCKET`. Call it before any thread starts:
    /// changing the environment is only sound while the process has one.
    pub fn from_env() -> Self {
        let socket = std::env::var_os(NOTIFY_SOCKET).filter(|s| !s.is_empty());
        if socket.is_some() {
            // Called from `main` before the runtime's threads exist, so
            // nothing reads the environment concurrently.
            std::env::remove_var(NOTIFY_SOCKET);
        }
        Self { socket }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Tells systemd the daemon is serving.
    pub fn ready(&self) {
        self.send_logged("READY=1");
    }

    /// Tells systemd the daemon is shutting down.
    pub fn stopping(&self) {
        self.send_logged("STOPPING=1");
    }

    fn send_logged(&self, state: &str) {
        match self.send(state) {
            Ok(true) => tracing::debug!(state, "notified systemd"),
            Ok(false) => {}
            Err(err) => tracing::warn!(state, error = %err, "cannot notify systemd"),
        }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); `Ok(false)` when
    /// there is no socket to send to.
    pub fn send(&self, state: &str) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(false);
        };
        let address = address(socket)?;
        let sender = UnixDatagram::unbound()?;
        let sent = sender.send_to_addr(state.as_bytes(), &address)?;
        if sent != state.len() {
            return Err(io::Error::other(format!(
                "short write to {}: {sent} of {} bytes",
                socket.to_string_lossy(),
                state.len()
            )));
        }
        Ok(true)
    }
}

/// `@name` is an abstract address, anything else a filesystem path.
fn address(socket: &OsString) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(socket: &str) -> Notifier {
        Notifier {
            socket: Some(socket.into()),
        }
    }

    fn received(receiver: &UnixDatagram) -> String {
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let notifier = notifier(path.to_str().expect("utf-8"));
        assert!(notifier.send("READY=1").expect("send"));
        assert_eq!(received(&receiver), "READY=1");
    }

    #[test]
    fn sends_to_an_abstract_address() {
        let name = format!("berth-notify-test-{}", std::process::id());
        let bound = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let receiver = UnixDatagram::bind_addr(&bound).expect("bind");
        assert!(notifier(&format!("@{name}"))
            .send("STOPPING=1")
            .expect("send"));
        assert_eq!(received(&receiver), "STOPPING=1");
    }

    #[test]
    fn without_a_socket_sends_nothing() {
        assert!(!Notifier::disabled().send("READY=1").expect("no-op"));
    }

    #[test]
    fn a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.sock");
        let err = notifier(path.to_str().expect("utf-8"))
            .send("READY=1")
            .expect_err("no listener");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}
