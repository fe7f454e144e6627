//! `berthd`: the berth daemon, serving containerd's API on a unix socket.

use anyhow::Result;
use berth_daemon::config::{self, render, Config, Loaded};
use berth_daemon::server;
use clap::Parser;
use std::path::PathBuf;

/// berthd command-line flags; each overrides the config file.
#[derive(Debug, Parser)]
#[command(
    name = "berthd",
    version = concat!(env!("CARGO_PKG_VERSION"), " ", env!("BERTH_GIT_REVISION")),
    about = "berth: a containerd-compatible container runtime daemon"
)]
struct Args {
    /// The gRPC socket [default: /run/berth/berth.sock].
    #[arg(long, short = 'a')]
    address: Option<PathBuf>,
    /// Persistent data directory [default: /var/lib/berth].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Ephemeral state directory [default: /run/berth].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Config file in containerd's format (version 2 or 3)
    /// [default: /etc/berth/config.toml, optional].
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, short = 'l')]
    log_level: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Subcommand>,
}

/// berthd's subcommands; without one, berthd serves.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Forward an event (an encoded protobuf `Any` on stdin) to the running
    /// daemon, as shims call it: `berthd --address A publish --topic T --namespace NS`.
    Publish {
        /// The event topic, e.g. `/tasks/exit`.
        #[arg(long)]
        topic: String,
        /// The namespace the event belongs to.
        #[arg(long)]
        namespace: String,
    },
    /// Information on the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `berthd config …`.
#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print the defaults in containerd's format (version 2).
    Default,
    /// Print the effective config: the file, its imports, then the flags.
    Dump,
}

impl Args {
    fn config(&self) -> Result<Loaded> {
        let mut loaded = match &self.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(config::DEFAULT_CONFIG.as_ref(), false)?,
        };
        self.apply_flags(&mut loaded.config);
        Ok(loaded)
    }

    fn apply_flags(&self, config: &mut Config) {
        if let Some(address) = &self.address {
            config.grpc.address = address.clone();
        }
        if let Some(root) = &self.root {
            config.root = root.clone();
        }
        if let Some(state) = &self.state {
            config.state = state.clone();
        }
        if let Some(level) = &self.log_level {
            config.debug.level = level.clone();
        }
        if let Some(format) = &self.log_format {
            config.debug.format = format.clone();
        }
    }
}

/// A bare level (`debug`) applies to berth; the HTTP/2 stack stays at `info`
/// or quieter so debug logs show berth's own work. Any other string is an
/// `EnvFilter` directive list used as given.
fn log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter> {
    let directives = match level {
        "trace" | "debug" => format!("{level},h2=info,hyper=info,hyper_util=info,tower=info"),
        other => other.to_string(),
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .map_err(|err| anyhow::anyhow!("log level {level:?}: {err}"))
}

fn init_logging(config: &Config) -> Result<()> {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(&config.debug.level)?)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // At debug level each call's span ends with its time.busy/time.idle.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    match config.debug.format.as_str() {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("log format must be text or json, not {other:?}"),
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(err) = run(&args) {
        eprintln!("berthd: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if let Some(Subcommand::Config(ConfigCommand::Default)) = &args.command {
        print!("{}", render::to_toml(&Config::default()));
        return Ok(());
    }
    let Loaded { config, warnings } = args.config()?;
    match &args.command {
        Some(Subcommand::Publish { topic, namespace }) => {
            return publish(&config, topic, namespace);
        }
        Some(Subcommand::Config(_)) => {
            warnings
                .iter()
                .for_each(|w| eprintln!("berthd: warning: {w}"));
            print!("{}", render::to_toml(&config));
            return Ok(());
        }
        None => {}
    }
    init_logging(&config)?;
    for warning in &warnings {
        tracing::warn!("config: {warning}");
    }
    apply_process_settings(&config);
    limit_malloc_arenas();
    let notifier = berth_daemon::notify::Notifier::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Before anything is served or systemd hears READY=1.
        let stop = server::stop_signal();
        server::run(config, notifier, stop).await
    })
}

/// `temp` and `oom_score`, applied to berthd itself before any thread starts.
fn apply_process_settings(config: &Config) {
    if let Some(temp) = &config.temp {
        std::env::set_var("TMPDIR", temp);
    }
    if config.oom_score != 0 {
        set_oom_score(config.oom_score);
    }
}

/// How many malloc arenas berthd's threads share (glibc's `M_ARENA_MAX`).
///
/// glibc gives a thread that allocates while the arenas it knows are busy
/// an arena of its own, up to eight per core, and memory freed into an
/// arena other than the main one mostly stays with it. berthd's work
/// hops between tokio's workers and its blocking pool (file and mount
/// work, shim starts, CNI), so each of those threads ended up holding its
/// own partly used arena: megabytes of resident memory that no pod needs.
/// Two arenas keep the two workers from contending on one lock.
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`]; `MALLOC_ARENA_MAX` in
/// the environment still wins. Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc tunable; berthd has no other
        // thread yet that could be allocating.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// Sets berthd's `oom_score_adj`. Lowering it needs CAP_SYS_RESOURCE; without
/// it berthd keeps its current score and says so rather than failing to start.
fn set_oom_score(score: i32) {
    const PATH: &str = "/proc/self/oom_score_adj";
    let current = std::fs::read_to_string(PATH)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match std::fs::write(PATH, score.to_string()) {
        Ok(()) => tracing::info!(oom_score = score, "oom_score_adj set"),
        Err(err) => tracing::warn!(
            oom_score = score,
            current = ?current,
            error = %err,
            "config: cannot set oom_score (lowering it needs CAP_SYS_RESOURCE): keeping the current score"
        ),
    }
}

fn publish(config: &Config, topic: &str, namespace: &str) -> Result<()> {
    use std::io::Read;
    let mut event = Vec::new();
    std::io::stdin().read_to_end(&mut event)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(berth_daemon::shim_events::publish(
        &config.grpc.address,
        topic,
        namespace,
        &event,
    ))
}
