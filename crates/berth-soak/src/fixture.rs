//! The images the workers pull, on a loopback `docker-registry`.
//!
//! `soak/busybox` is testkit's busybox image, which every lifecycle runs.
//! `soak/churn` is a few MiB of generated layers that share nothing with it:
//! workers pull it under names of their own and delete it again, so garbage
//! collection has real content and snapshots to remove while tasks run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_testkit::{run_with_timeout, LayeredImage, Registry};

/// References of the seeded images.
#[derive(Debug, Clone)]
pub struct Images {
    /// `127.0.0.1:PORT/soak/busybox:latest`.
    pub base: String,
    /// `127.0.0.1:PORT/soak/churn:latest`.
    pub churn: String,
}

/// Pushes both images to `registry`, using `dir` for the archive.
pub fn seed(registry: &Registry, dir: &Path) -> Result<Images> {
    let base = registry.push_busybox("soak/busybox:latest")?;
    let churn = format!("{}/soak/churn:latest", registry.host());
    let archive = LayeredImage::bulk(2, 4, 256 << 10)
        .archive(&churn)
        .context("build the churn image")?;
    let path = dir.join("churn.tar");
    std::fs::write(&path, &archive.bytes).context("write the churn archive")?;
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}:latest", path.display()))
        .arg(format!("docker://{churn}"));
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120))?;
    if !out.success() {
        bail!("skopeo copy to {churn} failed:\n{out}");
    }
    Ok(Images { base, churn })
}
