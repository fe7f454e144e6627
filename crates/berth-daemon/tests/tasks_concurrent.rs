//! Tasks called at the same time by several clients, as kubelet, the CRI
//! plugin and `ctr` do: two Deletes of one task, and Kill racing Delete.
//!
//! containerd 1.6 (`services/tasks/local.go`) answers a Delete of a task it
//! no longer has with `NotFound` ("task ID not found"), and its runtime
//! removes the task from its list only once the shim has deleted it; so of
//! two Deletes of one exited task, one gets the exit and the other
//! `NotFound` — never the `Unknown` of a second `runc delete`.
//!
//! The tasks run a busybox image (an overlay rootfs the shim unmounts on
//! Delete, which widens the window in which a second `runc delete` ran
//! and failed with `Unknown`), through the tonic client against a private
//! berthd, one HTTP/2 connection per racing client opened beforehand, so
//! the calls reach the daemon together; each race is run many times, under
//! berth's shim and under containerd's Go shim.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_testkit::pb::services::v1::tasks_client::TasksClient;
use berth_testkit::pb::services::v1::{DeleteTaskRequest, KillRequest};
use berth_testkit::{
    block_on, busybox_oci_archive, connect, in_ci, require_ctr, require_root, task_rows,
    wait_task_status, with_namespace, ArchiveNames, Daemon,
};
use tonic::transport::Channel;
use tonic::Code;

/// The namespace `ctr` uses by default.
const NAMESPACE: &str = "default";

/// How many times each race is run.
const ROUNDS: usize = 25;

/// The busybox image the tasks run: an overlay snapshot the shim mounts
/// and unmounts, as for the containers and pods of real clients.
const IMAGE: &str = "docker.io/library/busybox:concurrent";

/// A daemon with a busybox image.
struct Harness {
    daemon: Daemon,
}

/// containerd's Go runc shim, from Debian's `containerd` package.
const GO_SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

fn harness() -> Harness {
    start(Daemon::builder())
}

/// A harness whose `io.containerd.runc.v2` tasks run under containerd's Go
/// shim instead of berth's; `None` (the test skipped) if it is missing.
fn go_shim_harness() -> Option<Harness> {
    if !std::path::Path::new(GO_SHIM).exists() {
        assert!(!in_ci(), "{GO_SHIM} is missing, and CI must not skip this");
        eprintln!("skipping: {GO_SHIM} is missing (Debian's containerd package has it)");
        return None;
    }
    let config = format!(
        "version = 2\n[plugins.\"io.containerd.runtime.v2.task\".shims]\n\
         \"io.containerd.runc.v2\" = {GO_SHIM:?}\n"
    );
    Some(start(Daemon::builder().config(config)))
}

fn start(builder: berth_testkit::DaemonBuilder) -> Harness {
    let daemon = builder
        .start()
        .unwrap_or_else(|e| panic!("start daemon: {e:#}"));
    let names = ArchiveNames {
        ref_name: Some("concurrent".into()),
        image_name: Some(IMAGE.into()),
    };
    let archive = busybox_oci_archive(&names).expect("archive");
    let path = daemon.dir().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    daemon
        .ctr(&["images", "import", path.to_str().expect("utf-8 path")])
        .assert_success();
    Harness { daemon }
}

impl Harness {
    /// `ctr run -d IMAGE id cmd…`, asserting success.
    fn run_detached(&self, id: &str, cmd: &[&str]) {
        let mut args = vec!["run", "-d", IMAGE, id];
        args.extend_from_slice(cmd);
        self.daemon.ctr(&args).assert_success();
    }

    /// Waits until `id`'s task has status `want` (as `ctr tasks ls` shows it).
    fn wait_status(&self, id: &str, want: &str) {
        wait_task_status(
            || task_rows(&self.daemon.ctr(&["tasks", "ls"]).assert_success()),
            id,
            want,
            Duration::from_secs(15),
        );
    }

    /// Task ids `ctr tasks ls` lists.
    fn task_ids(&self) -> Vec<String> {
        task_rows(&self.daemon.ctr(&["tasks", "ls"]).assert_success())
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    /// Kills and deletes whatever is left of `id`, then its container.
    fn remove(&self, id: &str) {
        let _ = self
            .daemon
            .try_ctr(None, &["tasks", "kill", "-a", "-s", "KILL", id]);
        let _ = self.daemon.try_ctr(None, &["tasks", "rm", "-f", id]);
        let _ = self.daemon.try_ctr(None, &["containers", "rm", id]);
    }

    /// Bundles left in the daemon's state directory.
    fn bundles(&self) -> Vec<PathBuf> {
        let dir = self
            .daemon
            .state()
            .join("io.containerd.runtime.v2.task")
            .join(NAMESPACE);
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

/// The outcome of one call: the gRPC code and message.
type Outcome = (Code, String);

fn outcome<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_string()),
    }
}

async fn delete(channel: Channel, id: String) -> Outcome {
    let request = DeleteTaskRequest { container_id: id };
    let request = with_namespace(request, NAMESPACE).expect("request");
    outcome(TasksClient::new(channel).delete(request).await)
}

