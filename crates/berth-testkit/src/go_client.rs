//! Programs on containerd 1.6's own Go client, as independent clients of
//! berthd.
//!
//! `tests/go-client/src/berth.test/goclient` is one Go program with a
//! scenario per file. It is built offline in GOPATH mode against Debian's
//! `golang-github-containerd-containerd-dev` (containerd 1.6.20's client as
//! source), once per test process, into `target/go-client/`:
//!
//! Beside it, `tests/go-client/src/berth.test/suites` is a Go test package
//! running containerd's own content and snapshotter conformance suites
//! through the client's remote stores; [`Daemon::go_suite`] builds it with
//! `go test -c` and runs the tests a `-test.run` pattern selects.
//!
//! ```no_run
//! use berth_testkit::{require_go_client, Daemon};
//!
//! #[test]
//! fn go_client_sees_a_serving_daemon() {
//!     require_go_client!();
//!     let daemon = Daemon::start().expect("start berthd");
//!     daemon.go_client("serving", &[]).assert_success();
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{run_with_timeout, CmdOutput, Daemon};

/// Where Debian's package puts containerd's Go client.
pub const CONTAINERD_GO_SOURCE: &str = "/usr/share/gocode/src/github.com/containerd/containerd";
/// The Go toolchain (Debian's `golang-go`).
pub const GO_BIN: &str = "/usr/bin/go";
/// The Go import path of the test program inside `tests/go-client/src`.
const PACKAGE: &str = "berth.test/goclient";
/// The Go import path of the streaming client.
const STREAM_CLIENT_PACKAGE: &str = "berth.test/streamclient";
/// The Go import path of the conformance suites' test package.
const SUITES_PACKAGE: &str = "berth.test/suites";
/// The bound on one run of the suites' test binary.
const SUITES_TIMEOUT: Duration = Duration::from_secs(600);
/// A scenario's default bound (the program's own `-timeout` is shorter).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// `tests/go-client` in the workspace.
pub fn go_client_gopath() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/go-client")
}

/// The built Go client program; built on first use in this process.
pub fn go_client_bin() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build(&["build"], PACKAGE, "goclient").map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// `tests/go-client/src/berth.test/streamclient`: a Kubernetes streaming
/// client on Debian's spdystream and gorilla/websocket (see its doc
/// comment); built on first use in this process.
pub fn stream_client_bin() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            build(&["build"], STREAM_CLIENT_PACKAGE, "streamclient")
                .map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Runs the streaming client with `args` (flags, mode, URL); its stdout is
/// a JSON report.
pub fn stream_client(args: &[&str]) -> CmdOutput {
    let bin = stream_client_bin().unwrap_or_else(|err| panic!("stream client: {err:#}"));
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run_with_timeout(&mut cmd, SCENARIO_TIMEOUT)
        .unwrap_or_else(|err| panic!("stream client {args:?}: {err:#}"))
}

/// The test binary of `tests/go-client/src/berth.test/suites` (containerd's
/// content and snapshotter conformance suites, `go test -c`); built on
/// first use in this process.
pub fn go_suites_bin() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            build(&["test", "-c"], SUITES_PACKAGE, "suites.test").map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Runs `go GO_ARGS -o BIN PACKAGE` offline in GOPATH mode into
/// `target/<profile>/go-client/NAME`.
fn build(go_args: &[&str], package: &str, name: &str) -> Result<PathBuf> {
    let out_dir = crate::binaries::profile_dir()?.join("go-client");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    // Each process builds to a file of its own and renames it into place, so
    // test binaries running side by side never run a half-written program.
    let tmp = out_dir.join(format!("{name}.{}", std::process::id()));
    let bin = out_dir.join(name);
    let gopath = format!("{}:/usr/share/gocode", go_client_gopath().display());
    let mut cmd = Command::new(GO_BIN);
    cmd.args(go_args)
        .arg("-o")
        .arg(&tmp)
        .arg(package)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .env("GOFLAGS", "")
        .env("GOCACHE", out_dir.join("cache"))
        .env("CGO_ENABLED", "0");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(600))?;
    if !out.success() {
        bail!("go {} {package} failed:\n{out}", go_args.join(" "));
    }
    std::fs::rename(&tmp, &bin).with_context(|| format!("install {}", bin.display()))?;
    Ok(bin)
}

/// True when Go and containerd's Go client sources are installed. Otherwise
/// prints why the test is skipped and returns false — or panics in CI.
#[track_caller]
pub fn require_go_client() -> bool {
    if Path::new(GO_BIN).exists() && Path::new(CONTAINERD_GO_SOURCE).is_dir() {
        return true;
    }
    crate::guards::unmet(
        "needs golang-go and golang-github-containerd-containerd-dev (scripts/setup.sh)",
    )
}

/// Skips (or, in CI, fails) the calling test without Go and containerd's Go client.
#[macro_export]
macro_rules! require_go_client {
    () => {
        if !$crate::require_go_client() {
            return;
        }
    };
}

impl Daemon {
    /// Runs Go client `scenario` against this daemon in namespace
    /// `goclient`, with `args` (e.g. `["-image", REF]`) before the scenario.
    pub fn go_client(&self, scenario: &str, args: &[&str]) -> CmdOutput {
        self.try_go_client(scenario, args)
            .unwrap_or_else(|err| panic!("go client {scenario}: {err:#}"))
    }

    /// Like [`Daemon::go_client`], returning errors to start it.
    pub fn try_go_client(&self, scenario: &str, args: &[&str]) -> Result<CmdOutput> {
        let bin = go_client_bin()?;
        let mut cmd = Command::new(bin);
        cmd.arg("-address")
            .arg(self.address())
            .arg("-dir")
            .arg(self.dir())
            .args(args)
            .arg(scenario);
        run_with_timeout(&mut cmd, SCENARIO_TIMEOUT)
    }

    /// Runs the Go tests of `tests/go-client/src/berth.test/suites` whose
    /// names match `run` (`go test -run`, e.g. `"TestContent"`) against this
    /// daemon, verbosely: each subtest prints `--- PASS: NAME` or
    /// `--- FAIL: NAME`, and the binary exits 0 only if all passed. Its
    /// scratch directories go to this daemon's directory.
    pub fn go_suite(&self, run: &str) -> CmdOutput {
        self.try_go_suite(run)
            .unwrap_or_else(|err| panic!("go suite {run}: {err:#}"))
    }

    /// Like [`Daemon::go_suite`], returning errors to start it.
    pub fn try_go_suite(&self, run: &str) -> Result<CmdOutput> {
        let bin = go_suites_bin()?;
        let mut cmd = Command::new(bin);
        cmd.args(["-test.v", "-test.count=1", "-test.run", run])
            .env("BERTH_ADDRESS", self.address())
            .env("TMPDIR", self.dir())
            .current_dir(self.dir());
        run_with_timeout(&mut cmd, SUITES_TIMEOUT)
    }
}
