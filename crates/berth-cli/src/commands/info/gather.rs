//! Asking the daemon (and this host) for what `berth info` shows.

use berth_client::berth_core::images::ImageStore;
use berth_client::berth_core::snapshots::Snapshotter as _;
use berth_client::container::DEFAULT_SNAPSHOTTER;
use berth_client::pb::services::v1::Plugin;
use berth_client::pb::types::v1::Status;
use berth_client::Client;

use super::{Build, Counts, Info, Plugins, Snapshotter};

/// berth's version and revision.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision berth was built from.
const REVISION: &str = env!("BERTH_GIT_REVISION");
/// The runtime ctr and the Go client ask for when none is named.
const DEFAULT_RUNTIME: &str = "io.containerd.runc.v2";

/// Everything, from the daemon behind `client` and this host.
pub async fn gather(client: &Client) -> anyhow::Result<Info> {
    let version = client.version().await?;
    let server = client.introspection().server().await?;
    let plugins = client.introspection().plugins::<&str>(&[]).await?;
    let export = |plugin_type: &str, id: &str, key: &str| {
        plugins
            .iter()
            .find(|p| p.r#type == plugin_type && p.id == id)
            .and_then(|p| p.exports.get(key).cloned())
    };
    let introspection = |key: &str| export("io.containerd.grpc.v1", "introspection", key);
    let task = |key: &str| export("io.containerd.runtime.v2", "task", key);
    let namespaces: Vec<String> = client
        .namespaces()
        .list()
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    let mut snapshotter = Snapshotter {
        name: DEFAULT_SNAPSHOTTER.to_string(),
        root: export("io.containerd.snapshotter.v1", DEFAULT_SNAPSHOTTER, "root"),
        ..Snapshotter::default()
    };
    let mut counts = Counts {
        namespaces: namespaces.len(),
        ..Counts::default()
    };
    for ns in &namespaces {
        let client = client.with_namespace(ns.as_str());
        count(&client, &mut counts).await?;
        usage(&client, &mut snapshotter).await?;
    }
    Ok(Info {
        client: Build {
            version: VERSION.to_string(),
            revision: REVISION.to_string(),
        },
        server: Build {
            version: version.version,
            revision: version.revision,
        },
        uuid: server.uuid,
        pid: server.pid,
        root: introspection("root"),
        state: introspection("state"),
        config: introspection("config"),
        metrics: introspection("metrics_address"),
        snapshotter,
        runtime: task("default_runtime").unwrap_or_else(|| DEFAULT_RUNTIME.to_string()),
        shim: task("default_shim"),
        cgroup: cgroup_mode().to_string(),
        counts,
        plugins: statuses(&plugins),
    })
}

/// Adds the images, containers and tasks of `client`'s namespace.
async fn count(client: &Client, counts: &mut Counts) -> anyhow::Result<()> {
    counts.images += client.images().list(&[]).await?.len();
    counts.containers += client.containers().list::<&str>(&[]).await?.len();
    let tasks = client.tasks().list("").await?;
    counts.tasks += tasks.len();
    counts.running += tasks
        .iter()
        .filter(|t| t.status == Status::Running as i32)
        .count();
    Ok(())
}

/// Adds the snapshots of `client`'s namespace and their disk usage.
async fn usage(client: &Client, snapshotter: &mut Snapshotter) -> anyhow::Result<()> {
    let remote = client.snapshotter(snapshotter.name.as_str());
    for info in remote.walk(&[]).await? {
        snapshotter.snapshots += 1;
        // A snapshot removed since the walk takes no space.
        if let Ok(usage) = remote.usage(&info.name).await {
            snapshotter.bytes += usage.size;
        }
    }
    Ok(())
}

/// How the plugins loaded, as `ctr plugins ls` tells ok, skip and error.
fn statuses(plugins: &[Plugin]) -> Plugins {
    let mut out = Plugins::default();
    for p in plugins {
        match &p.init_err {
            None => out.ok += 1,
            Some(err) => {
                let status = if err.message.contains("skip plugin") {
                    out.skipped += 1;
                    "skip"
                } else {
                    out.failed += 1;
                    "error"
                };
                let uri = format!("{}.{}", p.r#type, p.id);
                out.problems.push((uri, status, err.message.clone()));
            }
        }
    }
    out
}

/// The cgroup layout of this host: `v2` (unified), `hybrid` (v1
/// controllers, a controller-less v2 at `/sys/fs/cgroup/unified`) or `v1`.
pub fn cgroup_mode() -> &'static str {
    cgroup_mode_at(std::path::Path::new("/sys/fs/cgroup"))
}

fn cgroup_mode_at(root: &std::path::Path) -> &'static str {
    if root.join("cgroup.controllers").exists() {
        "v2"
    } else if root.join("unified/cgroup.controllers").exists() {
        "hybrid"
    } else {
        "v1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(cgroup_mode_at(dir.path()), "v1");
        std::fs::create_dir(dir.path().join("unified")).expect("mkdir");
        std::fs::write(dir.path().join("unified/cgroup.controllers"), "").expect("write");
        assert_eq!(cgroup_mode_at(dir.path()), "hybrid");
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu io\n").expect("write");
        assert_eq!(cgroup_mode_at(dir.path()), "v2");
    }

    #[test]
    fn plugin_statuses_keep_why() {
        use berth_client::pb::google::rpc::Status as RpcStatus;
        let failed = |id: &str, message: &str| Plugin {
            r#type: "io.containerd.snapshotter.v1".into(),
            id: id.into(),
            init_err: Some(RpcStatus {
                code: 2,
                message: message.into(),
                details: vec![],
            }),
            ..Plugin::default()
        };
        let plugins = [
            Plugin::default(),
            failed("btrfs", "skip plugin: not a btrfs file system"),
            failed("zfs", "disk on fire"),
        ];
        let s = statuses(&plugins);
        assert_eq!((s.ok, s.skipped, s.failed), (1, 1, 1));
        assert_eq!(
            s.problems[1],
            (
                "io.containerd.snapshotter.v1.zfs".to_string(),
                "error",
                "disk on fire".to_string()
            )
        );
    }
}
