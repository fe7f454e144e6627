//! The shim driven directly over ttrpc, as a daemon does: `start` (twice),
//! Connect under the v2 service name, Create with a bind-mounted rootfs and
//! a stdout FIFO, Start, Wait, Delete (rootfs unmounted; two at once
//! answer the exit and `NotFound`), Shutdown, and the `delete` action. No
//! daemon ttrpc socket exists, so every event goes through the publish
//! binary. Root only.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::require_root;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::TaskClient;
use ttrpc::asynchronous::Client;

mod common;

struct Bundle {
    dir: tempfile::TempDir,
    ns: String,
}

impl Bundle {
    fn path(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn shim(&self, action: &str) -> std::process::Output {
        common::run_shim(self.dir.path(), &self.ns, action)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.shim("delete");
        berth_testkit::unmount_under(self.dir.path());
        let _ = std::fs::remove_dir_all(format!("/run/berth/runc/{}", self.ns));
    }
}

fn bundle() -> Bundle {
    let dir = tempfile::Builder::new()
        .prefix("bshim-t-")
        .tempdir()
        .expect("tempdir");
    let b = Bundle {
        // One namespace (runc root) per bundle: the tests run side by side.
        ns: format!(
            "shimttrpc-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap_or_default().to_string_lossy()
        ),
        dir,
    };
    let base = b.dir.path();
    berth_testkit::busybox_rootfs(&base.join("image")).expect("rootfs");
    std::fs::create_dir_all(b.path()).expect("bundle");
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(b.path())
        .status()
        .expect("runc spec");
    assert!(spec.success());
    let path = b.path().join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read spec")).expect("spec");
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "echo hi; exit 7"]);
    spec["process"]["oomScoreAdj"] = (-1000).into();
    spec["root"]["readonly"] = false.into();
    std::fs::write(&path, spec.to_string()).expect("write spec");
    let publish = base.join("publish");
    let log = base.join("events.log");
    std::fs::write(
        &publish,
        format!(
            "#!/bin/sh\n[ -e {} ] && exit 1\necho \"$@\" >> {}\ncat > /dev/null\n",
            base.join("down").display(),
            log.display()
        ),
    )
    .expect("publish script");
    Command::new("chmod")
        .arg("+x")
        .arg(&publish)
        .status()
        .expect("chmod");
    b
}

