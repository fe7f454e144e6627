//! berth-core's snapshotter conformance suite, run against the remote
//! [`berth_client::snapshots::RemoteSnapshotter`] over a private daemon,
//! for both of its snapshotters: every scenario gets a fresh namespace and
//! works under a lease, so no garbage collection takes its snapshots. As
//! root, the scenarios that mount what `Mounts` returns run too: the
//! daemon's overlay and bind mounts are mounted by this (client) process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_client::berth_core::snapshots::testsuite::{self, Fixture};
use berth_client::Client;
use berth_testkit::Daemon;

fn run_suite(snapshotter: &'static str) {
    // Without root only the mounting scenarios are skipped (in CI, root
    // is required).
    let can_mount = berth_testkit::require_root();
    let daemon = Daemon::start().unwrap_or_else(|err| panic!("starting the daemon: {err:#}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let address = daemon.address().display().to_string();
        let client = Client::connect(address).await.expect("connect");
        let counter = Arc::new(AtomicUsize::new(0));
        testsuite::run(|| {
            let client = client.clone();
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let ns = client.with_namespace(format!("{snapshotter}-suite-{n}"));
                let (leased, _) = ns
                    .with_new_lease(Duration::from_secs(600))
                    .await
                    .expect("lease");
                Fixture {
                    snapshotter: Arc::new(leased.snapshotter(snapshotter)),
                    can_mount,
                    guard: Box::new(()),
                }
            }
        })
        .await;
    });
    drop(daemon);
}

#[test]
fn remote_overlayfs_passes_the_snapshotter_suite() {
    run_suite("overlayfs");
}

#[test]
fn remote_native_passes_the_snapshotter_suite() {
    run_suite("native");
}
