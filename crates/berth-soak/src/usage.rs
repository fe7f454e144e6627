//! berthd's open file descriptors and resident memory, from `/proc`.

use std::fmt;
use std::fs;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// Open descriptors may rise by this many between comparable moments
/// (a client connection or a GC pass in flight).
const FD_SLACK: usize = 8;
/// A freshly started daemon may use this much more memory than the first
/// one did (KiB), plus [`RSS_FRESH_FACTOR`] of the first one.
const RSS_FRESH_SLACK_KIB: u64 = 8 << 10;
const RSS_FRESH_FACTOR: f64 = 0.25;
/// A daemon that has carried the load may keep allocator caches: it is
/// allowed twice the first one's memory plus this much (KiB).
const RSS_LOADED_SLACK_KIB: u64 = 32 << 10;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub fds: usize,
    pub rss_kib: u64,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fds, {} KiB RSS", self.fds, self.rss_kib)
    }
}

/// Lets the daemon settle, then takes the smallest of a few readings, so a
/// request in flight does not count.
pub fn measure(pid: u32) -> Result<Usage> {
    thread::sleep(Duration::from_secs(2));
    let mut best: Option<Usage> = None;
    for _ in 0..5 {
        let now = read(pid)?;
        best = Some(match best {
            None => now,
            Some(b) => Usage {
                fds: b.fds.min(now.fds),
                rss_kib: b.rss_kib.min(now.rss_kib),
            },
        });
        thread::sleep(Duration::from_millis(200));
    }
    best.context("no reading")
}

fn read(pid: u32) -> Result<Usage> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("list /proc/{pid}/fd"))?
        .count();
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(Usage { fds, rss_kib })
}

/// Growth beyond the tolerances, comparing the first idle daemon
/// (`base`) with the last loaded one at idle (`loaded`) and with a fresh
/// start after the soak (`fresh`).
pub fn growth(base: Usage, loaded: Usage, fresh: Usage) -> Vec<String> {
    let mut found = Vec::new();
    for (what, now) in [
        ("after the load", loaded),
        ("after the final restart", fresh),
    ] {
        if now.fds > base.fds + FD_SLACK {
            found.push(format!(
                "berthd fds grew {what}: {} -> {} (slack {FD_SLACK})",
                base.fds, now.fds
            ));
        }
    }
    let fresh_limit =
        base.rss_kib + (base.rss_kib as f64 * RSS_FRESH_FACTOR) as u64 + RSS_FRESH_SLACK_KIB;
    if fresh.rss_kib > fresh_limit {
        found.push(format!(
            "berthd RSS grew across restarts: {} -> {} KiB (limit {fresh_limit})",
            base.rss_kib, fresh.rss_kib
        ));
    }
    let loaded_limit = 2 * base.rss_kib + RSS_LOADED_SLACK_KIB;
    if loaded.rss_kib > loaded_limit {
        found.push(format!(
            "berthd RSS grew under load: {} -> {} KiB (limit {loaded_limit})",
            base.rss_kib, loaded.rss_kib
        ));
    }
    found
}
