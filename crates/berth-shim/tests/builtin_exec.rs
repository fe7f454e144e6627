//! The shim's built-in exec (no `runc exec`), driven over ttrpc: the same
//! exec'd processes in a container using it and in one whose annotation
//! sends every exec to runc must see the same identity, capabilities,
//! limits, environment, cwd, namespaces, cgroups and streams; a missing
//! program fails as runc's does and leaves nothing; seccomp falls back to
//! runc. Root only.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

use berth_testkit::require_root;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::shim_async::TaskClient;
use serde_json::{json, Value};
use ttrpc::asynchronous::Client;

mod common;
const FORCE_RUNC: &str = "io.berth.shim.exec";

/// A bundle with its own shim (one container, `t1`, running `sleep`).
struct Bundle {
    dir: tempfile::TempDir,
    ns: String,
    /// The shim's stderr (`<bundle>/log`), held open for reading.
    log: std::fs::File,
}

impl Bundle {
    fn new(edit: impl FnOnce(&mut Value)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bshim-x-")
            .tempdir()
            .expect("tempdir");
        let ns = format!(
            "shimexec-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap_or_default().to_string_lossy()
        );
        let base = dir.path();
        berth_testkit::busybox_rootfs(&base.join("image")).expect("rootfs");
        let bundle = base.join("bundle");
        std::fs::create_dir_all(&bundle).expect("bundle");
        let ok = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .status()
            .expect("runc spec");
        assert!(ok.success());
        let path = bundle.join("config.json");
        let mut spec: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read spec")).expect("spec");
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = json!(["/bin/sleep", "1000"]);
        spec["root"]["readonly"] = false.into();
        // runc's default, `/t1`, would be shared by the tests' containers.
        spec["linux"]["cgroupsPath"] = format!("/{ns}").into();
        edit(&mut spec);
        std::fs::write(&path, spec.to_string()).expect("write spec");
        let publish = base.join("publish");
        std::fs::write(&publish, "#!/bin/sh\ncat > /dev/null\n").expect("publish");
        Command::new("chmod")
            .arg("+x")
            .arg(&publish)
            .status()
            .expect("chmod");
        nix::unistd::mkfifo(
            &bundle.join("log"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo log");
        let log = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(bundle.join("log"))
            .expect("open log");
        Bundle { dir, ns, log }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn shim(&self, action: &str) -> std::process::Output {
        common::run_shim(self.dir.path(), &self.ns, action)
    }

    /// What the shim wrote to its log so far.
    fn log(&mut self) -> String {
        let mut buf = Vec::new();
        let _ = self.log.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.shim("delete");
        // A test that failed never shut its shim down.
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim-berth-v2") && cmdline.contains(&self.ns) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        berth_testkit::unmount_under(self.dir.path());
        let _ = std::fs::remove_dir_all(format!("/run/berth/runc/{}", self.ns));
    }
}

/// A started shim with its container running.
struct Running {
    task: TaskClient,
    out_dir: PathBuf,
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(30_000_000_000)
}

/// One exec's outcome.
#[derive(Debug)]
struct Outcome {
    /// The Start error, if it failed.
    error: Option<String>,
    status: u32,
    stdout: String,
}

impl Running {
    async fn start(b: &Bundle) -> Running {
        let out = b.shim("start");
        assert!(out.status.success(), "{out:?}");
        let address = String::from_utf8(out.stdout).expect("utf8");
        let client = Client::connect(&address).await.expect("connect");
        let task = TaskClient::new(client);
        let mut create = api::CreateTaskRequest::new();
        create.id = "t1".into();
        create.bundle = b.path().display().to_string();
        let mut m = api::Mount::new();
        m.type_ = "bind".into();
        m.source = b.dir.path().join("image").display().to_string();
        m.options = vec!["rbind".into(), "rw".into()];
        create.rootfs.push(m);
        task.create(ctx(), &create).await.expect("create");
        let mut start = api::StartRequest::new();
        start.id = "t1".into();
        task.start(ctx(), &start).await.expect("start");
        Running {
            task,
            out_dir: b.dir.path().to_path_buf(),
        }
    }

    async fn exec(&self, exec_id: &str, process: &Value) -> Outcome {
        let out = self.out_dir.join(format!("{exec_id}.out"));
        let mut req = api::ExecProcessRequest::new();
        req.id = "t1".into();
        req.exec_id = exec_id.into();
        req.stdout = format!("file://{}", out.display());
        req.stderr = format!("file://{}", out.display());
        let mut any = Any::new();
        any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        any.value = process.to_string().into_bytes();
        req.spec = Some(any).into();
        self.task.exec(ctx(), &req).await.expect("exec");
        let mut start = api::StartRequest::new();
        start.id = "t1".into();
        start.exec_id = exec_id.into();
        let error = match self.task.start(ctx(), &start).await {
            Ok(_) => None,
            Err(ttrpc::Error::RpcStatus(s)) => Some(s.message().to_string()),
            Err(e) => Some(format!("{e:?}")),
        };
        let mut wait = api::WaitRequest::new();
        wait.id = "t1".into();
        wait.exec_id = exec_id.into();
        let status = self
            .task
            .wait(ctx(), &wait)
            .await
            .expect("wait")
            .exit_status;
        let mut delete = api::DeleteRequest::new();
        delete.id = "t1".into();
        delete.exec_id = exec_id.into();
        self.task.delete(ctx(), &delete).await.expect("delete exec");
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        Outcome {
            error,
            status,
            stdout,
        }
    }

    async fn pids(&self) -> usize {
        let mut req = api::PidsRequest::new();
        req.id = "t1".into();
        self.task
            .pids(ctx(), &req)
            .await
            .expect("pids")
            .processes
            .len()
    }

    async fn stop(self) {
        let mut kill = api::KillRequest::new();
        kill.id = "t1".into();
        kill.signal = 9;
        let _ = self.task.kill(ctx(), &kill).await;
        let mut wait = api::WaitRequest::new();
        wait.id = "t1".into();
        let _ = self.task.wait(ctx(), &wait).await;
        let mut delete = api::DeleteRequest::new();
        delete.id = "t1".into();
        let _ = self.task.delete(ctx(), &delete).await;
        let mut shutdown = api::ShutdownRequest::new();
        shutdown.id = "t1".into();
        let _ = self.task.shutdown(ctx(), &shutdown).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
}

/// Prints what an exec'd process is, in a form comparable across
/// containers (relations to the init rather than namespace inodes).
const PROBE: &str = r#"
echo cwd=$(pwd)
env | sort
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
echo oom=$(cat /proc/self/oom_score_adj)
for n in ipc uts net pid mnt; do
  if [ "$(readlink /proc/self/ns/$n)" = "$(readlink /proc/1/ns/$n)" ]; then echo $n=init; else echo $n=other; fi
done
if [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ]; then echo cgroup=init; else echo cgroup=other; fi
echo nofile=$(ulimit -Sn)/$(ulimit -Hn)
set -- $(cat /proc/$$/stat)
if [ "$6" = "$$" ]; then echo session=leader; else echo session=$6; fi
echo fds=$(ls /proc/$$/fd | tr '\n' ' ')
echo stdin=$(readlink /proc/$$/fd/0)
echo pid1=$(cat /proc/1/cmdline | tr '\0' ' ')
exit 3
"#;

/// An exec'd process with everything the built-in exec sets.
fn full_process() -> Value {
    json!({
        "args": ["/bin/sh", "-c", PROBE],
        "env": ["PATH=/usr/bin:/bin", "FOO=bar", "ONE=1", "FOO=baz"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [1001, 5]},
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 512}],
        "noNewPrivileges": true
    })
}

/// A minimal one: root, no capabilities or rlimits of its own (the
/// container's apply), no HOME (the container's passwd gives it).
fn minimal_process() -> Value {
    json!({
        "args": ["sh", "-c", PROBE],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0}
    })
}

fn force_runc(spec: &mut Value) {
    spec["annotations"] = json!({ FORCE_RUNC: "runc" });
}

#[test]
fn builtin_exec_matches_runc_exec() {
    require_root!();
    let mut builtin = Bundle::new(|_| {});
    let mut runc = Bundle::new(force_runc);
    let rt = runtime();
    rt.block_on(async {
        let b = Running::start(&builtin).await;
        let r = Running::start(&runc).await;
        for (name, process) in [("full", full_process()), ("minimal", minimal_process())] {
            let mine = b.exec(name, &process).await;
            let theirs = r.exec(name, &process).await;
            assert_eq!(mine.error, None, "{name}: {mine:?}");
            assert_eq!(theirs.error, None, "{name}: {theirs:?}");
            assert_eq!(mine.status, 3, "{name}: {mine:?}");
            assert_eq!(mine.status, theirs.status);
            // runc's prlimit of the exec's rlimits races the Go start-up of
            // its init, which raises the soft RLIMIT_NOFILE to the hard one:
            // either may win there.
            let comparable = |s: &str| {
                s.lines()
                    .filter(|l| !(name == "full" && l.starts_with("nofile=")))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(
                comparable(&mine.stdout),
                comparable(&theirs.stdout),
                "{name}: built-in (left) and runc (right) differ"
            );
            // Only root may read the init's namespace links.
            let root = name == "minimal";
            for line in [
                "ipc=init",
                "uts=init",
                "net=init",
                "pid=init",
                "mnt=init",
                "cgroup=init",
                "session=leader",
                "stdin=/dev/null",
                "pid1=/bin/sleep 1000",
            ] {
                if !root && line.ends_with("=init") && !line.starts_with("cgroup") {
                    continue;
                }
                assert!(
                    mine.stdout.lines().any(|l| l == line),
                    "{name}: no {line:?} in\n{}",
                    mine.stdout
                );
            }
        }
        let full = b.exec("again", &full_process()).await.stdout;
        for line in [
            "cwd=/tmp",
            "FOO=baz",
            "HOME=/",
            "Uid:\t1000\t1000\t1000\t1000",
            "Gid:\t1000\t1000\t1000\t1000",
            "Groups:\t5 1001 ",
            "CapEff:\t0000000000000020",
            "CapPrm:\t0000000000000020",
            "CapAmb:\t0000000000000020",
            "CapBnd:\t00000000000020a1",
            "NoNewPrivs:\t1",
            "nofile=512/2048",
        ] {
            assert!(full.lines().any(|l| l == line), "no {line:?} in\n{full}");
        }
        let minimal = b.exec("again-minimal", &minimal_process()).await.stdout;
        assert!(minimal.lines().any(|l| l == "HOME=/root"), "{minimal}");
        b.stop().await;
        r.stop().await;
    });
    assert!(!builtin.log().contains("runc exec ("), "{}", builtin.log());
    assert!(
        runc.log()
            .contains(&format!("runc exec (annotation {FORCE_RUNC}=runc)")),
        "{}",
        runc.log()
    );
}

#[test]
fn missing_program_fails_as_with_runc_and_leaves_nothing() {
    require_root!();
    let builtin = Bundle::new(|_| {});
    let runc = Bundle::new(force_runc);
    runtime().block_on(async {
        let b = Running::start(&builtin).await;
        let r = Running::start(&runc).await;
        for (i, (args, cwd)) in [
            (json!(["nope"]), "/"),
            (json!(["/nope"]), "/"),
            (json!(["/etc"]), "/"),
            (json!(["/bin/true"]), "/nope"),
        ]
        .into_iter()
        .enumerate()
        {
            let process = json!({"args": args, "env": ["PATH=/bin"], "cwd": cwd});
            let mine = b.exec(&format!("m{i}"), &process).await;
            let theirs = r.exec(&format!("m{i}"), &process).await;
            let mine = mine.error.expect("built-in exec of a missing program");
            let theirs = theirs.error.expect("runc exec of a missing program");
            let said = |e: &str| {
                e.split_once("unable to start container process: ")
                    .map(|(_, s)| s.to_string())
                    .unwrap_or_default()
            };
            assert!(
                mine.contains("OCI runtime exec failed: exec failed"),
                "{mine}"
            );
            assert!(!said(&mine).is_empty(), "{mine}");
            assert_eq!(said(&mine), said(&theirs), "{mine}\n{theirs}");
            assert_eq!(b.pids().await, 1, "only the init is left");
        }
        let mine = b
            .exec(
                "nf",
                &json!({"args": ["nope"], "env": ["PATH=/bin"], "cwd": "/"}),
            )
            .await;
        assert!(
            mine.error
                .as_deref()
                .unwrap_or_default()
                .contains(r#"exec: "nope": executable file not found in $PATH"#),
            "{mine:?}"
        );
        // The container is none the worse.
        let ok = b.exec("ok", &minimal_process()).await;
        assert_eq!(ok.status, 3, "{ok:?}");
        b.stop().await;
        r.stop().await;
    });
}

#[test]
fn seccomp_falls_back_to_runc() {
    require_root!();
    let mut b = Bundle::new(|spec| {
        spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    runtime().block_on(async {
        let r = Running::start(&b).await;
        let out = r.exec("sc", &minimal_process()).await;
        assert_eq!(out.status, 3, "{out:?}");
        assert!(
            out.stdout.lines().any(|l| l == "Seccomp:\t2"),
            "{}",
            out.stdout
        );
        r.stop().await;
    });
    assert!(
        b.log()
            .contains("runc exec (seccomp in the container spec)"),
        "{}",
        b.log()
    );
}

#[test]
fn shim_environment_forces_runc_exec() {
    // The forcing variable is read by the shim from its environment: a
    // shim started without it uses the built-in exec (checked above), one
    // started with it (inherited from the daemon) uses runc.
    require_root!();
    let mut b = Bundle::new(|_| {});
    let out = Command::new(common::SHIM)
        .current_dir(b.path())
        .env("BERTH_SHIM_EXEC", "runc")
        .args(["-namespace", &b.ns, "-id", "t1", "-address"])
        .arg(b.dir.path().join("daemon.sock"))
        .arg("-publish-binary")
        .arg(b.dir.path().join("publish"))
        .arg("start")
        .output()
        .expect("start shim");
    assert!(out.status.success(), "{out:?}");
    runtime().block_on(async {
        // `start` answers the address of the shim already serving.
        let r = Running::start(&b).await;
        let out = r.exec("e", &minimal_process()).await;
        assert_eq!(out.status, 3, "{out:?}");
        r.stop().await;
    });
    assert!(
        b.log().contains("runc exec (BERTH_SHIM_EXEC=runc)"),
        "{}",
        b.log()
    );
}

#[test]
fn exec_in_a_paused_container_goes_to_runc() {
    require_root!();
    let mut b = Bundle::new(|_| {});
    runtime().block_on(async {
        let r = Running::start(&b).await;
        let mut pause = api::PauseRequest::new();
        pause.id = "t1".into();
        r.task.pause(ctx(), &pause).await.expect("pause");
        let out = r.exec("p", &minimal_process()).await;
        assert!(
            out.error.as_deref().unwrap_or_default().contains("paused"),
            "{out:?}"
        );
        let mut resume = api::ResumeRequest::new();
        resume.id = "t1".into();
        r.task.resume(ctx(), &resume).await.expect("resume");
        let out = r.exec("q", &minimal_process()).await;
        assert_eq!(out.status, 3, "{out:?}");
        r.stop().await;
    });
    let log = b.log();
    assert!(log.contains("runc exec (the init is PAUSED)"), "{log}");
    assert_eq!(log.matches("runc exec (").count(), 1, "{log}");
}
