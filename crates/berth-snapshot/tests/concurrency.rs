//! Creates fill directories without the snapshotter's lock: racing
//! prepares of one key still make one snapshot, and nothing is left
//! behind by the losers.

use berth_core::snapshots::Snapshotter;
use std::collections::HashMap;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_prepares_of_one_key_make_one_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(berth_snapshot::native::open(dir.path()).expect("open"));
    let base = s
        .prepare("base-a", "", HashMap::new())
        .await
        .expect("prepare");
    let fs = std::path::Path::new(&base[0].source);
    for i in 0..2000 {
        std::fs::write(fs.join(format!("f{i}")), [1u8; 256]).expect("fill");
    }
    s.commit("base", "base-a", HashMap::new())
        .await
        .expect("commit");
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.prepare("same", "base", HashMap::new()).await })
        })
        .collect();
    // Reads are answered while the copies run.
    s.stat("base").await.expect("stat during a copy");
    let mut ok = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => ok += 1,
            Err(err) => assert_eq!(err.kind(), berth_core::ErrorKind::AlreadyExists, "{err}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.walk(&[]).await.expect("walk").len(), 2);
    s.cleanup().await.expect("cleanup");
    let dirs = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("dirs")
        .count();
    assert_eq!(dirs, 2, "no directory left by the losers");
}
