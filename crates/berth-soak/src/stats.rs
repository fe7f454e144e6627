//! What the soak counts, shared by the workers, the chaos loop and the checks.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters, updated from every thread.
#[derive(Debug, Default)]
pub struct Stats {
    operations: AtomicU64,
    restarts: AtomicU64,
    shims_killed: AtomicU64,
    processes_killed: AtomicU64,
    errors: AtomicU64,
    /// Error messages with their digits masked, so one kind of failure
    /// (whatever the container id) is one line of the breakdown.
    kinds: Mutex<BTreeMap<String, u64>>,
    /// Things that must not happen even under chaos: an operation that hangs,
    /// a daemon that does not come back.
    failures: Mutex<Vec<String>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub operations: u64,
    pub restarts: u64,
    pub shims_killed: u64,
    pub processes_killed: u64,
    pub errors: u64,
}

impl Stats {
    /// One API call that succeeded.
    pub fn op(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shim_killed(&self) {
        self.shims_killed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn process_killed(&self) {
        self.processes_killed.fetch_add(1, Ordering::Relaxed);
    }

    /// An error a worker tolerated (retried or moved on from).
    pub fn error(&self, what: &str, err: &dyn Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let text: String = format!("{what}: {err}")
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(160)
            .collect();
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        *kinds.entry(text).or_default() += 1;
    }

    /// Something the soak must report as a bug.
    pub fn failure(&self, what: String) {
        eprintln!("soak: FAILURE: {what}");
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The tolerated errors by kind, most frequent first.
    pub fn error_kinds(&self) -> Vec<(String, u64)> {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(String, u64)> = kinds.iter().map(|(k, n)| (k.clone(), *n)).collect();
        list.sort_by_key(|k| std::cmp::Reverse(k.1));
        list
    }

    pub fn totals(&self) -> Totals {
        Totals {
            operations: self.operations.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            shims_killed: self.shims_killed.load(Ordering::Relaxed),
            processes_killed: self.processes_killed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}
