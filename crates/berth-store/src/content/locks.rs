//! One writer per ingest: containerd's ref locks (`plugins/content/local/locks.go`).
//!
//! Opening a writer takes the lock of its (namespace, ref); a second open
//! while the first writer lives fails with `Unavailable` and containerd's
//! message, `ref R locked for D (since T): unavailable`, which tells a
//! long-dead holder (large D) from contention (small D). containerd's clients
//! (`content.OpenWriter`) retry on `Unavailable`, so the lock is released the
//! moment the writer is closed or committed.
//!
//! An open waits a moment ([`GRACE`]) for a held lock before it fails. A
//! remote writer's `Close` only half-closes its Write stream and returns;
//! the daemon releases the lock when it sees the end of that stream, which
//! can come after the same client's next `Writer` on a new stream. Without
//! the wait, close-then-reopen (what containerd's content test suite does
//! to resume) fails now and then with `Unavailable`. A writer that really is
//! alive still gets `Unavailable`, [`GRACE`] later.

use berth_core::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an open waits for a held ref lock to be released.
pub(crate) const GRACE: Duration = Duration::from_millis(200);

/// The held locks, by ingest key.
#[derive(Debug, Default)]
pub(crate) struct RefLocks {
    held: Mutex<HashMap<String, SystemTime>>,
    /// Signalled whenever a lock is released.
    released: Condvar,
}

/// A held ref lock; dropping it releases the ref.
#[derive(Debug)]
pub(crate) struct RefLock {
    locks: Arc<RefLocks>,
    key: String,
}

impl RefLocks {
    /// Takes the lock of ingest `key` (whose ref is `reference`), or fails
    /// with `Unavailable` if a writer still holds it after [`GRACE`]. Blocks:
    /// call it off the async runtime.
    pub(crate) fn try_lock(self: &Arc<Self>, key: &str, reference: &str) -> Result<RefLock> {
        let deadline = Instant::now() + GRACE;
        let mut held = self.lock_map();
        while held.contains_key(key) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            held = match self.released.wait_timeout(held, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if let Some(since) = held.get(key) {
            let age = SystemTime::now().duration_since(*since).unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "ref {reference} locked for {} (since {}): unavailable",
                    berth_core::goduration::format(age),
                    go_time(*since)
                ),
            ));
        }
        held.insert(key.to_owned(), SystemTime::now());
        Ok(RefLock {
            locks: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    /// Whether ingest `key` has a live writer.
    pub(crate) fn is_locked(&self, key: &str) -> bool {
        self.lock_map().contains_key(key)
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        // The map stays consistent under a panic (single insert/remove).
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        self.locks.lock_map().remove(&self.key);
        self.locks.released.notify_all();
    }
}

/// A time the way Go's `Time.String` prints a UTC time:
/// `2024-05-01 10:00:00.123456789 +0000 UTC`.
pub(crate) fn go_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, da) = berth_core::time::civil_from_days(days as i64);
    let mut out = format!(
        "{y:04}-{mo:02}-{da:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        out.push('.');
        out.push_str(format!("{nanos:09}").trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_unavailable_until_the_first_drops() {
        let locks = Arc::new(RefLocks::default());
        let first = locks.try_lock("ns/ref", "ref").unwrap();
        let err = locks.try_lock("ns/ref", "ref").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().starts_with("ref ref locked for "), "{err}");
        assert!(err.message().ends_with(" +0000 UTC): unavailable"), "{err}");
        assert!(locks.try_lock("other/ref", "ref").is_ok());
        drop(first);
        assert!(!locks.is_locked("ns/ref"));
        locks.try_lock("ns/ref", "ref").unwrap();
    }

    #[test]
    fn a_lock_released_within_the_grace_is_taken() {
        // A closing writer's lock goes a moment after the next open asks.
        let locks = Arc::new(RefLocks::default());
        let first = locks.try_lock("ns/ref", "ref").unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(GRACE / 4);
            drop(first);
        });
        locks.try_lock("ns/ref", "ref").unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn times_print_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_714_557_600, 123_000_000);
        assert_eq!(go_time(t), "2024-05-01 10:00:00.123 +0000 UTC");
        assert_eq!(go_time(UNIX_EPOCH), "1970-01-01 00:00:00 +0000 UTC");
    }
}
