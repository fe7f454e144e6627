//! The Debian package as an operator meets it: `cargo deb` builds it,
//! `dpkg -i` installs it, the installed `/usr/bin/berthd` (with private
//! root, state and socket) runs a container through the installed shim and
//! CLI, and `dpkg --purge` leaves none of its files behind.
//!
//! It packages the binaries the test run already built (`cargo deb
//! --profile dev --no-build`, stripped): a release build of the three
//! binaries would cost CI ten minutes and test the same packaging; the real
//! package is `cargo deb -p berth-daemon --strip`, as the README says.
//! Global (it installs a package), so it is one test that holds a
//! machine-wide lock. Locally it is skipped when `cargo deb` is missing; CI
//! installs it (scripts/setup.sh).

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_testkit::{
    busybox_rootfs, in_ci, require_root, run_with_timeout, unmount_under, CmdOutput,
};
use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;

const PACKAGE: &str = "berth";
/// Serializes every run of this test on the machine: dpkg's database and
/// `/usr/bin` are global.
const LOCK: &str = "/tmp/berth-test-deb-package.lock";
/// What the package must install.
const EXPECTED: [&str; 6] = [
    "/usr/bin/berthd",
    "/usr/bin/berth",
    "/usr/bin/containerd-shim-berth-v2",
    "/etc/berth/config.toml",
    "/usr/lib/systemd/system/berthd.service",
    "/usr/share/doc/berth/README.md",
];
const QUICK: Duration = Duration::from_secs(60);

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[track_caller]
fn run(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    run_with_timeout(cmd, timeout).unwrap_or_else(|err| panic!("{err:#}"))
}

/// Whether `cargo deb` is installed; if not, says why the test is skipped,
/// or fails in CI, where scripts/setup.sh installs it.
fn have_cargo_deb() -> bool {
    let found = Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found || !in_ci(),
        "cargo deb is missing in CI: scripts/setup.sh installs it"
    );
    if !found {
        eprintln!("skipping: `cargo deb` is not installed (cargo install cargo-deb --locked)");
    }
    found
}

/// Builds the package into `out` and returns the `.deb`'s path.
fn build_deb(out: &Path) -> PathBuf {
    let built = run(
        Command::new(cargo())
            .current_dir(workspace_root())
            .args([
                "deb",
                "-p",
                "berth-daemon",
                "--profile",
                "dev",
                "--no-build",
            ])
            .args(["--strip", "--output"])
            .arg(out),
        Duration::from_secs(3600),
    )
    .assert_success();
    let deb = std::fs::read_dir(out)
        .expect("read the output directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    deb.unwrap_or_else(|| panic!("no .deb in {}:\n{built}", out.display()))
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout) == "install ok installed")
}

/// The installed package; dropping it purges the package if the test did not.
struct Installed {
    files: Vec<PathBuf>,
    purged: bool,
}

impl Installed {
    fn install(deb: &Path) -> Self {
        assert!(
            !installed(),
            "the {PACKAGE} package is already installed here: this test installs and purges it, \
             so remove it first (dpkg --purge {PACKAGE})"
        );
        let mut guard = Self {
            files: Vec::new(),
            purged: false,
        };
        run(Command::new("dpkg").arg("-i").arg(deb), QUICK).assert_success();
        let listed = run(Command::new("dpkg").args(["-L", PACKAGE]), QUICK).assert_success();
        guard.files = listed
            .lines()
            .into_iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect();
        guard
    }

    fn purge(&mut self) -> CmdOutput {
        self.purged = true;
        run(Command::new("dpkg").args(["--purge", PACKAGE]), QUICK)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let _ = self.purge();
        }
    }
}

/// `/usr/bin/berthd` on private paths; dropping it kills the daemon and
/// unmounts what it left mounted.
struct Running {
    dir: TempDir,
    child: Option<Child>,
    notify: UnixDatagram,
}

impl Running {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-deb-")
            .tempdir()
            .expect("tempdir");
        let notify = UnixDatagram::bind(dir.path().join("notify.sock")).expect("notify socket");
        let log = File::create(dir.path().join("berthd.log")).expect("log file");
        let child = Command::new("/usr/bin/berthd")
            .args(["--config", "/etc/berth/config.toml", "--log-level", "debug"])
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(dir.path().join("berth.sock"))
            .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/berthd");
        let running = Self {
            dir,
            child: Some(child),
            notify,
        };
        assert_eq!(running.next_state(), "READY=1", "{}", running.log());
        running
    }

    fn next_state(&self) -> String {
        self.notify
            .set_read_timeout(Some(QUICK))
            .expect("set timeout");
        let mut buf = [0u8; 256];
        match self.notify.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(err) => format!("no notification: {err}"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    fn berth(&self, args: &[&str]) -> CmdOutput {
        run(
            Command::new("/usr/bin/berth")
                .arg("--address")
                .arg(self.dir.path().join("berth.sock"))
                .args(args),
            QUICK,
        )
    }

    /// SIGTERM, as `systemctl stop` sends it; the exit must be clean.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("berthd running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = child.wait().expect("wait for berthd");
        assert!(status.success(), "{status:?}\n{}", self.log());
        assert_eq!(self.next_state(), "STOPPING=1", "{}", self.log());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        unmount_under(self.dir.path());
    }
}

