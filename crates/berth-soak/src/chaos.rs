//! The chaos loop: at random moments, `kill -9` berthd (and start it again),
//! a random shim of the soak's daemon, or a random process below a shim (a
//! container's init, an exec'd process, or a runc caught mid-create).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{descendants, shims_of, Daemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::rng::Rng;
use crate::worker::Shared;

/// How many times a restart is tried before the soak calls it a failure.
const RESTART_TRIES: usize = 3;

/// Runs until `shared.stop` is set.
pub fn run(daemon: &Mutex<Daemon>, shared: &Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed ^ 0xc4a0_5c4a_05c4);
    loop {
        let pause = Duration::from_millis(rng.range(1_000, 5_000));
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        match rng.below(10) {
            0..=2 => crash_daemon(daemon, shared, &mut rng),
            3..=6 => kill_shim(shared, &mut rng),
            _ => kill_container_process(shared, &mut rng),
        }
    }
}

fn crash_daemon(daemon: &Mutex<Daemon>, shared: &Shared, rng: &mut Rng) {
    let mut daemon = daemon.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(err) = daemon.kill9() {
        shared.stats.failure(format!("kill -9 berthd: {err:#}"));
    }
    // Clients see the socket refuse for a moment, as after a real crash.
    thread::sleep(Duration::from_millis(rng.below(1_500)));
    restart(&mut daemon, shared);
}

/// Starts the daemon again; a daemon that will not come back after a crash
/// is a failure of the soak.
pub fn restart(daemon: &mut Daemon, shared: &Shared) {
    for attempt in 1..=RESTART_TRIES {
        match daemon.restart() {
            Ok(()) => {
                shared.stats.restart();
                return;
            }
            Err(err) if attempt == RESTART_TRIES => {
                shared
                    .stats
                    .failure(format!("berthd did not restart: {err:#}"));
            }
            Err(err) => eprintln!("soak: restart attempt {attempt} failed: {err:#}"),
        }
    }
}

fn kill_shim(shared: &Shared, rng: &mut Rng) {
    let shims = shims_of(&shared.address);
    if shims.is_empty() {
        return;
    }
    let shim = &shims[rng.below(shims.len() as u64) as usize];
    if kill(Pid::from_raw(shim.pid), Signal::SIGKILL).is_ok() {
        shared.stats.shim_killed();
    }
}

fn kill_container_process(shared: &Shared, rng: &mut Rng) {
    let below: Vec<i32> = shims_of(&shared.address)
        .iter()
        .flat_map(|shim| descendants(shim.pid))
        .collect();
    if below.is_empty() {
        return;
    }
    let pid = below[rng.below(below.len() as u64) as usize];
    if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
        shared.stats.process_killed();
    }
}
