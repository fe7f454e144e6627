//! A real OCI registry on loopback: Debian's `docker-registry` (distribution
//! 2.8) serving a temporary storage directory on `127.0.0.1:<free port>`.
//!
//! ```no_run
//! use berth_testkit::{require_registry, Registry};
//!
//! #[test]
//! fn push_then_pull() {
//!     require_registry!();
//!     let registry = Registry::start().expect("start docker-registry");
//!     let image = format!("{}/test/busybox:1", registry.host());
//!     // … push to and pull from `image` over plain HTTP …
//! }
//! ```
//!
//! [`Registry::stop`] and [`Registry::restart`] keep the port and the
//! storage, so a test can take the registry away in the middle of a pull and
//! bring it back. [`Registry::corrupt_blob`] changes a stored blob's bytes
//! (keeping its size) so that its digest no longer matches. The guard kills
//! the process and removes the directory on drop, printing the registry's
//! log first if the test is panicking.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Debian's registry binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// apache2-utils' `htpasswd`, for bcrypt password files.
pub const HTPASSWD_BIN: &str = "/usr/bin/htpasswd";
/// `openssl`, to make a test CA and a server certificate.
pub const OPENSSL_BIN: &str = "/usr/bin/openssl";

/// How long the registry may take to answer `/v2/` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `docker-registry` and its storage, removed on drop.
#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Whether `/v2/` answers 401 (basic auth configured).
    auth: bool,
    /// Whether it serves HTTPS with a certificate from [`Registry::ca_file`].
    tls: bool,
    /// Whether it also wants a client certificate signed by that CA.
    mutual_tls: bool,
}

impl Registry {
    /// Starts a registry with no authentication.
    pub fn start() -> Result<Registry> {
        Self::start_inner(None, false, false)
    }

