//! ImageFsInfo: what the configured snapshotter's snapshots in `k8s.io`
//! use, in bytes and inodes, on the filesystem of the snapshotter's root
//! (the `root` its plugin exports, as `ctr plugins ls -d` shows it).
//! containerd's CRI sums the same usages (kept fresh by a background
//! syncer); berth asks for them when asked.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::snapshots::{Snapshotter, Usage};
use berth_core::{Error, Result};
use futures::StreamExt;
use k8s_cri::v1 as cri;

use crate::Cri;

/// containerd's plugin type for snapshotters.
const SNAPSHOTTER_PLUGIN: &str = "io.containerd.snapshotter.v1";
/// How many usages are asked for at once.
const CONCURRENT_USAGES: usize = 8;

impl Cri {
    /// ImageFsInfo.
    pub(crate) async fn image_fs_info(
        &self,
        _: cri::ImageFsInfoRequest,
    ) -> Result<cri::ImageFsInfoResponse> {
        let name = &self.config.containerd.snapshotter;
        let mountpoint = self.snapshotter_root(name).await?;
        let usage = self.snapshots_usage(name).await?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let used = |value: i64| {
            Some(cri::UInt64Value {
                value: u64::try_from(value).unwrap_or(0),
            })
        };
        Ok(cri::ImageFsInfoResponse {
            image_filesystems: vec![cri::FilesystemUsage {
                timestamp,
                fs_id: Some(cri::FilesystemIdentifier { mountpoint }),
                used_bytes: used(usage.size),
                inodes_used: used(usage.inodes),
            }],
            container_filesystems: Vec::new(),
        })
    }

    /// The root directory snapshotter `name` exports.
    pub(crate) async fn snapshotter_root(&self, name: &str) -> Result<String> {
        let filter = format!("type=={SNAPSHOTTER_PLUGIN},id=={name}");
        let plugins = self.client.introspection().plugins(&[filter]).await?;
        plugins
            .into_iter()
            .find_map(|p| p.exports.get("root").cloned())
            .ok_or_else(|| Error::not_found(format!("snapshotter {name:?} (its root)")))
    }

    /// The summed usage of snapshotter `name`'s snapshots in `k8s.io`;
    /// snapshots removed meanwhile do not count.
    async fn snapshots_usage(&self, name: &str) -> Result<Usage> {
        let snapshotter = self.client.snapshotter(name);
        let infos = snapshotter.walk(&[]).await?;
        let usages: Vec<Result<Usage>> = futures::stream::iter(infos)
            .map(|info| {
                let snapshotter = &snapshotter;
                async move { snapshotter.usage(&info.name).await }
            })
            .buffer_unordered(CONCURRENT_USAGES)
            .collect()
            .await;
        let mut total = Usage::default();
        for usage in usages {
            match usage {
                Ok(usage) => total.add(usage),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(total)
    }
}
