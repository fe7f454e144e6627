//! Durations as containerd writes them in its config: Go's `time.Duration`
//! strings (`"100ms"`, `"1m30s"`, `"4h0m0s"`), from `berth_core::goduration`.

pub use berth_core::goduration::{format, parse};
