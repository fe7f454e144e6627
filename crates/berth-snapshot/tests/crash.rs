//! A snapshotter killed with SIGKILL in the middle of prepares, commits and
//! removes leaves no half-made snapshot: after reopening, every snapshot the
//! metadata lists is whole and no directory is left that none owns.

use berth_core::snapshots::{Kind, Snapshotter};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ROOT: &str = "BERTH_SNAPSHOT_CRASH_ROOT";

/// The child: prepares, fills, commits and removes snapshots until killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by kill_minus_nine_mid_commit_leaves_no_half_snapshot"]
async fn crash_child() {
    let Ok(root) = std::env::var(CHILD_ROOT) else {
        return;
    };
    let s = berth_snapshot::native::open(Path::new(&root)).expect("open");
    let mut parent = String::new();
    for i in 0.. {
        let key = format!("active-{i}");
        let mounts = s
            .prepare(&key, &parent, HashMap::new())
            .await
            .expect("prepare");
        // Native mounts are binds of the snapshot's own directory: fill it
        // directly, so every later prepare copies a growing tree.
        let fs = Path::new(&mounts[0].source);
        for f in 0..50 {
            std::fs::write(fs.join(format!("f{i}-{f}")), [0u8; 512]).expect("fill");
        }
        let info = s.stat(&key).await.expect("stat");
        assert_eq!(info.kind, Kind::Active);
        let name = format!("layer-{i}");
        s.commit(&name, &key, HashMap::new()).await.expect("commit");
        if i % 3 == 2 {
            s.prepare("scratch", &name, HashMap::new())
                .await
                .expect("scratch");
            s.remove("scratch").await.expect("remove");
        }
        parent = name;
        std::fs::write(Path::new(&root).join("progress"), i.to_string()).expect("progress");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_minus_nine_mid_commit_leaves_no_half_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("native");
    // Native copies the whole parent tree, so each prepare does real work.
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env(CHILD_ROOT, &root)
            .spawn()
            .expect("spawn child");
        let started = Instant::now();
        let progress = root.join("progress");
        while std::fs::read_to_string(&progress).map_or(true, |p| {
            p.trim().parse::<u32>().unwrap_or(0) < 5 * (round + 1)
        }) && started.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(7 * u64::from(round)));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait child");
        std::fs::remove_file(&progress).ok();

        let s = berth_snapshot::native::open(&root).expect("reopen");
        let infos = s.walk(&[]).await.expect("walk");
        assert!(!infos.is_empty(), "round {round}: some commits landed");
        let dirs: Vec<_> = std::fs::read_dir(root.join("snapshots"))
            .expect("snapshots dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            dirs.len(),
            infos.len(),
            "round {round}: dirs {dirs:?} vs {infos:?}"
        );
        for info in &infos {
            if info.kind == Kind::Committed {
                assert!(info.name.starts_with("layer-"), "{info:?}");
                s.usage(&info.name).await.expect("usage of committed");
            } else {
                s.mounts(&info.name).await.expect("mounts of active");
            }
        }
        // Start the next round on a clean chain.
        for info in infos.iter().rev() {
            if info.kind != Kind::Committed {
                s.remove(&info.name).await.expect("remove leftover active");
            }
        }
        let mut committed: Vec<_> = s.walk(&["kind==committed".into()]).await.expect("walk");
        committed.sort_by_key(|i| {
            std::cmp::Reverse(
                i.name
                    .trim_start_matches("layer-")
                    .parse::<u32>()
                    .unwrap_or(0),
            )
        });
        for info in committed {
            s.remove(&info.name).await.expect("remove layer");
        }
    }
}
