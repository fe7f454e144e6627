//! Long-running clients (`ctr events`, `berth events`) read line by line.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::command::describe;

/// A spawned client whose output lines are collected as they arrive. Dropping
/// it kills the process.
#[derive(Debug)]
pub struct LineStream {
    command: String,
    child: Child,
    rx: Receiver<Line>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

#[derive(Debug)]
enum Line {
    Out(String),
    Err(String),
}

impl LineStream {
    /// Spawns `cmd` with stdin closed and both output streams captured.
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        let command = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning `{command}`"))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward(out, tx.clone(), Line::Out);
        }
        if let Some(err) = child.stderr.take() {
            forward(err, tx, Line::Err);
        }
        Ok(Self {
            command,
            child,
            rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    /// Waits up to `timeout` for a stdout line (already seen or new) matching
    /// `pred`, and returns it.
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        if let Some(line) = self.stdout.iter().find(|l| pred(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Line::Out(line)) => {
                    self.stdout.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Ok(Line::Err(line)) => self.stderr.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Collects whatever arrived by now without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            match line {
                Line::Out(l) => self.stdout.push(l),
                Line::Err(l) => self.stderr.push(l),
            }
        }
    }

    /// Stdout lines received so far.
    pub fn stdout(&self) -> &[String] {
        &self.stdout
    }

    /// Stderr lines received so far.
    pub fn stderr(&self) -> &[String] {
        &self.stderr
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A description of the command and everything it printed, for assertions.
    pub fn report(&mut self) -> String {
        self.drain();
        format!(
            "$ {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward<R: Read + Send + 'static>(pipe: R, tx: Sender<Line>, wrap: fn(String) -> Line) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_lines_as_they_arrive() {
        let mut stream = LineStream::spawn(Command::new("sh").args([
            "-c",
            "echo one; echo warn >&2; sleep 0.2; echo two; exec sleep 30",
        ]))
        .expect("spawn sh");
        let two = stream.wait_for(|l| l == "two", Duration::from_secs(10));
        assert_eq!(two.as_deref(), Some("two"));
        assert_eq!(stream.stdout(), ["one", "two"]);
        assert!(stream.is_running());
        assert!(stream
            .wait_for(|l| l == "three", Duration::from_millis(100))
            .is_none());
        assert!(stream.report().contains("warn"));
    }
}
