//! The serving shim's log lines: its stderr, which `serve` points at the
//! `log` FIFO of the bundle it started in, and the daemon reads.
//!
//! A line nobody can take is dropped. The FIFO loses its reader while the
//! daemon is down, and for good once the bundle the shim started in is
//! deleted while the shim still serves other containers of its group (see
//! `start`); `eprintln!` would panic on that write.

use std::io::Write;

/// Writes one line, prefixed with the shim's name; never fails.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "containerd-shim-berth-v2: {args}");
}