fn assert_installed_files(package: &Installed) {
    for path in EXPECTED {
        assert!(
            package.files.contains(&PathBuf::from(path)),
            "{path} is not in the package: {:?}",
            package.files
        );
    }
    let conffiles = run(
        Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]),
        QUICK,
    );
    assert!(
        conffiles.stdout.contains("/etc/berth/config.toml"),
        "{conffiles}"
    );
    for bin in ["berthd", "berth"] {
        let version = run(
            Command::new(format!("/usr/bin/{bin}")).arg("--version"),
            QUICK,
        )
        .assert_success();
        let want = format!("{bin} {} ", env!("CARGO_PKG_VERSION"));
        assert!(version.stdout.starts_with(&want), "{version}");
    }
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let verify = run(
            Command::new("systemd-analyze")
                .args(["verify", "/usr/lib/systemd/system/berthd.service"]),
            QUICK,
        );
        assert!(
            verify.success() && verify.stdout.is_empty() && verify.stderr.is_empty(),
            "{verify}"
        );
    }
}

fn run_a_container(daemon: &Running) {
    let rootfs = daemon.dir.path().join("rootfs");
    busybox_rootfs(&rootfs).expect("busybox rootfs");
    let fifo = daemon.dir.path().join("fifo");
    let out = daemon.berth(&[
        "run",
        "--rm",
        "--fifo-dir",
        fifo.to_str().expect("utf-8"),
        "--rootfs",
        rootfs.to_str().expect("utf-8"),
        "from-the-package",
        "echo",
        "hello from the package",
    ]);
    assert!(out.success(), "{out}\n{}", daemon.log());
    assert_eq!(out.stdout, "hello from the package\n", "{out}");
    let left = daemon.berth(&["containers", "ls", "-q"]).assert_success();
    assert!(left.stdout.trim().is_empty(), "{left}");
}

/// A detached container's init is a child of the installed shim.
fn the_installed_shim_runs_containers(daemon: &Running) {
    let rootfs = daemon.dir.path().join("rootfs");
    let fifo = daemon.dir.path().join("fifo");
    let id = "detached";
    daemon
        .berth(&[
            "run",
            "-d",
            "--fifo-dir",
            fifo.to_str().expect("utf-8"),
            "--rootfs",
            rootfs.to_str().expect("utf-8"),
            id,
            "sleep",
            "60",
        ])
        .assert_success();
    let tasks = daemon.berth(&["tasks", "ls"]).assert_success();
    let pid = berth_testkit::task_rows(&tasks)
        .into_iter()
        .find(|row| row.id == id)
        .unwrap_or_else(|| panic!("no task {id}:\n{tasks}"))
        .pid;
    let shim = parent_exe(pid);
    daemon.berth(&["tasks", "rm", "-f", id]).assert_success();
    daemon.berth(&["containers", "rm", id]).assert_success();
    assert_eq!(
        shim.as_deref(),
        Some(Path::new("/usr/bin/containerd-shim-berth-v2")),
        "the task's parent is not the installed shim\n{}",
        daemon.log()
    );
}

/// The executable of `pid`'s parent process.
fn parent_exe(pid: u32) -> Option<PathBuf> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')')?.1;
    let ppid = after.split_whitespace().nth(1)?;
    std::fs::read_link(format!("/proc/{ppid}/exe")).ok()
}

#[test]
fn the_deb_installs_runs_a_container_and_purges_cleanly() {
    if !require_root() || !have_cargo_deb() {
        return;
    }
    let lock = File::create(LOCK).expect("create the test lock");
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).expect("take the test lock");
    let out = TempDir::new().expect("tempdir");
    let deb = build_deb(out.path());

    let mut package = Installed::install(&deb);
    assert_installed_files(&package);
    let mut daemon = Running::start();
    run_a_container(&daemon);
    the_installed_shim_runs_containers(&daemon);
    daemon.stop();
    drop(daemon);

    package.purge().assert_success();
    assert!(!installed(), "{PACKAGE} is still installed after the purge");
    let left: Vec<&PathBuf> = package.files.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "files left after dpkg --purge: {left:?}");
    assert!(
        !Path::new("/etc/berth").exists(),
        "/etc/berth left after the purge"
    );
}
