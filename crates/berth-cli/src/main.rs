//! `berth`: a ctr-compatible command-line client for berthd — and for
//! containerd, since it speaks nothing but containerd's API.
//!
//! Global options, environment variables and output formats follow Debian's
//! `ctr` (containerd 1.6), so scripts can switch between the two. Errors are
//! one line on stderr, `berth: <message>`, and a non-zero exit.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use berth_client::DEFAULT_ADDRESS;

/// berth: manage containers through berthd (or containerd)
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version = concat!(env!("CARGO_PKG_VERSION"), " ", env!("BERTH_GIT_REVISION")),
    propagate_version = true
)]
struct Cli {
    /// Address of the daemon's gRPC socket
    #[arg(
        short,
        long,
        global = true,
        env = "CONTAINERD_ADDRESS",
        default_value = DEFAULT_ADDRESS,
        value_name = "ADDR"
    )]
    address: String,

    /// Namespace to use with commands
    #[arg(
        short,
        long,
        global = true,
        env = "CONTAINERD_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    namespace: String,

    /// Total timeout for the command (Go syntax: 10s, 1m30s; 0: none)
    #[arg(long, global = true, default_value = "0s", value_name = "DUR",
          value_parser = args::duration)]
    timeout: Duration,

    /// Timeout for connecting to the daemon (0: none)
    #[arg(long, global = true, default_value = "0s", value_name = "DUR",
          value_parser = args::duration)]
    connect_timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the client and server versions
    Version,
    /// Show the daemon's versions, paths, storage, runtime, object counts
    /// and plugin status
    Info(commands::info::Args),
    /// Provide information about the daemon's plugins
    #[command(visible_alias = "plugin")]
    Plugins(commands::plugins::Args),
    /// Manage namespaces
    #[command(visible_aliases = ["namespace", "ns"])]
    Namespaces(commands::namespaces::Args),
    /// Manage containers
    #[command(visible_aliases = ["c", "container"])]
    Containers(commands::containers::Args),
    /// Display the daemon's events as they happen
    #[command(visible_alias = "event")]
    Events(commands::events::Args),
    /// Manage content
    Content(commands::content::Args),
    /// Manage images
    #[command(visible_aliases = ["image", "i"])]
    Images(commands::images::Args),
    /// Manage leases
    #[command(visible_alias = "lease")]
    Leases(commands::leases::Args),
    /// Run a container
    Run(Box<commands::run::Args>),
    /// Manage tasks
    #[command(visible_aliases = ["t", "task"])]
    Tasks(commands::tasks::Args),
    /// Print a shell completion script (bash, zsh or fish)
    Completion(commands::completion::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    if let Command::Completion(args) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        return match commands::completion::print(args, &mut command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => report(&err.into()),
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return report(&err.into()),
    };
    let result = runtime.block_on(run(cli));
    // A read of stdin still pending (run, attach) must not hold the exit:
    // tokio reads stdin on a blocking thread that cannot be cancelled.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// Runs the command under the total timeout, as ctr's `--timeout` does.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = commands::Context {
        address: cli.address,
        namespace: cli.namespace,
        timeout: args::optional(cli.timeout),
        connect_timeout: args::optional(cli.connect_timeout),
    };
    let command = async {
        match cli.command {
            Command::Version => commands::version::run(&ctx).await,
            Command::Info(args) => commands::info::run(&ctx, args).await,
            Command::Plugins(args) => commands::plugins::run(&ctx, args).await,
            Command::Namespaces(args) => commands::namespaces::run(&ctx, args).await,
            Command::Containers(args) => commands::containers::run(&ctx, args).await,
            Command::Events(args) => commands::events::run(&ctx, args).await,
            Command::Content(args) => commands::content::run(&ctx, args).await,
            Command::Images(args) => commands::images::run(&ctx, args).await,
            Command::Leases(args) => commands::leases::run(&ctx, args).await,
            Command::Run(args) => commands::run::run(&ctx, *args).await,
            Command::Tasks(args) => commands::tasks::run(&ctx, args).await,
            Command::Completion(_) => Ok(()),
        }
    };
    match ctx.timeout {
        Some(timeout) => tokio::time::timeout(timeout, command)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("context deadline exceeded"))),
        None => command.await,
    }
}

/// Prints a failure as one line and picks the exit status. A closed stdout
/// (`berth c ls | head -1`) is not worth a message.
fn report(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<commands::Reported>().is_some() {
        return ExitCode::FAILURE;
    }
    if let Some(commands::Exit(code)) = err.downcast_ref::<commands::Exit>() {
        return ExitCode::from(u8::try_from(*code).unwrap_or(u8::MAX));
    }
    let broken_pipe = err
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("berth: {err:#}");
    ExitCode::FAILURE
}

/// Help and version go to stdout as clap writes them; a usage error is
/// squeezed into one `berth:` line.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        let ok = err.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    eprintln!("berth: {}", one_line(&err.to_string()));
    ExitCode::from(2)
}

/// The first paragraph of clap's message on one line, without `error: `.
fn one_line(message: &str) -> String {
    let first = message.split("\n\n").next().unwrap_or(message);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_become_one_line() {
        let text = "error: the following required arguments were not provided:\n  <NAME>\n\n\
                    Usage: berth namespaces create <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text),
            "the following required arguments were not provided: <NAME>"
        );
    }

    #[test]
    fn global_options_parse_like_ctr() {
        let cli = Cli::try_parse_from([
            "berth",
            "-a",
            "/tmp/s",
            "-n",
            "web",
            "--timeout",
            "5s",
            "ns",
            "ls",
            "-q",
        ])
        .expect("parse");
        assert_eq!(cli.address, "/tmp/s");
        assert_eq!(cli.namespace, "web");
        assert_eq!(cli.timeout, Duration::from_secs(5));
        let cli =
            Cli::try_parse_from(["berth", "c", "ls", "-n", "x", "labels.a==b"]).expect("parse");
        assert_eq!(cli.namespace, "x");
    }
}
