//! The end-of-soak checks: whole records and truthful tasks, then leaks.
//!
//! [`records_and_tasks`] runs while containers may still exist (after the
//! load stops, and again after a clean restart). [`leaks`] runs once every
//! container, task and extra image has been removed through the API: then
//! nothing may remain but the busybox image and what it references.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use berth_client::berth_core::content::ContentStore;
use berth_client::berth_core::images::ImageStore;
use berth_client::berth_core::snapshots::Snapshotter;
use berth_client::pb::types::v1::Status;
use berth_client::Client;
use berth_testkit::{processes, shims_of};

/// containerd's label prefixes for references the collector follows.
const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content.";
const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// The label on the leases berthd's transfer service makes for itself.
const TRANSFER_LEASE: &str = "io.berth.transfer";
/// Where the shim keeps runc's state: `--root /run/berth/runc/<namespace>`.
const RUNC_ROOT: &str = "/run/berth/runc";
/// Where berthd keeps task bundles, below `--state`.
const TASKS_DIR: &str = "io.containerd.runtime.v2.task";
/// The snapshotter the soak's containers use (the default).
pub const SNAPSHOTTER: &str = "overlayfs";

/// Every container record is whole; every task is running with a live
/// process, or stopped with an exit time; every shim of the daemon belongs
/// to a listed task. Returns the problems found.
pub async fn records_and_tasks(client: &Client, address: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let containers = client.containers().list::<&str>(&[]).await?;
    let ids: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
    for c in &containers {
        let id = &c.id;
        if c.spec
            .as_ref()
            .is_none_or(|s| s.type_url.is_empty() || s.value.is_empty())
        {
            problems.push(format!("container {id}: record has no spec"));
        }
        if c.runtime.as_ref().is_none_or(|r| r.name.is_empty()) {
            problems.push(format!("container {id}: record has no runtime"));
        }
        if c.snapshot_key.is_empty() || c.snapshotter.is_empty() {
            problems.push(format!("container {id}: record has no snapshot key"));
            continue;
        }
        if let Err(err) = client
            .snapshotter(&c.snapshotter)
            .stat(&c.snapshot_key)
            .await
        {
            problems.push(format!(
                "container {id}: snapshot {}: {err}",
                c.snapshot_key
            ));
        }
    }
    let tasks = client.tasks().list("").await?;
    for t in &tasks {
        let id = &t.id;
        if !ids.contains(id.as_str()) {
            problems.push(format!("task {id} has no container record"));
        }
        match Status::try_from(t.status).unwrap_or(Status::Unknown) {
            Status::Created | Status::Running | Status::Paused | Status::Pausing => {
                if !alive(t.pid) {
                    problems.push(format!(
                        "task {id} is {} but its pid {} is gone",
                        Status::try_from(t.status).map_or("?", |s| s.as_str_name()),
                        t.pid
                    ));
                }
            }
            Status::Stopped if t.exited_at.is_none() => {
                problems.push(format!("task {id} is stopped without an exit status"));
            }
            Status::Stopped => {}
            Status::Unknown => problems.push(format!("task {id} has an unknown status")),
        }
    }
    let task_ids: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    for shim in shims_of(address) {
        let id = shim.flag("-id").unwrap_or("?");
        if !task_ids.contains(id) {
            problems.push(format!("shim pid {} (id {id}) has no task", shim.pid));
        }
    }
    Ok(problems)
}

/// A process that exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    pid != 0 && !matches!(state, Some("Z" | "X"))
}

/// Where the daemon keeps things, for the on-disk checks.
#[derive(Debug)]
pub struct Places {
    pub address: PathBuf,
    /// The daemon's whole temporary directory (root, state, FIFOs).
    pub dir: PathBuf,
    pub state: PathBuf,
    pub namespace: String,
}

/// Processes and files left over once the soak removed its containers,
/// extra images and own leases through the API and the collector ran
/// (the store's leftovers: [`store`]).
pub fn leaks(at: &Places) -> Vec<String> {
    let mut leaks = Vec::new();
    leaks.extend(process_leaks(at));
    leaks.extend(
        mounts_under(&at.dir)
            .into_iter()
            .map(|p| format!("mount {}", p.display())),
    );
    leaks.extend(
        fifos_under(&at.dir)
            .into_iter()
            .map(|p| format!("FIFO {}", p.display())),
    );
    let bundles = at.state.join(TASKS_DIR).join(&at.namespace);
    leaks.extend(
        entries(&bundles)
            .into_iter()
            .map(|p| format!("bundle {}", p.display())),
    );
    leaks.extend(cgroup_leaks(&at.namespace));
    leaks.extend(netns_leaks(&at.namespace));
    let runc = Path::new(RUNC_ROOT).join(&at.namespace);
    leaks.extend(
        entries(&runc)
            .into_iter()
            .map(|p| format!("runc state {}", p.display())),
    );
    leaks
}

