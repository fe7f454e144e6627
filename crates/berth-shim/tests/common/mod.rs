//! Debian's containerd 1.6 on a private socket, with `containerd-shim-berth-v2`
//! (this crate's binary) on its PATH as runtime `io.containerd.berth.v2`.
//!
//! [`Containerd`] is a guard: dropping it force-removes every task and
//! container of its namespace, kills the daemon and any shim left for it,
//! unmounts what is below its directory and removes the runc state.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_testkit::{run_with_timeout, CmdOutput, LineStream};

pub const RUNTIME: &str = "io.containerd.berth.v2";
pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs this crate's shim binary with `action` (`start`, `delete`) for task
/// `t1` of namespace `ns`, its bundle at `<dir>/bundle`, as a daemon at
/// `<dir>/daemon.sock` would.
pub fn run_shim(dir: &Path, ns: &str, action: &str) -> std::process::Output {
    let bundle = dir.join("bundle");
    Command::new(SHIM)
        .current_dir(&bundle)
        .args(["-namespace", ns, "-id", "t1", "-address"])
        .arg(dir.join("daemon.sock"))
        .arg("-publish-binary")
        .arg(dir.join("publish"))
        .arg("-bundle")
        .arg(&bundle)
        .arg(action)
        .output()
        .expect("run shim")
}

pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub namespace: String,
    child: Option<Child>,
}

impl Containerd {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bshim-")
            .tempdir()
            .expect("tempdir");
        let base = dir.path();
        let namespace = format!(
            "shimtest-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = {debug:?}\n",
            root = base.join("root"),
            state = base.join("state"),
            sock = base.join("c.sock").display().to_string(),
            debug = base.join("debug.sock"),
        );
        std::fs::write(base.join("config.toml"), config).expect("config");
        let log = std::fs::File::create(base.join("containerd.log")).expect("log");
        let shim_dir = Path::new(SHIM).parent().expect("shim dir");
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(base.join("config.toml"))
            .args(["--log-level", "debug"])
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            dir,
            namespace,
            child: Some(child),
        };
        c.wait_ready();
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.address().exists() && self.try_ctr(&["version"]).is_ok_and(|o| o.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd did not start:\n{}", self.log());
    }

    pub fn address(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    pub fn rootfs(&self) -> PathBuf {
        let dir = self.dir.path().join("rootfs");
        if !dir.exists() {
            berth_testkit::busybox_rootfs(&dir).expect("busybox rootfs");
        }
        dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(berth_testkit::ctr_bin().expect("ctr"));
        cmd.env_remove("CONTAINERD_ADDRESS")
            .arg("--address")
            .arg(self.address())
            .args(["-n", &self.namespace]);
        cmd
    }

    pub fn try_ctr(&self, args: &[&str]) -> anyhow::Result<CmdOutput> {
        run_with_timeout(self.command().args(args), Duration::from_secs(60))
    }

    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        self.try_ctr(args).expect("run ctr")
    }

    /// `ctr run --runtime io.containerd.berth.v2 [flags] --rootfs DIR ID cmd…`.
    #[track_caller]
    pub fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> CmdOutput {
        let rootfs = self.rootfs();
        let mut args = vec!["run", "--runtime", RUNTIME];
        args.extend_from_slice(flags);
        let rootfs = rootfs.display().to_string();
        args.extend_from_slice(&["--rootfs", &rootfs, id]);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    pub fn events(&self) -> LineStream {
        LineStream::spawn(self.command().arg("events")).expect("ctr events")
    }

    /// The status column of `ctr tasks ls` for `id`, if listed.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["tasks", "ls"]);
        out.stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&id))
            .and_then(|f| f.get(2).map(|s| s.to_string()))
    }

    /// Polls until `pred` holds for the task's status (None: not listed).
    #[track_caller]
    pub fn wait_status(&self, id: &str, pred: impl Fn(Option<&str>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let st = self.task_status(id);
            if pred(st.as_deref()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} stuck at {st:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 5 s) until every shim of this daemon has exited: the
    /// daemon calls Shutdown after Delete, so a shim may outlive `ctr` by a
    /// moment.
    #[track_caller]
    pub fn wait_no_shims(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.shim_pids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "shims left: {:?}",
                self.shim_pids()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids of shims serving this daemon.
    pub fn shim_pids(&self) -> Vec<i32> {
        let needle = self.address().display().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim-berth-v2") && cmdline.contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== containerd log ===\n{}\n=== end ===", self.log());
        }
        let ids: Vec<String> = self
            .try_ctr(&["containers", "ls", "-q"])
            .map(|o| o.stdout.lines().map(String::from).collect())
            .unwrap_or_default();
        for id in &ids {
            let _ = self.try_ctr(&["tasks", "kill", "-a", "-s", "KILL", id]);
            let _ = self.try_ctr(&["tasks", "rm", "-f", id]);
            let _ = self.try_ctr(&["containers", "rm", id]);
        }
        for pid in self.shim_pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        berth_testkit::unmount_under(self.dir.path());
        let _ = std::fs::remove_dir_all(format!("/run/berth/runc/{}", self.namespace));
    }
}
