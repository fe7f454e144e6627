//! Runs a container from an image with berth's client library, the way
//! containerd's Go client examples do:
//!
//! pull the image (unpacking it), create a container running `sleep 30` on
//! a snapshot of it, start its task, list containers and tasks, kill the
//! task, wait for it, and delete the task, the container and its snapshot.
//!
//! ```sh
//! cargo run -p berth-client --example run_busybox -- \
//!     --address /run/berth/berth.sock --namespace example docker.io/library/busybox:latest
//! ```
//!
//! `--no-pull` uses an image already in the store (imported, say, with
//! `ctr images import`) instead of pulling it; `--plain-http` pulls from a
//! registry over HTTP; `--id` names the container (default: `run-busybox`).

use std::process::ExitCode;

use berth_client::cio::Io;
use berth_client::container::NewContainer;
use berth_client::pb::types::v1::Status;
use berth_client::task::SIGKILL;
use berth_client::transfer::{PullOptions, RegistryOptions};
use berth_client::{Client, DEFAULT_ADDRESS};

/// The command line.
struct Args {
    address: String,
    namespace: String,
    image: String,
    id: String,
    pull: bool,
    plain_http: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        address: DEFAULT_ADDRESS.to_string(),
        namespace: "default".to_string(),
        image: String::new(),
        id: "run-busybox".to_string(),
        pull: true,
        plain_http: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--address" | "-a" => args.address = value("--address")?,
            "--namespace" | "-n" => args.namespace = value("--namespace")?,
            "--id" => args.id = value("--id")?,
            "--no-pull" => args.pull = false,
            "--plain-http" => args.plain_http = true,
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            image if args.image.is_empty() => args.image = image.to_string(),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if args.image.is_empty() {
        return Err("usage: run_busybox [--address SOCK] [--namespace NS] [--id ID] [--no-pull] [--plain-http] IMAGE".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("run_busybox: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("run_busybox: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> berth_client::Result<()> {
    let client = Client::connect(args.address.as_str())
        .await?
        .with_namespace(args.namespace.as_str());

    if args.pull {
        println!("pulling {}", args.image);
        let registry = RegistryOptions {
            plain_http: args.plain_http,
            ..RegistryOptions::default()
        };
        client
            .transfer()
            .pull(&args.image, &registry, &PullOptions::default(), None)
            .await?;
    }

    let container = client
        .new_container(
            &args.id,
            NewContainer::from_image(args.image.as_str()).args(["sleep", "30"]),
        )
        .await?;
    println!("created container {}", container.id());

    // Everything after this point cleans up even when a step fails.
    let result = run_task(&client, &container).await;
    let deleted = container.delete(true).await;
    result?;
    deleted?;
    println!("deleted container {} and its snapshot", container.id());
    Ok(())
}

async fn run_task(
    client: &Client,
    container: &berth_client::container::Container,
) -> berth_client::Result<()> {
    let task = container.new_task(Io::null()).await?;
    // Wait before start, so the exit cannot be missed.
    let exit = task.wait().await?;
    let pid = task.start().await?;
    println!("started task {} (pid {pid})", task.id());

    let listed = async {
        println!("CONTAINER\tIMAGE");
        for c in client.containers().list::<&str>(&[]).await? {
            println!("{}\t{}", c.id, c.image);
        }
        println!("TASK\tPID\tSTATUS");
        for t in client.tasks().list("").await? {
            let status = Status::try_from(t.status).unwrap_or(Status::Unknown);
            println!("{}\t{}\t{}", t.id, t.pid, status.as_str_name());
        }
        Ok::<_, berth_client::Error>(())
    };
    let listed = listed.await;

    task.kill(SIGKILL, false).await?;
    let status = exit.await?;
    println!("task {} exited with status {}", task.id(), status.code);
    let deleted = task.delete().await?;
    println!("deleted task {} (exit status {})", task.id(), deleted.code);
    listed
}