fn process_leaks(at: &Places) -> Vec<String> {
    let mut leaks: Vec<String> = shims_of(&at.address)
        .iter()
        .map(|s| format!("shim pid {} ({})", s.pid, s.cmdline.join(" ")))
        .collect();
    // A container's processes sit in cgroup `/<namespace>/<id>`.
    let marker = format!(":/{}/", at.namespace);
    for pid in processes().keys() {
        let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cgroups.contains(&marker) {
            leaks.push(format!("container process pid {pid}"));
        }
    }
    leaks
}

/// Mount points at or below `dir`, from mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&dir))
        .collect()
}

fn fifos_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(list) = fs::read_dir(&d) else { continue };
        for entry in list.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_fifo() {
                found.push(entry.path());
            }
        }
    }
    found
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|l| l.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Cgroups of the soak's containers (runc makes `/<namespace>/<id>` in
/// every hierarchy; the namespace's own directory may stay, as with
/// containerd).
fn cgroup_leaks(namespace: &str) -> Vec<String> {
    entries(Path::new("/sys/fs/cgroup"))
        .into_iter()
        .flat_map(|hierarchy| entries(&hierarchy.join(namespace)))
        .filter(|p| p.is_dir())
        .map(|p| format!("cgroup {}", p.display()))
        .collect()
}

fn netns_leaks(namespace: &str) -> Vec<String> {
    entries(Path::new("/run/netns"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(namespace))
        .map(|p| format!("netns {}", p.display()))
        .collect()
}

/// What the store holds for nobody.
#[derive(Debug, Default)]
pub struct StoreReport {
    pub leaks: Vec<String>,
    /// Leases with an expiry (`containerd.io/gc.expire`) that a client
    /// made and could not delete because the daemon died under it, as
    /// containerd's Go client leaves them: the collector removes them when
    /// they expire. Not leaks; what they hold counts as referenced.
    pub expiring_leases: Vec<String>,
}

/// Leases, ingests, content and snapshots that nothing references: the
/// images' targets and what expiring leases hold are the roots; content
/// references content and snapshots through the collector's labels;
/// snapshots reference their parents.
pub async fn store(client: &Client) -> Result<StoreReport> {
    let mut report = StoreReport::default();
    let mut reached = BTreeSet::new();
    let mut snapshots = BTreeSet::new();
    for lease in client.leases().list::<&str>(&[]).await? {
        // A transfer's own lease is berthd's: its transfer died with the
        // daemon that made it, and a restart releases it.
        if !lease.labels.contains_key(GC_EXPIRE) || lease.labels.contains_key(TRANSFER_LEASE) {
            report
                .leaks
                .push(format!("lease {} {:?}", lease.id, lease.labels));
            continue;
        }
        report.expiring_leases.push(lease.id.clone());
        for resource in client.leases().list_resources(&lease.id).await? {
            if resource.r#type == "content" {
                reached.insert(resource.id);
            } else if resource.r#type.starts_with("snapshots/") {
                snapshots.insert(resource.id);
            }
        }
    }
    let ingests = client.content().list_statuses(&[]).await?;
    report.leaks.extend(
        ingests
            .into_iter()
            .map(|s| format!("content ingest {}", s.reference)),
    );
    report
        .leaks
        .extend(unreferenced(client, reached, snapshots).await?);
    Ok(report)
}

async fn unreferenced(
    client: &Client,
    mut reached: BTreeSet<String>,
    mut snapshots: BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut leaks = Vec::new();
    let content = client.content().list(&[]).await?;
    reached.extend(
        client
            .images()
            .list(&[])
            .await?
            .into_iter()
            .map(|i| i.target.digest.to_string()),
    );
    // Follow content references until nothing new is reached.
    loop {
        let before = reached.len();
        let mut found = Vec::new();
        for info in content
            .iter()
            .filter(|i| reached.contains(&i.digest.to_string()))
        {
            for (key, value) in &info.labels {
                if key.starts_with(GC_REF_CONTENT) {
                    found.push(value.clone());
                } else if key.starts_with(GC_REF_SNAPSHOT) {
                    snapshots.insert(value.clone());
                }
            }
        }
        reached.extend(found);
        if reached.len() == before {
            break;
        }
    }
    for info in &content {
        if !reached.contains(&info.digest.to_string()) {
            leaks.push(format!("content {} ({} bytes)", info.digest, info.size));
        }
    }
    let walked = client.snapshotter(SNAPSHOTTER).walk(&[]).await?;
    // Parents of referenced snapshots are referenced too.
    loop {
        let before = snapshots.len();
        let parents: Vec<String> = walked
            .iter()
            .filter(|s| snapshots.contains(&s.name) && !s.parent.is_empty())
            .map(|s| s.parent.clone())
            .collect();
        snapshots.extend(parents);
        if snapshots.len() == before {
            break;
        }
    }
    for s in &walked {
        if !snapshots.contains(&s.name) {
            leaks.push(format!("snapshot {} ({:?})", s.name, s.kind));
        }
    }
    Ok(leaks)
}