async fn kill(channel: Channel, id: String, signal: u32) -> Outcome {
    let request = KillRequest {
        container_id: id,
        exec_id: String::new(),
        signal,
        all: false,
    };
    let request = with_namespace(request, NAMESPACE).expect("request");
    outcome(TasksClient::new(channel).kill(request).await)
}

/// Runs the calls `first` and `second` make at once, each on its own
/// connection (opened beforehand, so both calls leave together).
fn race<A, B>(
    address: &Path,
    first: impl FnOnce(Channel) -> A,
    second: impl FnOnce(Channel) -> B,
) -> (Outcome, Outcome)
where
    A: Future<Output = Outcome> + Send + 'static,
    B: Future<Output = Outcome> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let a = connect(address).await.expect("connect");
        let b = connect(address).await.expect("connect");
        let (a, b) = (tokio::spawn(first(a)), tokio::spawn(second(b)));
        (a.await.expect("first call"), b.await.expect("second call"))
    })
}

/// One call on a fresh connection.
fn call<F>(address: &Path, call: impl FnOnce(Channel) -> F + Send) -> Outcome
where
    F: Future<Output = Outcome> + Send,
{
    block_on(async {
        let channel = connect(address).await.expect("connect");
        call(channel).await
    })
    .expect("runtime")
}

#[test]
fn two_deletes_of_one_exited_task_give_one_exit_and_one_not_found() {
    require_root!();
    require_ctr!();
    two_deletes(&harness());
}

#[test]
fn two_deletes_under_containerds_go_shim_give_one_exit_and_one_not_found() {
    require_root!();
    require_ctr!();
    if let Some(h) = go_shim_harness() {
        two_deletes(&h);
    }
}

/// Races two Deletes of an exited task, [`ROUNDS`] times.
fn two_deletes(h: &Harness) {
    let address = h.daemon.address().to_path_buf();
    for round in 0..ROUNDS {
        let id = format!("twice-{round}");
        h.run_detached(&id, &["/bin/true"]);
        h.wait_status(&id, "STOPPED");
        let (a, b) = race(
            &address,
            |c| delete(c, id.clone()),
            |c| delete(c, id.clone()),
        );
        let _guard = scopeguard(h, &id);
        let mut codes = [a.0, b.0];
        codes.sort_by_key(|c| *c as i32);
        assert_eq!(
            codes,
            [Code::Ok, Code::NotFound],
            "round {round}: the deletes answered {a:?} and {b:?}"
        );
        let lost = if a.0 == Code::NotFound { &a.1 } else { &b.1 };
        assert!(
            lost.contains(&format!("task {id} not found")),
            "round {round}: the losing delete answered {lost:?}"
        );
        assert!(!h.task_ids().contains(&id), "round {round}");
    }
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

#[test]
fn kill_racing_delete_of_an_exited_task() {
    require_root!();
    require_ctr!();
    let h = harness();
    let address = h.daemon.address().to_path_buf();
    for round in 0..ROUNDS {
        let id = format!("kill-exited-{round}");
        h.run_detached(&id, &["/bin/true"]);
        h.wait_status(&id, "STOPPED");
        let (k, d) = race(
            &address,
            |c| kill(c, id.clone(), 9),
            |c| delete(c, id.clone()),
        );
        let _guard = scopeguard(&h, &id);
        // containerd: the delete wins (the task has exited); a kill of an
        // exited process, or of a task deleted already, is `NotFound`.
        assert_eq!(d.0, Code::Ok, "round {round}: delete answered {d:?}");
        assert!(
            matches!(k.0, Code::Ok | Code::NotFound),
            "round {round}: kill answered {k:?}"
        );
        assert!(!h.task_ids().contains(&id), "round {round}");
    }
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

#[test]
fn kill_racing_delete_of_a_running_task() {
    require_root!();
    require_ctr!();
    let h = harness();
    let address = h.daemon.address().to_path_buf();
    for round in 0..ROUNDS / 5 {
        let id = format!("kill-running-{round}");
        h.run_detached(&id, &["/bin/sleep", "100"]);
        h.wait_status(&id, "RUNNING");
        let (k, d) = race(
            &address,
            |c| kill(c, id.clone(), 9),
            |c| delete(c, id.clone()),
        );
        let _guard = scopeguard(&h, &id);
        // The kill reaches a live task; the delete either refuses a task
        // that is still running (FailedPrecondition) or, if the exit came
        // first, deletes it.
        assert_eq!(k.0, Code::Ok, "round {round}: kill answered {k:?}");
        assert!(
            matches!(d.0, Code::Ok | Code::FailedPrecondition),
            "round {round}: delete answered {d:?}"
        );
        if d.0 != Code::Ok {
            h.wait_status(&id, "STOPPED");
            let again = call(&address, |c| delete(c, id.clone()));
            assert_eq!(again.0, Code::Ok, "round {round}: {again:?}");
        }
    }
    assert!(h.bundles().is_empty(), "{:?}", h.bundles());
}

/// Removes `id`'s task and container when dropped, failing or not.
fn scopeguard<'a>(h: &'a Harness, id: &str) -> impl Drop + 'a {
    struct Remove<'a>(&'a Harness, String);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            self.0.remove(&self.1);
        }
    }
    Remove(h, id.to_string())
}