/// The topics the publish binary took, in order.
fn published(b: &Bundle) -> Vec<String> {
    let log = std::fs::read_to_string(b.dir.path().join("events.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "--topic").nth(1))
        .map(String::from)
        .collect()
}

#[test]
fn events_the_daemon_refuses_are_retried_in_order_and_do_not_hold_the_exit() {
    require_root!();
    let b = bundle();
    let down = b.dir.path().join("down");
    let first = b.shim("start");
    assert!(first.status.success(), "{first:?}");
    let address = String::from_utf8(first.stdout).expect("utf8");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let shim_pid = rt.block_on(async {
        let client = Client::connect(&address).await.expect("connect");
        let task = TaskClient::new(client);
        let ctx = || ttrpc::context::with_timeout(30_000_000_000);
        let mut connect = api::ConnectRequest::new();
        connect.id = "t1".into();
        let shim_pid = task
            .connect(ctx(), &connect)
            .await
            .expect("connect")
            .shim_pid;
        let mut create = api::CreateTaskRequest::new();
        create.id = "t1".into();
        create.bundle = b.path().display().to_string();
        let mut m = api::Mount::new();
        m.type_ = "bind".into();
        m.source = b.dir.path().join("image").display().to_string();
        m.options = vec!["rbind".into(), "rw".into()];
        create.rootfs.push(m);
        task.create(ctx(), &create).await.expect("create");
        // Publishing is asynchronous: wait for the create's event to be
        // taken before the daemon goes away, however loaded the machine.
        let deadline = Instant::now() + Duration::from_secs(15);
        while published(&b).is_empty() {
            assert!(Instant::now() < deadline, "/tasks/create never published");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The "daemon" is down while the task starts and exits.
        std::fs::write(&down, "").expect("take the daemon down");
        let mut start = api::StartRequest::new();
        start.id = "t1".into();
        task.start(ctx(), &start).await.expect("start");
        let mut wait = api::WaitRequest::new();
        wait.id = "t1".into();
        assert_eq!(task.wait(ctx(), &wait).await.expect("wait").exit_status, 7);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(published(&b), ["/tasks/create"]);

        // Back up: the retries deliver both, in order.
        std::fs::remove_file(&down).expect("bring the daemon back");
        let deadline = Instant::now() + Duration::from_secs(15);
        while published(&b).len() < 3 {
            assert!(
                Instant::now() < deadline,
                "not retried: {:?}",
                published(&b)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            published(&b),
            ["/tasks/create", "/tasks/start", "/tasks/exit"]
        );

        // Down again for Delete and Shutdown: the undelivered /tasks/delete
        // must not keep the shim alive for its 15 s of retries.
        std::fs::write(&down, "").expect("take the daemon down");
        let mut delete = api::DeleteRequest::new();
        delete.id = "t1".into();
        task.delete(ctx(), &delete).await.expect("delete");
        let mut shutdown = api::ShutdownRequest::new();
        shutdown.id = "t1".into();
        let _ = task.shutdown(ctx(), &shutdown).await;
        shim_pid
    });
    let deadline = Instant::now() + Duration::from_secs(6);
    while Path::new(&format!("/proc/{shim_pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "shim held its exit for undelivered events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(published(&b).len(), 3, "{:?}", published(&b));
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

#[test]
fn shim_serves_a_container_over_ttrpc() {
    require_root!();
    let b = bundle();
    let first = b.shim("start");
    assert!(first.status.success(), "{first:?}");
    let address = String::from_utf8(first.stdout).expect("utf8");
    assert!(address.starts_with("unix:///run/berth/s/"), "{address}");
    assert_eq!(
        std::fs::read_to_string(b.path().join("address")).expect("address"),
        address
    );
    let again = b.shim("start");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        address,
        "second start"
    );

    let stdout = b.dir.path().join("stdout");
    mkfifo(&stdout);
    let reader = std::thread::spawn({
        let stdout = stdout.clone();
        move || {
            let mut s = String::new();
            std::fs::File::open(stdout)
                .expect("open fifo")
                .read_to_string(&mut s)
                .expect("read");
            s
        }
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let shim_pid = rt.block_on(async {
        let client = Client::connect(&address).await.expect("connect");
        // containerd 1.6 calls the v2 service name.
        let mut req = ttrpc::Request::new();
        req.service = "containerd.task.v2.Task".into();
        req.method = "Connect".into();
        req.payload = api::ConnectRequest::new().write_to_bytes().expect("encode");
        let res = client.request(req).await.expect("v2 Connect");
        let connect = api::ConnectResponse::parse_from_bytes(&res.payload).expect("decode");
        assert!(connect.shim_pid > 0);

        let task = TaskClient::new(client);
        let ctx = || ttrpc::context::with_timeout(30_000_000_000);
        let mut create = api::CreateTaskRequest::new();
        create.id = "t1".into();
        create.bundle = b.path().display().to_string();
        create.stdout = stdout.display().to_string();
        let mut m = api::Mount::new();
        m.type_ = "bind".into();
        m.source = b.dir.path().join("image").display().to_string();
        m.options = vec!["rbind".into(), "rw".into()];
        create.rootfs.push(m);
        let created = task.create(ctx(), &create).await.expect("create");
        assert!(created.pid > 0);
        assert!(is_mounted(&b.path().join("rootfs")));

        let mut start = api::StartRequest::new();
        start.id = "t1".into();
        task.start(ctx(), &start).await.expect("start");
        let mut wait = api::WaitRequest::new();
        wait.id = "t1".into();
        let waited = task.wait(ctx(), &wait).await.expect("wait");
        assert_eq!(waited.exit_status, 7);

        let mut kill = api::KillRequest::new();
        kill.id = "t1".into();
        kill.signal = 9;
        let err = task
            .kill(ctx(), &kill)
            .await
            .expect_err("kill of an exited task");
        assert!(format!("{err:?}").contains("NOT_FOUND"), "{err:?}");

        let mut delete = api::DeleteRequest::new();
        delete.id = "t1".into();
        let deleted = task.delete(ctx(), &delete).await.expect("delete");
        assert_eq!(deleted.exit_status, 7);
        assert!(!is_mounted(&b.path().join("rootfs")));

        let mut shutdown = api::ShutdownRequest::new();
        shutdown.id = "t1".into();
        let _ = task.shutdown(ctx(), &shutdown).await;
        connect.shim_pid
    });
    assert_eq!(reader.join().expect("reader"), "hi\n");

    // Shutdown unlinks the socket before it answers; the shim exits after
    // flushing its events.
    let socket = address.trim_start_matches("unix://").to_string();
    assert!(!Path::new(&socket).exists(), "socket left after Shutdown");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{shim_pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "shim did not exit after Shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(b.dir.path().join("events.log")).expect("events");
    let topics: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "--topic").nth(1))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{log}"
    );

    let out = b.shim("delete");
    assert!(out.status.success(), "{out:?}");
    let r = api::DeleteResponse::parse_from_bytes(&out.stdout).expect("DeleteResponse");
    assert_eq!(r.exit_status, 137);
    assert!(r.exited_at.is_some());
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

/// Two Deletes of one exited task at once, as a daemon that does not
/// serialise them (containerd 1.6) sends: one answers the exit, the other
/// `NotFound` (containerd's shim: "cannot delete a deleted process"),
/// never the `Unknown` of a second `runc delete`. Run a few times.
#[test]
fn two_deletes_of_an_exited_task_answer_the_exit_and_not_found() {
    require_root!();
    for round in 0..8 {
        let b = bundle();
        let started = b.shim("start");
        assert!(started.status.success(), "{started:?}");
        let address = String::from_utf8(started.stdout).expect("utf8");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let ctx = || ttrpc::context::with_timeout(30_000_000_000);
            let task = TaskClient::new(Client::connect(&address).await.expect("connect"));
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
            let mut wait = api::WaitRequest::new();
            wait.id = "t1".into();
            task.wait(ctx(), &wait).await.expect("wait");

            // Each Delete on its own connection, as two daemon calls.
            let other = TaskClient::new(Client::connect(&address).await.expect("connect"));
            let mut delete = api::DeleteRequest::new();
            delete.id = "t1".into();
            let (first, second) =
                tokio::join!(task.delete(ctx(), &delete), other.delete(ctx(), &delete));
            let (won, lost) = match (first, second) {
                (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
                other => panic!("round {round}: the deletes answered {other:?}"),
            };
            assert_eq!(won.exit_status, 7, "round {round}");
            assert!(
                format!("{lost:?}").contains("NOT_FOUND"),
                "round {round}: {lost:?}"
            );
            let mut shutdown = api::ShutdownRequest::new();
            shutdown.id = "t1".into();
            let _ = task.shutdown(ctx(), &shutdown).await;
        });
    }
}
