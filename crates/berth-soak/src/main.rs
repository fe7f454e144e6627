//! `berth-soak`: berth's crash-and-load soak (`scripts/soak.sh MINUTES`).
//!
//! It starts a private berthd (testkit's [`Daemon`]: socket, root and state
//! in a temporary directory below `$TMPDIR`) and a loopback
//! `docker-registry` seeded with two images, then for the given time runs
//! lifecycle workers (see [`worker`]) while a chaos loop (see [`chaos`])
//! `kill -9`s the daemon, shims and container processes at random moments.
//!
//! Then it checks, on the daemon that survived and again after a clean
//! restart, that every container record is whole and every task tells the
//! truth ([`checks::records_and_tasks`]); removes the containers, extra
//! images and its own leases through the API; and looks for leaks — shims,
//! container processes, mounts, FIFOs, bundles, cgroups, netns, leases,
//! ingests, content, snapshots ([`checks::leaks`]) — before and after one
//! more restart, and for growth of berthd's fds and RSS ([`usage`]).
//!
//! The last line is the summary:
//! `soak: N operations, R restarts, S shims killed, C container processes
//! killed, E errors tolerated, leaks L`; the exit status is 0 only when
//! L is 0.
//!
//! ```text
//! berth-soak --minutes 3 [--workers 8] [--namespace soak] [--seed N]
//! ```

mod chaos;
mod checks;
mod fixture;
mod rng;
mod stats;
mod usage;
mod worker;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use berth_client::berth_core::images::ImageStore;
use berth_client::transfer::{PullOptions, RegistryOptions};
use berth_client::Client;
use berth_testkit::{Daemon, Registry};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::checks::Places;
use crate::stats::Stats;
use crate::worker::{Shared, LEASE_LABEL};

/// How long the workers get to finish their round once the time is up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a daemon may take to notice dead shims and processes before
/// the records-and-tasks check counts what it still sees.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    minutes: f64,
    workers: usize,
    namespace: String,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut args = Args {
        minutes: 3.0,
        workers: 8,
        namespace: "soak".into(),
        seed,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = || argv.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => args.minutes = value()?.parse().context("--minutes")?,
            "--workers" => args.workers = value()?.parse().context("--workers")?,
            "--namespace" => args.namespace = value()?,
            "--seed" => args.seed = value()?.parse().context("--seed")?,
            other => bail!(
                "unknown argument {other}; usage: berth-soak [--minutes M] [--workers N] [--namespace NS] [--seed N]"
            ),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| soak(&args));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak; true when nothing leaked and nothing failed.
fn soak(args: &Args) -> Result<bool> {
    let registry = Registry::start().context("start docker-registry")?;
    let mut daemon = Daemon::start().context("start berthd")?;
    let images = fixture::seed(&registry, daemon.dir())?;
    let shared = Arc::new(Shared {
        address: daemon.address().to_path_buf(),
        namespace: args.namespace.clone(),
        images,
        fifo_dir: daemon.dir().join("fifo"),
        stats: Arc::new(Stats::default()),
        stop: AtomicBool::new(false),
    });
    eprintln!(
        "soak: {} minutes, {} workers, seed {}, berthd in {}",
        args.minutes,
        args.workers,
        args.seed,
        daemon.dir().display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the tokio runtime")?;
    rt.block_on(pull_base(&shared))?;
    daemon.restart()?;
    let base = usage::measure(pid(&daemon)?)?;

    let daemon = Mutex::new(daemon);
    thread::scope(|scope| {
        scope.spawn(|| chaos::run(&daemon, &shared, args.seed));
        load(&rt, &shared, args);
    });
    let mut daemon = daemon.into_inner().unwrap_or_else(|e| e.into_inner());
    let stats = &shared.stats;
    if !daemon.is_running() {
        chaos::restart(&mut daemon, &shared);
    }

    let mut problems = Vec::new();
    problems.extend(settled_records(&rt, &shared, "after the load"));
    daemon.restart().context("clean restart")?;
    problems.extend(settled_records(&rt, &shared, "after a clean restart"));
    problems.extend(rt.block_on(remove_everything(&shared)));
    let places = Places {
        address: daemon.address().to_path_buf(),
        dir: daemon.dir().to_path_buf(),
        state: daemon.state().to_path_buf(),
        namespace: shared.namespace.clone(),
    };
    let (leaks, expiring) = rt.block_on(all_leaks(&shared, &places))?;
    let loaded = usage::measure(pid(&daemon)?)?;
    daemon.restart().context("final restart")?;
    let (after, _) = rt.block_on(all_leaks(&shared, &places))?;
    let fresh = usage::measure(pid(&daemon)?)?;
    if !expiring.is_empty() {
        eprintln!(
            "soak: {} leases left by client calls the chaos interrupted, to expire (not leaks): {}",
            expiring.len(),
            expiring.join(" ")
        );
    }
    eprintln!("soak: berthd at idle: first {base}; after the load {loaded}; restarted {fresh}");

    problems.extend(stats.failures());
    problems.extend(leaks.iter().map(|l| format!("leak: {l}")));
    problems.extend(
        after
            .iter()
            .filter(|l| !leaks.contains(l))
            .map(|l| format!("leak after the final restart: {l}")),
    );
    problems.extend(usage::growth(base, loaded, fresh));
    report(stats, &problems);
    if !problems.is_empty() {
        keep_log(&daemon);
    }
    Ok(problems.is_empty())
}

/// Copies the daemon's log to `$BERTH_SOAK_LOG`, when set, before the
/// daemon's directory goes.
fn keep_log(daemon: &Daemon) {
    if let Some(path) = std::env::var_os("BERTH_SOAK_LOG") {
        match std::fs::copy(daemon.log_path(), &path) {
            Ok(_) => eprintln!("soak: berthd log kept in {}", path.to_string_lossy()),
            Err(err) => eprintln!("soak: cannot keep the berthd log: {err}"),
        }
    }
}

/// The leaks on the machine and in the store, and the expiring leases.
async fn all_leaks(shared: &Shared, places: &Places) -> Result<(Vec<String>, Vec<String>)> {
    let client = worker::connect(shared).await?;
    let store = checks::store(&client).await?;
    let mut leaks = checks::leaks(places);
    leaks.extend(store.leaks);
    Ok((leaks, store.expiring_leases))
}

fn pid(daemon: &Daemon) -> Result<u32> {
    daemon.pid().context("berthd is not running")
}

/// Pulls the busybox image every lifecycle runs (before the chaos starts).
async fn pull_base(shared: &Shared) -> Result<()> {
    let client = worker::connect(shared).await?;
    let registry = RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    };
    client
        .transfer()
        .pull(
            &shared.images.base,
            &registry,
            &PullOptions::default(),
            None,
        )
        .await
        .with_context(|| format!("pull {}", shared.images.base))
}

