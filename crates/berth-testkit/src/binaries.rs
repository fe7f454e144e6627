//! Finding the programs a test runs: berth's own binaries from the cargo target
//! directory, and Debian's `ctr`.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The `berthd` binary: `$BERTHD_BIN`, else `berthd` in the cargo target
/// directory the running test was built into.
pub fn berthd_bin() -> Result<PathBuf> {
    workspace_bin("berthd", "BERTHD_BIN")
}

/// The `berth` CLI binary: `$BERTH_BIN`, else `berth` in the cargo target
/// directory the running test was built into.
pub fn berth_bin() -> Result<PathBuf> {
    workspace_bin("berth", "BERTH_BIN")
}

/// Debian's `ctr`: `$CTR_BIN`, else `/usr/bin/ctr`, else the first `ctr` on `PATH`.
pub fn ctr_bin() -> Result<PathBuf> {
    system_bin("ctr", "CTR_BIN")
}

/// Debian's `containerd`: `$CONTAINERD_BIN`, else `/usr/bin/containerd`, else `PATH`.
pub fn containerd_bin() -> Result<PathBuf> {
    system_bin("containerd", "CONTAINERD_BIN")
}

fn system_bin(name: &str, var: &str) -> Result<PathBuf> {
    if let Some(path) = env::var_os(var) {
        return existing(PathBuf::from(path), var);
    }
    let usr = Path::new("/usr/bin").join(name);
    if is_executable(&usr) {
        return Ok(usr);
    }
    search_path(name).with_context(|| {
        format!("{name} not found in /usr/bin or on PATH (install Debian's `containerd` package: scripts/setup.sh)")
    })
}

fn workspace_bin(name: &str, var: &str) -> Result<PathBuf> {
    if let Some(path) = env::var_os(var) {
        return existing(PathBuf::from(path), var);
    }
    let dir = profile_dir()?;
    let path = dir.join(name);
    if is_executable(&path) {
        return Ok(path);
    }
    bail!(
        "{name} not found at {} (run `cargo build --bins` first, or set {var})",
        path.display()
    )
}

/// The profile directory (`target/debug`) holding the running executable.
/// Test executables live in `target/debug/deps`, examples in
/// `target/debug/examples`; both sit one level below it.
pub(crate) fn profile_dir() -> Result<PathBuf> {
    let exe = env::current_exe().context("locating the running test executable")?;
    let parent = exe
        .parent()
        .with_context(|| format!("{} has no parent directory", exe.display()))?;
    let in_subdir = matches!(
        parent.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    );
    match (in_subdir, parent.parent()) {
        (true, Some(profile)) => Ok(profile.to_path_buf()),
        _ => Ok(parent.to_path_buf()),
    }
}

fn existing(path: PathBuf, var: &str) -> Result<PathBuf> {
    if is_executable(&path) {
        Ok(path)
    } else {
        bail!("{var}={} is not an executable file", path.display())
    }
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_the_profile_directory() {
        let dir = profile_dir().expect("target dir");
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }
}
