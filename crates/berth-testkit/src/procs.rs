//! Finding and stopping the shims (and their containers) a private daemon
//! started.
//!
//! A shim outlives its daemon by design: that is how containers survive a
//! daemon restart. So when a test fails partway, or the soak's driver is
//! killed, the shims and the container processes below them keep running.
//! The runtime v2 protocol starts every shim as
//! `containerd-shim-… -namespace NS -address DAEMON_SOCK … -id ID`, so the
//! `-address` argument names the daemon a shim belongs to. Matching on the
//! exact socket path (a whole argument, not a substring) keeps this away from
//! the shims of other daemons running beside it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// One process seen in `/proc`.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// The process id.
    pub pid: i32,
    /// The parent's process id.
    pub ppid: i32,
    /// The command line, one entry per argument.
    pub cmdline: Vec<String>,
}

impl ProcInfo {
    /// The value that follows `flag` on the command line.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let at = self.cmdline.iter().position(|a| a == flag)?;
        self.cmdline.get(at + 1).map(String::as_str)
    }

    /// Whether the program's name (the first argument's last component)
    /// starts with `containerd-shim`.
    pub fn is_shim(&self) -> bool {
        self.cmdline
            .first()
            .and_then(|a| Path::new(a).file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("containerd-shim"))
    }
}

/// Every process of the machine, by pid (kernel threads have no command
/// line and are left out).
pub fn processes() -> BTreeMap<i32, ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_proc)
        .map(|p| (p.pid, p))
        .collect()
}

fn read_proc(pid: i32) -> Option<ProcInfo> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    let cmdline = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // The command name in `stat` is in parentheses and may hold spaces: the
    // fields after the last ')' are state, ppid, …
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(ProcInfo { pid, ppid, cmdline })
}

/// The shim processes started for the daemon listening on `address`.
pub fn shims_of(address: &Path) -> Vec<ProcInfo> {
    let address = address.to_string_lossy();
    processes()
        .into_values()
        .filter(|p| p.is_shim() && p.flag("-address") == Some(&*address))
        .collect()
}

/// Every descendant of `pid` (children first, then their children), not
/// `pid` itself. A shim is a child subreaper, so its containers' processes
/// stay below it.
pub fn descendants(pid: i32) -> Vec<i32> {
    let all = processes();
    let mut found = vec![pid];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(all.values().filter(|p| p.ppid == parent).map(|p| p.pid));
        at += 1;
    }
    found.remove(0);
    found
}

/// SIGKILLs every shim of the daemon on `address` and every process below
/// those shims (containers first, so no shim reaps and restarts anything),
/// and returns how many processes it signalled. Best effort: for cleanup
/// paths, where an error must not hide the test's own failure.
pub fn kill_shims_of(address: &Path) -> usize {
    let mut killed = 0;
    for shim in shims_of(address) {
        for pid in descendants(shim.pid) {
            killed += usize::from(kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok());
        }
        killed += usize::from(kill(Pid::from_raw(shim.pid), Signal::SIGKILL).is_ok());
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read_proc(std::process::id() as i32).expect("own /proc entry");
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(!me.cmdline.is_empty());
    }

    #[test]
    fn flag_and_shim_name() {
        let p = ProcInfo {
            pid: 1,
            ppid: 0,
            cmdline: [
                "/usr/bin/containerd-shim-berth-v2",
                "-address",
                "/t/b.sock",
                "-id",
                "x",
            ]
            .map(String::from)
            .to_vec(),
        };
        assert!(p.is_shim());
        assert_eq!(p.flag("-address"), Some("/t/b.sock"));
        assert_eq!(p.flag("-id"), Some("x"));
        assert_eq!(p.flag("-namespace"), None);
    }

    #[test]
    fn no_shims_for_an_unused_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(shims_of(&dir.path().join("none.sock")).is_empty());
        assert_eq!(kill_shims_of(&dir.path().join("none.sock")), 0);
    }
}