/// Runs the workers for the given time, then stops them and waits for
/// them to finish their rounds; the chaos loop stops with them.
fn load(rt: &Runtime, shared: &Arc<Shared>, args: &Args) {
    rt.block_on(async {
        let mut workers = JoinSet::new();
        for n in 0..args.workers {
            workers.spawn(worker::run(Arc::clone(shared), n, args.seed));
        }
        tokio::time::sleep(Duration::from_secs_f64(args.minutes * 60.0)).await;
        shared.stop.store(true, Ordering::Relaxed);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            shared.stats.failure(format!(
                "{} workers still busy {DRAIN_TIMEOUT:?} after the end",
                workers.len()
            ));
            workers.abort_all();
        }
    });
}

/// The records-and-tasks check, repeated until it passes or the daemon
/// had [`SETTLE_TIMEOUT`] to notice what the chaos did.
fn settled_records(rt: &Runtime, shared: &Shared, when: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let found = rt.block_on(async {
            let client = worker::connect(shared).await?;
            checks::records_and_tasks(&client, &shared.address).await
        });
        match found {
            Ok(problems) if problems.is_empty() => return problems,
            Ok(problems) if std::time::Instant::now() >= deadline => {
                return problems
                    .into_iter()
                    .map(|p| format!("{when}: {p}"))
                    .collect();
            }
            Err(err) if std::time::Instant::now() >= deadline => {
                return vec![format!("{when}: cannot list containers and tasks: {err:#}")];
            }
            _ => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// What a user cleaning up would do: remove every container (killing its
/// task), every image but busybox, and the soak's own leases; then one
/// more collection. Any failure here is a problem.
async fn remove_everything(shared: &Shared) -> Vec<String> {
    let mut problems = Vec::new();
    let client = match worker::connect(shared).await {
        Ok(client) => client,
        Err(err) => return vec![format!("clean-up: connect: {err}")],
    };
    match client.containers().list::<&str>(&[]).await {
        Ok(list) => {
            for c in list {
                if let Err(err) = worker::remove_container(&client, &c.id).await {
                    problems.push(format!("clean-up: container {}: {err:#}", c.id));
                }
            }
        }
        Err(err) => problems.push(format!("clean-up: list containers: {err}")),
    }
    if let Err(err) = remove_extras(&client, shared).await {
        problems.push(format!("clean-up: {err:#}"));
    }
    problems
}

async fn remove_extras(client: &Client, shared: &Shared) -> Result<()> {
    let base = berth_client::berth_image::reference::normalize(&shared.images.base)?;
    for image in client.images().list(&[]).await? {
        if image.name != base {
            client.images().delete(&image.name, true).await?;
        }
    }
    let filter = format!("labels.\"{LEASE_LABEL}\"");
    for lease in client.leases().list(&[filter]).await? {
        client.leases().delete(&lease.id, false).await?;
    }
    // One collection with everything removed.
    client
        .leases()
        .create("soak-gc", Default::default())
        .await?;
    client.leases().delete("soak-gc", true).await?;
    Ok(())
}

fn report(stats: &Stats, problems: &[String]) {
    let kinds = stats.error_kinds();
    if !kinds.is_empty() {
        eprintln!("soak: tolerated errors by kind:");
        for (kind, n) in kinds.iter().take(60) {
            eprintln!("  {n:>5}  {kind}");
        }
    }
    for p in problems {
        println!("soak: {p}");
    }
    let t = stats.totals();
    println!(
        "soak: {} operations, {} restarts, {} shims killed, {} container processes killed, {} errors tolerated, leaks {}",
        t.operations,
        t.restarts,
        t.shims_killed,
        t.processes_killed,
        t.errors,
        problems.len()
    );
}
