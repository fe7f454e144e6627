//! `kill -9` of the daemon in the middle of many container creates: after a
//! restart on the same root, the database opens and holds only whole records.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::pb::services::v1::container::Runtime;
use berth_testkit::pb::services::v1::containers_client::ContainersClient;
use berth_testkit::pb::services::v1::{Container, CreateContainerRequest, GetContainerRequest};
use berth_testkit::{block_on, connect, require_ctr, with_namespace};
use serde_json::{json, Value};

use crate::{ctr_ids, daemon, rootfs};

const NS: &str = "crash";
/// Upper bound on creates; the daemon is killed long before.
const MAX_ATTEMPTS: usize = 1000;
/// Creates acknowledged before the kill.
const KILL_AFTER: usize = 100;
/// Concurrent clients, so several transactions are in flight at the kill.
const WORKERS: usize = 4;
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

fn id(i: usize) -> String {
    format!("crash-{i:04}")
}

/// A spec of a few KiB, so a torn write would be visible.
fn spec(rootfs: &Path, i: usize) -> Vec<u8> {
    let env: Vec<String> = (0..64).map(|n| format!("VAR_{n}=value-{i}-{n}")).collect();
    let spec = json!({
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["sh"], "cwd": "/", "env": env, "user": {"uid": 0, "gid": 0}},
        "root": {"path": rootfs},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
    });
    serde_json::to_vec(&spec).expect("encode spec")
}

fn container(rootfs: &Path, i: usize) -> Container {
    Container {
        id: id(i),
        labels: [("seq".to_owned(), i.to_string())].into(),
        runtime: Some(Runtime {
            name: "io.containerd.runc.v2".to_owned(),
            options: None,
        }),
        spec: Some(prost_types::Any {
            type_url: SPEC_TYPE_URL.to_owned(),
            value: spec(rootfs, i),
        }),
        ..Default::default()
    }
}

struct Progress {
    next: AtomicUsize,
    acked: Mutex<Vec<usize>>,
}

/// One client: creates containers until the daemon stops answering.
async fn worker(address: PathBuf, rootfs: PathBuf, progress: Arc<Progress>) {
    let Ok(channel) = connect(&address).await else {
        return;
    };
    let mut client = ContainersClient::new(channel);
    loop {
        let i = progress.next.fetch_add(1, Ordering::SeqCst);
        if i >= MAX_ATTEMPTS {
            return;
        }
        let req = CreateContainerRequest {
            container: Some(container(&rootfs, i)),
        };
        let req = with_namespace(req, NS).expect("namespace header");
        match client.create(req).await {
            Ok(_) => progress.acked.lock().expect("lock").push(i),
            Err(_) => return,
        }
    }
}

async fn create_until_killed(address: PathBuf, rootfs: PathBuf, progress: Arc<Progress>) {
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(address.clone(), rootfs.clone(), progress.clone())))
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

#[test]
fn kill9_during_creates_leaves_only_whole_records() {
    require_ctr!();
    let mut daemon = daemon();
    let rootfs = rootfs(&daemon);
    let progress = Arc::new(Progress {
        next: AtomicUsize::new(0),
        acked: Mutex::new(Vec::new()),
    });
    let load = {
        let (address, rootfs, progress) = (
            daemon.address().to_owned(),
            rootfs.clone(),
            progress.clone(),
        );
        thread::spawn(move || block_on(create_until_killed(address, rootfs, progress)))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.acked.lock().expect("lock").len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "creates too slow\n{}",
            daemon.log()
        );
        assert!(
            !load.is_finished(),
            "creates stopped early\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(1));
    }
    daemon.kill9().expect("kill -9 berthd");
    load.join().expect("load thread").expect("load runtime");
    let attempted = progress.next.load(Ordering::SeqCst).min(MAX_ATTEMPTS);
    let acked: BTreeSet<String> = progress
        .acked
        .lock()
        .expect("lock")
        .iter()
        .map(|&i| id(i))
        .collect();
    assert!(attempted < MAX_ATTEMPTS, "the kill came after every create");

    daemon.restart().expect("restart after kill -9");
    let listed = ctr_ids(&daemon, NS);
    let attempted_ids: BTreeSet<String> = (0..attempted).map(id).collect();
    assert!(
        listed.len() <= attempted,
        "{} listed > {attempted} attempted",
        listed.len()
    );
    for id in &listed {
        assert!(attempted_ids.contains(id), "listed {id} was never created");
    }
    // A create the daemon acknowledged was committed; a SIGKILL (unlike a
    // power cut) cannot lose it.
    let missing: Vec<&String> = acked.iter().filter(|id| !listed.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged creates lost: {missing:?}");

    for id in &listed {
        check_whole_with_ctr(&daemon, id, &rootfs);
    }
    check_whole_over_grpc(&daemon, &listed);
}

fn check_whole_with_ctr(daemon: &berth_testkit::Daemon, id: &str, rootfs: &Path) {
    let out = daemon
        .ctr_ns(NS, &["containers", "info", id])
        .assert_success();
    let info: Value = serde_json::from_str(&out.stdout).expect("info is JSON");
    let seq: usize = id[6..].parse().expect("sequence in id");
    assert_eq!(info["ID"], id);
    assert_eq!(info["Labels"]["seq"], seq.to_string(), "{out}");
    assert_eq!(
        info["Spec"]["root"]["path"],
        rootfs.to_str().expect("utf-8")
    );
    assert_eq!(
        info["Spec"]["process"]["env"][63],
        format!("VAR_63=value-{seq}-63")
    );
}

fn check_whole_over_grpc(daemon: &berth_testkit::Daemon, listed: &[String]) {
    let address = daemon.address().to_owned();
    let listed = listed.to_vec();
    block_on(async move {
        let mut client = ContainersClient::new(connect(&address).await.expect("connect"));
        for id in listed {
            let req = with_namespace(GetContainerRequest { id: id.clone() }, NS).expect("ns");
            let got = client.get(req).await.expect("get").into_inner();
            let c = got.container.expect("container in reply");
            let spec = c.spec.expect("spec");
            assert_eq!(spec.type_url, SPEC_TYPE_URL);
            let _: Value = serde_json::from_slice(&spec.value).expect("spec is whole JSON");
            assert!(c.created_at.is_some(), "{id} has no created_at");
        }
    })
    .expect("runtime");
}
