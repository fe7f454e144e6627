//! One module per command group, each with its clap arguments, its `run`
//! and the pure functions that format its output.

pub mod completion;
pub mod containers;
pub mod content;
pub mod events;
pub mod images;
pub mod info;
pub mod leases;
pub mod namespaces;
pub mod plugins;
pub mod run;
pub mod tasks;
pub mod version;

use std::fmt;
use std::time::Duration;

use berth_client::Client;

/// The global options every command connects with.
#[derive(Debug)]
pub struct Context {
    /// The daemon's socket.
    pub address: String,
    /// The namespace sent with every call.
    pub namespace: String,
    /// The per-call (and total) timeout.
    pub timeout: Option<Duration>,
    /// The connection timeout.
    pub connect_timeout: Option<Duration>,
}

impl Context {
    /// Connects to the daemon.
    pub async fn connect(&self) -> berth_client::Result<Client> {
        Client::builder(self.address.as_str())
            .namespace(self.namespace.as_str())
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .connect()
            .await
    }
}

/// A failure whose lines are already on stderr: `main` only sets the exit
/// status (commands acting on several objects report each failure).
#[derive(Debug)]
pub struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Reported {}

/// Prints one failure of a multi-object command.
pub fn warn(message: impl fmt::Display) {
    eprintln!("berth: {message}");
}

/// The exit status a command ends with: `run`, `tasks start`, `exec` and
/// `attach` exit with the container's (or process's) exit code, as ctr does.
#[derive(Debug)]
pub struct Exit(pub u32);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}
