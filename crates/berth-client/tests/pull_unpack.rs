//! A pull with unpack inside berthd (the transfer service running
//! `berth_image::pull` through the daemon's namespaced overlayfs
//! snapshotter, which rebases: every layer is applied while it downloads),
//! from a loopback registry: `ctr images mount` then shows exactly the tree
//! the image-spec's rules give, and the snapshots form the chain.

use std::path::PathBuf;

use berth_client::transfer::{PullOptions, RegistryOptions};
use berth_client::Client;
use berth_testkit::{layered_test_image, require_registry, require_root, Daemon, Registry, Tree};

/// A directory whose mounts are undone on drop, panics included.
struct MountDir(PathBuf);

impl Drop for MountDir {
    fn drop(&mut self) {
        for (path, err) in berth_testkit::unmount_under(&self.0) {
            eprintln!("cleanup: unmount {}: {err}", path.display());
        }
    }
}

#[test]
fn daemon_pull_unpacks_the_layered_image_exactly() {
    if !require_root() {
        return;
    }
    require_registry!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let image = layered_test_image();
    let archive = image.archive("example.com/layered:1").expect("archive");
    let path = daemon.dir().join("layered.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    let name = format!("{}/client/layered:1", registry.host());
    let status = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}:latest", path.display()))
        .arg(format!("docker://{name}"))
        .status()
        .expect("run skopeo");
    assert!(status.success(), "skopeo copy");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = Client::connect(daemon.address().display().to_string())
            .await
            .expect("connect");
        let options = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        client
            .with_namespace("default")
            .transfer()
            .pull(&name, &options, &PullOptions::default(), None)
            .await
            .expect("pull");
    });

    let chains: Vec<String> = archive.chain_ids.iter().map(|d| d.to_string()).collect();
    let ls = daemon.ctr(&["snapshots", "ls"]).assert_success();
    for (i, chain) in chains.iter().enumerate() {
        let row = ls
            .lines()
            .into_iter()
            .find(|l| l.starts_with(chain.as_str()))
            .unwrap_or_else(|| panic!("no snapshot {chain}:\n{ls}"));
        let parent = if i == 0 { "" } else { chains[i - 1].as_str() };
        assert!(row.contains("Committed"), "{row}");
        assert!(parent.is_empty() || row.contains(parent), "{row}");
    }
    let mnt = MountDir(daemon.dir().join("mnt"));
    std::fs::create_dir_all(&mnt.0).expect("mountpoint");
    let target = mnt.0.to_str().expect("utf-8");
    daemon
        .ctr(&["images", "mount", &name, target])
        .assert_success();
    let mounted = Tree::read(&mnt.0).expect("read the mounted tree");
    daemon.ctr(&["images", "unmount", target]).assert_success();
    let diffs = mounted.differences(&image.expected());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
