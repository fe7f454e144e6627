//! berth-core's content-store conformance suite, run against the remote
//! [`berth_client::content::Content`] over a private daemon: every scenario
//! gets two fresh namespaces of the same daemon (the second for the
//! isolation and sharing scenarios).
//!
//! With `BERTH_TESTKIT_DAEMON=containerd` the suite runs against Debian's
//! containerd, which checks the suite as much as the client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_client::berth_core::content::testsuite::{self, Fixture};
use berth_client::Client;
use berth_testkit::Daemon;

#[test]
fn remote_content_store_passes_the_conformance_suite() {
    let daemon = match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let address = daemon.address().display().to_string();
        let client = Client::connect(address).await.expect("connect");
        let probe = client.with_namespace("probe").content();
        if let Err(err) = berth_client::berth_core::content::ContentStore::list(&probe, &[]).await {
            if err.kind() == berth_client::ErrorKind::NotImplemented {
                eprintln!("skipping: the daemon has no content service yet ({err})");
                return;
            }
        }
        let counter = Arc::new(AtomicUsize::new(0));
        testsuite::run(|| {
            let client = client.clone();
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                // Work under a lease, so that no garbage collection (which
                // containerd runs after the suite's deletions) takes a
                // scenario's blobs from under it.
                let leased = |ns: String| {
                    let client = client.with_namespace(ns);
                    async move {
                        let (leased, _) = client
                            .with_new_lease(Duration::from_secs(600))
                            .await
                            .expect("lease");
                        Arc::new(leased.content())
                    }
                };
                Fixture {
                    store: leased(format!("suite-{n}")).await,
                    other: Some(leased(format!("suite-{n}-other")).await),
                    guard: Box::new(()),
                }
            }
        })
        .await;
    });
}
