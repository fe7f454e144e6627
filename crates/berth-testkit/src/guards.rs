//! "Can this test run here?" checks.
//!
//! As in containerd's `pkg/testutil`, privilege is explicit: a test that needs
//! root or Debian's `ctr` says so first. Locally a missing prerequisite skips
//! the test with a reason on stderr; in CI, which runs as root with every
//! package installed, it fails the test, so a broken CI machine cannot turn the
//! suite green by skipping it.

use std::env;

/// Whether the tests run in CI: `CI` is set to anything but `""`, `0` or `false`.
pub fn in_ci() -> bool {
    env::var("CI")
        .map(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
        .unwrap_or(false)
}

/// True when the process runs as root. Otherwise prints why the test is
/// skipped and returns false — or panics in CI.
#[track_caller]
pub fn require_root() -> bool {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return true;
    }
    unmet(&format!("needs root (running as uid {uid})"))
}

/// True when Debian's `ctr` can be found (see [`crate::ctr_bin`]). Otherwise
/// prints why the test is skipped and returns false — or panics in CI.
#[track_caller]
pub fn require_ctr() -> bool {
    match crate::ctr_bin() {
        Ok(_) => true,
        Err(err) => unmet(&format!("needs ctr: {err:#}")),
    }
}

#[track_caller]
pub(crate) fn unmet(reason: &str) -> bool {
    let at = std::panic::Location::caller();
    assert!(!in_ci(), "test at {at} {reason}, and CI must not skip it");
    eprintln!("skipping test at {at}: {reason}");
    false
}

/// Returns from the calling test (skipping it) unless it runs as root; panics
/// in CI instead of skipping. See [`require_root()`](fn@crate::require_root).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::require_root() {
            return;
        }
    };
}

/// Returns from the calling test (skipping it) unless Debian's `ctr` is
/// installed; panics in CI instead of skipping.
#[macro_export]
macro_rules! require_ctr {
    () => {
        if !$crate::require_ctr() {
            return;
        }
    };
}
