//! Reading task tables as `ctr tasks ls` and `berth tasks ls` print them, and
//! waiting for a task to reach a status.

use std::thread;
use std::time::{Duration, Instant};

use crate::CmdOutput;

/// One row of a `tasks ls` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The task (container) id.
    pub id: String,
    /// The init process's pid.
    pub pid: u32,
    /// `RUNNING`, `STOPPED`, `PAUSED`, `CREATED`, …
    pub status: String,
}

/// The rows of a `tasks ls` table (`TASK PID STATUS`), header skipped.
pub fn task_rows(out: &CmdOutput) -> Vec<TaskRow> {
    out.lines()
        .iter()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TaskRow {
                id: f.first()?.to_string(),
                pid: f.get(1)?.parse().ok()?,
                status: f.get(2)?.to_string(),
            })
        })
        .collect()
}

/// Polls `list` until task `id` shows status `want`; panics naming what it
/// last saw once `timeout` has passed.
#[track_caller]
pub fn wait_task_status(list: impl Fn() -> Vec<TaskRow>, id: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let row = list().into_iter().find(|r| r.id == id);
        if row.as_ref().is_some_and(|r| r.status == want) {
            return;
        }
        assert!(Instant::now() < deadline, "task {id}: {row:?}, want {want}");
        thread::sleep(Duration::from_millis(50));
    }
}
