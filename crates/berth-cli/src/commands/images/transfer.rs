//! `berth images pull` and `berth images push`: both run inside the daemon
//! through the transfer service (as ctr 2.x does by default), with
//! progress streamed back. On a terminal each blob gets a progress bar
//! (bytes, speed, ETA); otherwise each change of a blob's state is one
//! line.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_client::berth_image::{platforms, Platform};
use berth_client::transfer::{
    Credentials, CredentialsFn, Progress, ProgressFn, PullOptions, RegistryOptions,
};
use berth_client::Client;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::units::bytes;

/// Registry flags shared by pull and push, as ctr's.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Use plain HTTP for the registry (loopback registries use it anyway)
    #[arg(long)]
    plain_http: bool,
    /// User[:password] for the registry (prompted for if missing)
    #[arg(short, long)]
    user: Option<String>,
    /// Directory of hosts.toml files (containerd's certs.d layout)
    #[arg(long)]
    hosts_dir: Option<String>,
}

/// `images pull` options.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Pull content for this platform (repeatable; default: the daemon's)
    #[arg(long)]
    platform: Vec<String>,
    /// Pull content for every platform
    #[arg(long)]
    all_platforms: bool,
    /// Snapshotter to unpack into
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// Fetch only: do not unpack
    #[arg(long)]
    no_unpack: bool,
    /// Labels for the image record (KEY=VALUE)
    #[arg(long)]
    label: Vec<String>,
    /// The image reference (e.g. docker.io/library/busybox:latest)
    reference: String,
}

/// `images push` options.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Push content for this platform (repeatable; default: all)
    #[arg(long)]
    platform: Vec<String>,
    /// Push content for every platform (the default)
    #[arg(long)]
    all_platforms: bool,
    /// Where to push (e.g. 127.0.0.1:5000/test/busybox:1)
    remote: String,
    /// The local image to push (default: the remote reference)
    local: Option<String>,
}

/// Pulls an image through the daemon.
pub async fn pull(client: &Client, args: PullArgs) -> anyhow::Result<()> {
    let registry = registry_options(&args.registry)?;
    let options = PullOptions {
        name: None,
        platforms: parse_platforms(&args.platform)?,
        all_platforms: args.all_platforms,
        unpack: (!args.no_unpack).then(|| args.snapshotter.clone()),
        labels: crate::args::labels(&args.label),
    };
    let transfer = client.transfer();
    shown(|progress| transfer.pull(&args.reference, &registry, &options, Some(progress))).await
}

/// Pushes an image through the daemon.
pub async fn push(client: &Client, args: PushArgs) -> anyhow::Result<()> {
    let registry = registry_options(&args.registry)?;
    let local = args.local.clone().unwrap_or_else(|| args.remote.clone());
    let platforms = if args.all_platforms {
        Vec::new()
    } else {
        parse_platforms(&args.platform)?
    };
    let transfer = client.transfer();
    shown(|progress| transfer.push(&local, &args.remote, &registry, &platforms, Some(progress)))
        .await
}

/// Runs a transfer with its progress on display, then says how long it
/// took.
async fn shown<F, Fut>(run: F) -> anyhow::Result<()>
where
    F: FnOnce(ProgressFn) -> Fut,
    Fut: std::future::Future<Output = berth_client::Result<()>>,
{
    let display = Display::new();
    let start = Instant::now();
    let result = run(display.callback()).await;
    display.finish();
    result?;
    println!("done: {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn parse_platforms(list: &[String]) -> anyhow::Result<Vec<Platform>> {
    list.iter()
        .map(|p| {
            platforms::parse(p)
                .map_err(|e| anyhow::anyhow!("invalid platform {p:?}: {e}"))
                .map(|p| platforms::normalize(&p))
        })
        .collect()
}

/// The registry options the flags ask for; `--user` credentials are given
/// to the daemon when it asks for them over the auth stream.
fn registry_options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    let mut options = RegistryOptions {
        plain_http: args.plain_http,
        hosts_dir: args.hosts_dir.clone(),
        ..RegistryOptions::default()
    };
    if let Some(user) = &args.user {
        let credentials = user_credentials(user)?;
        let answer: CredentialsFn = Arc::new(move |_host, _reference| Some(credentials.clone()));
        options.credentials = Some(answer);
    }
    Ok(options)
}

/// `USER[:PASSWORD]`, prompting for a missing password on stdin.
fn user_credentials(user: &str) -> anyhow::Result<Credentials> {
    if let Some((username, secret)) = user.split_once(':') {
        return Ok(Credentials {
            username: username.to_string(),
            secret: secret.to_string(),
        });
    }
    eprint!("Password: ");
    std::io::stderr().flush()?;
    let mut secret = String::new();
    std::io::stdin().lock().read_line(&mut secret)?;
    Ok(Credentials {
        username: user.to_string(),
        secret: secret.trim_end_matches(['\r', '\n']).to_string(),
    })
}

/// Shows progress: bars on a terminal, lines elsewhere.
#[derive(Clone)]
struct Display {
    inner: Arc<Mutex<State>>,
}

struct State {
    /// Bars by blob name, on a terminal.
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// The last event printed per name, off a terminal.
    last: HashMap<String, String>,
}