    /// Starts a registry that wants basic auth as `user` / `password`
    /// (an htpasswd file made with `htpasswd -Bbn`).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Result<Registry> {
        Self::start_inner(Some((user, password)), false, false)
    }

    /// Starts a registry serving HTTPS with a certificate for IP
    /// `127.0.0.1` signed by a fresh test CA ([`Registry::ca_file`]).
    pub fn start_tls() -> Result<Registry> {
        Self::start_inner(None, true, false)
    }

    /// Like [`Registry::start_tls`], and the registry also requires a
    /// client certificate signed by the test CA
    /// ([`Registry::client_cert`]).
    pub fn start_mutual_tls() -> Result<Registry> {
        Self::start_inner(None, true, true)
    }

    fn start_inner(
        htpasswd: Option<(&str, &str)>,
        tls: bool,
        mutual_tls: bool,
    ) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .context("create the registry directory")?;
        fs::create_dir(dir.path().join("storage")).context("create the storage directory")?;
        if let Some((user, password)) = htpasswd {
            write_htpasswd(&dir.path().join("htpasswd"), user, password)?;
        }
        if tls {
            make_certificates(dir.path())?;
        }
        let port = free_port()?;
        let mut registry = Registry {
            dir,
            port,
            child: None,
            auth: htpasswd.is_some(),
            tls,
            mutual_tls,
        };
        registry.write_config()?;
        registry.restart()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (`https://` for [`Registry::start_tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The PEM file of the CA that signed the certificate of a registry
    /// made by [`Registry::start_tls`].
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client certificate and its key, signed by the test CA, for
    /// [`Registry::start_mutual_tls`].
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        (dir.join("client.pem"), dir.join("client.key"))
    }

    /// Pushes testkit's busybox image (for the host's architecture, with a
    /// one-platform index) as `repo:tag` with `skopeo`, and returns the full
    /// reference, `127.0.0.1:PORT/repo:tag`.
    pub fn push_busybox(&self, repo_tag: &str) -> Result<String> {
        let archive = crate::busybox_oci_archive(&crate::ArchiveNames {
            ref_name: Some("latest".into()),
            image_name: None,
        })?;
        let path = self.dir.path().join("busybox-seed.tar");
        fs::write(&path, &archive.bytes).context("write the busybox archive")?;
        let reference = format!("{}/{repo_tag}", self.host());
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}:latest", path.display()))
            .arg(format!("docker://{reference}"));
        let out = crate::run_with_timeout(&mut cmd, Duration::from_secs(120))?;
        if !out.success() {
            bail!("skopeo copy to {reference} failed:\n{out}");
        }
        Ok(reference)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage root (distribution's filesystem driver `rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the blob with `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Flips bytes in the middle of a stored blob, keeping its size, so
    /// the registry serves content that does not match `digest`.
    pub fn corrupt_blob(&self, digest: &str) -> Result<()> {
        let path = self.blob_path(digest);
        let mut data = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        if data.is_empty() {
            bail!("blob {digest} is empty: nothing to corrupt");
        }
        let middle = data.len() / 2;
        for byte in data.iter_mut().skip(middle).take(16) {
            *byte ^= 0xff;
        }
        fs::write(&path, data).with_context(|| format!("write {}", path.display()))
    }

    /// The registry's output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills the registry, keeping its port and storage for [`restart`].
    ///
    /// [`restart`]: Registry::restart
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again (stopping it first if it runs) on the
    /// same port and storage, and waits until `/v2/` answers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .context("open the registry log")?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("clone the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {REGISTRY_BIN}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn write_config(&self) -> Result<()> {
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage = self.storage_dir().display(),
            port = self.port,
        );
        if self.tls {
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                self.dir.path().join("server.pem").display(),
                self.dir.path().join("server.key").display()
            );
            if self.mutual_tls {
                config += &format!("    clientcas:\n      - {}\n", self.ca_file().display());
            }
        }
        if self.auth {
            config += &format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                self.dir.path().join("htpasswd").display()
            );
        }
        fs::write(self.dir.path().join("config.yml"), config).context("write config.yml")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // A TLS server answers a plain HTTP request with 400.
        let wanted = match (self.tls, self.auth) {
            (true, _) => "400",
            (false, true) => "401",
            (false, false) => "200",
        };
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("poll docker-registry")? {
                    bail!("docker-registry exited with {status}:\n{}", self.log());
                }
            }
            if let Ok(status) = v2_status(self.port) {
                if status == wanted {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not answer /v2/ on port {} within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- docker-registry log ({}) ---\n{}",
                self.host(),
                self.log()
            );
        }
    }
}

/// The status code of `GET /v2/`, as text.
fn v2_status(port: u16) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let line = String::from_utf8_lossy(&head);
    Ok(line.get(9..12).unwrap_or_default().to_string())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

fn write_htpasswd(path: &Path, user: &str, password: &str) -> Result<()> {
    let out = Command::new(HTPASSWD_BIN)
        .args(["-Bbn", user, password])
        .output()
        .with_context(|| format!("run {HTPASSWD_BIN} (Debian's apache2-utils)"))?;
    if !out.status.success() {
        bail!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::write(path, out.stdout).with_context(|| format!("write {}", path.display()))
}

/// In `dir`, with `openssl`: a test CA (`ca.pem`), a server certificate
/// for IP `127.0.0.1` (`server.pem`, `server.key`) and a client
/// certificate (`client.pem`, `client.key`), both signed by the CA.
fn make_certificates(dir: &Path) -> Result<()> {
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
            ),
        )
        .with_context(|| format!("write {name}.ext"))?;
    }
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!("req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=berth-test-ca"),
    )?;
    for name in ["server", "client"] {
        openssl(
            dir,
            &format!("req {key} -keyout {name}.key -out {name}.csr -subj /CN=127.0.0.1"),
        )?;
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                 -out {name}.pem -days 2 -extfile {name}.ext"
            ),
        )?;
    }
    Ok(())
}

/// Runs `openssl` with the whitespace-separated `args` in `dir`.
fn openssl(dir: &Path, args: &str) -> Result<()> {
    let out = Command::new(OPENSSL_BIN)
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .with_context(|| format!("run {OPENSSL_BIN}"))?;
    if !out.status.success() {
        bail!(
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// True when Debian's `docker-registry`, `htpasswd` and `openssl` are
/// installed.
/// Otherwise prints why the test is skipped and returns false — or panics
/// in CI, like [`crate::require_root`].
#[track_caller]
pub fn require_registry() -> bool {
    let missing: Vec<&str> = [REGISTRY_BIN, HTPASSWD_BIN, OPENSSL_BIN]
        .into_iter()
        .filter(|bin| !Path::new(bin).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let at = std::panic::Location::caller();
    let reason = format!(
        "needs {} (Debian's docker-registry, apache2-utils and openssl: scripts/setup.sh)",
        missing.join(" and ")
    );
    assert!(
        !crate::in_ci(),
        "test at {at} {reason}, and CI must not skip it"
    );
    eprintln!("skipping test at {at}: {reason}");
    false
}

/// Returns from the calling test (skipping it) unless Debian's
/// `docker-registry`, `htpasswd` and `openssl` are installed; panics in CI
/// instead.
#[macro_export]
macro_rules! require_registry {
    () => {
        if !$crate::require_registry() {
            return;
        }
    };
}