impl Display {
    fn new() -> Display {
        let bars = std::io::stdout().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            (multi, HashMap::new())
        });
        Display {
            inner: Arc::new(Mutex::new(State {
                bars,
                last: HashMap::new(),
            })),
        }
    }

    fn callback(&self) -> ProgressFn {
        let display = self.clone();
        Arc::new(move |p| display.update(p))
    }

    fn update(&self, p: Progress) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut state.bars {
            Some((multi, bars)) => update_bar(multi, bars, &p),
            None => {
                if let Some(line) = plain_line(&mut state.last, &p) {
                    println!("{line}");
                }
            }
        }
    }

    fn finish(&self) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, bars)) = &mut state.bars {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

/// Whether an event is about one blob (it has a total and a blob name).
fn is_blob_event(p: &Progress) -> bool {
    matches!(
        p.event.as_str(),
        "waiting" | "downloading" | "uploading" | "complete" | "already exists"
    ) && p.name.contains("sha256:")
}

fn update_bar(multi: &MultiProgress, bars: &mut HashMap<String, ProgressBar>, p: &Progress) {
    if !is_blob_event(p) {
        let _ = multi.println(status_line(p));
        return;
    }
    let bar = bars.entry(p.name.clone()).or_insert_with(|| {
        let bar = multi.add(ProgressBar::new(p.total.max(0) as u64));
        bar.set_style(bar_style());
        bar.set_prefix(short_name(&p.name));
        bar
    });
    if p.total > 0 {
        bar.set_length(p.total as u64);
    }
    match p.event.as_str() {
        "complete" => {
            bar.set_position(p.total.max(p.progress).max(0) as u64);
            bar.finish_with_message(p.event.clone());
        }
        "already exists" => {
            bar.set_position(bar.length().unwrap_or(0));
            bar.finish_with_message("already exists");
        }
        event => {
            bar.set_position(p.progress.max(0) as u64);
            bar.set_message(event.to_string());
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<25} {msg:<12} {bytes:>9}/{total_bytes:<9} {bytes_per_sec:>11} ETA {eta:<3} [{wide_bar}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// `layer-sha256:0123456789ab…` → `layer-sha256:0123456789ab`.
fn short_name(name: &str) -> String {
    match name.split_once("sha256:") {
        Some((kind, hex)) => format!("{kind}sha256:{}", &hex[..hex.len().min(12)]),
        None => name.to_string(),
    }
}

/// A line for an event that is not about one blob.
fn status_line(p: &Progress) -> String {
    let mut line = p.event.clone();
    if !p.name.is_empty() {
        line = format!("{line} {}", p.name);
    }
    if let Some(desc) = &p.desc {
        line = format!("{line} {}", desc.digest);
    }
    line
}

/// The line for an event off a terminal, or `None` when only the byte
/// count moved (one line per state change, not per chunk).
fn plain_line(last: &mut HashMap<String, String>, p: &Progress) -> Option<String> {
    if !is_blob_event(p) {
        return Some(status_line(p));
    }
    if last.get(&p.name).map(String::as_str) == Some(p.event.as_str()) {
        return None;
    }
    last.insert(p.name.clone(), p.event.clone());
    Some(match p.event.as_str() {
        "complete" | "already exists" => {
            format!("{}: {} ({})", p.name, p.event, bytes(p.total))
        }
        // A download that starts past zero continues an earlier one.
        "downloading" if p.progress > 0 => format!(
            "{}: downloading (resuming at {} of {})",
            p.name,
            bytes(p.progress),
            bytes(p.total)
        ),
        event => format!("{}: {event}", p.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, name: &str, progress: i64, total: i64) -> Progress {
        Progress {
            event: event.into(),
            name: name.into(),
            progress,
            total,
            ..Progress::default()
        }
    }

    #[test]
    fn plain_lines_follow_state_changes_only() {
        let layer = "layer-sha256:0123456789abcdef";
        let mut last = HashMap::new();
        let lines: Vec<String> = [
            event("resolving", "docker.io/library/x:1", 0, 0),
            event("waiting", layer, 0, 2048),
            event("downloading", layer, 0, 2048),
            event("downloading", layer, 20, 2048),
            event("complete", layer, 2048, 2048),
            event("downloading", "layer-sha256:fe", 1024, 2048),
        ]
        .iter()
        .filter_map(|p| plain_line(&mut last, p))
        .collect();
        assert_eq!(
            lines,
            [
                "resolving docker.io/library/x:1",
                "layer-sha256:0123456789abcdef: waiting",
                "layer-sha256:0123456789abcdef: downloading",
                "layer-sha256:0123456789abcdef: complete (2.0 KiB)",
                "layer-sha256:fe: downloading (resuming at 1.0 KiB of 2.0 KiB)",
            ]
        );
    }

    #[test]
    fn user_flag_splits_at_the_first_colon() {
        let c = user_credentials("alice:pa:ss").expect("credentials");
        assert_eq!(c.username, "alice");
        assert_eq!(c.secret, "pa:ss");
    }

    #[test]
    fn short_names_keep_twelve_hex_digits() {
        assert_eq!(
            short_name("layer-sha256:0123456789abcdef"),
            "layer-sha256:0123456789ab"
        );
        assert_eq!(short_name("x"), "x");
    }
}
