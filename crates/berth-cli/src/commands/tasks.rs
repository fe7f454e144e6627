//! `berth tasks`: start, list, signal, exec into, pause, attach to and
//! remove tasks, as `ctr tasks` does.

use std::path::PathBuf;

use berth_client::cio::{Io, DEFAULT_FIFO_DIR};
use berth_client::pb::types::v1::{ProcessInfo, Status};
use berth_client::pb::types::Metric;
use berth_client::task::{parse_signal, Task, SIGKILL};
use berth_client::{Client, ErrorKind};

use super::run::{follow, foreground, stdio, Signals};
use super::{warn, Context, Exit, Reported};
use crate::output::{gotime, print, TabWriter};

/// `tasks` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start a container's task (in the foreground unless -d)
    Start {
        /// Send the task's output nowhere
        #[arg(long)]
        null_io: bool,
        /// Send stdout and stderr to this file URI (file:///path)
        #[arg(long, value_name = "URI")]
        log_uri: Option<String>,
        /// Where the stdio FIFOs are made
        #[arg(long, default_value = DEFAULT_FIFO_DIR)]
        fifo_dir: PathBuf,
        /// Start the task and return
        #[arg(short, long)]
        detach: bool,
        /// The container
        id: String,
    },
    /// List tasks
    #[command(visible_alias = "ls")]
    List {
        /// Print only the task ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a task
    Ps {
        /// The container
        id: String,
    },
    /// Signal a task's init process (or an exec)
    Kill {
        /// The signal (name or number)
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the task (ctr's `-a`, which is
        /// berth's global `--address` short flag)
        #[arg(long)]
        all: bool,
        /// The exec process to signal
        #[arg(long)]
        exec_id: Option<String>,
        /// The container
        id: String,
    },
    /// Run a process in a running task
    Exec {
        /// The exec process's id
        #[arg(long, required = true)]
        exec_id: String,
        /// Allocate a terminal
        #[arg(short = 't', long)]
        tty: bool,
        /// Start the process and return
        #[arg(short, long)]
        detach: bool,
        /// The working directory
        #[arg(long)]
        cwd: Option<String>,
        /// Environment variables, KEY=VALUE
        #[arg(long, value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Where the stdio FIFOs are made
        #[arg(long, default_value = DEFAULT_FIFO_DIR)]
        fifo_dir: PathBuf,
        /// Send stdout and stderr to this file URI (file:///path)
        #[arg(long, value_name = "URI")]
        log_uri: Option<String>,
        /// The container
        id: String,
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Pause a task
    Pause {
        /// The container
        id: String,
    },
    /// Resume a paused task
    Resume {
        /// The container
        id: String,
    },
    /// Delete one or more stopped tasks
    #[command(visible_aliases = ["del", "remove", "rm"])]
    Delete {
        /// Kill the task first if it runs
        #[arg(short, long)]
        force: bool,
        /// Delete this exec process instead of the task
        #[arg(long)]
        exec_id: Option<String>,
        /// The containers
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Attach to the stdio of a running task
    Attach {
        /// The container
        id: String,
    },
    /// Print a task's metrics
    #[command(visible_alias = "metric")]
    Metrics {
        /// The container
        id: String,
    },
}

/// Runs a `tasks` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    match args.command {
        Command::Start {
            null_io,
            log_uri,
            fifo_dir,
            detach,
            id,
        } => {
            let container = client.load_container(&id).await?;
            let tty = container.spec().await?.process.is_some_and(|p| p.terminal);
            let io = stdio(null_io, log_uri.as_deref(), detach, tty, &fifo_dir)?;
            let task = container.new_task(io).await?;
            if detach {
                task.start().await?;
                return Ok(());
            }
            let status = foreground(&task, tty).await;
            let deleted = task.delete().await;
            exit_with(status?.code, deleted.map(|_| ()))?;
        }
        Command::List { quiet } => {
            let tasks = client.tasks().list("").await?;
            let ips: std::collections::HashMap<String, String> = if quiet {
                Default::default()
            } else {
                client
                    .containers()
                    .list::<&str>(&[])
                    .await?
                    .into_iter()
                    .filter_map(|c| {
                        let ip = c.labels.get(berth_client::network::LABEL_IP)?.clone();
                        Some((c.id, ip))
                    })
                    .collect()
            };
            print(&list(&tasks, &ips, quiet))?;
        }
        Command::Ps { id } => {
            let task = load(&client, &id).await?;
            print(&ps(&task.pids().await?))?;
        }
        Command::Kill {
            signal,
            all,
            exec_id,
            id,
        } => {
            let signal = parse_signal(&signal)?;
            if all && exec_id.is_some() {
                anyhow::bail!("specify an exec-id or all; not both");
            }
            load(&client, &id).await?;
            client
                .tasks()
                .kill(&id, exec_id.as_deref().unwrap_or(""), signal, all)
                .await?;
        }
        Command::Exec {
            exec_id,
            tty,
            detach,
            cwd,
            env,
            fifo_dir,
            log_uri,
            id,
            command,
        } => {
            let container = client.load_container(&id).await?;
            let mut spec = container
                .spec()
                .await?
                .process
                .ok_or_else(|| anyhow::anyhow!("container {id:?} has no process spec"))?;
            spec.args = command;
            if let Some(cwd) = cwd {
                spec.cwd = cwd;
            }
            for entry in env {
                let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
                spec.env
                    .retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                spec.env.push(entry);
            }
            let task = container.task(None).await?;
            let io = stdio(false, log_uri.as_deref(), detach, tty, &fifo_dir)?;
            let process = task.exec(&exec_id, spec, io).await?;
            if detach {
                process.start().await?;
                return Ok(());
            }
            let status = foreground(&process, tty).await;
            let deleted = process.delete().await;
            exit_with(status?.code, deleted.map(|_| ()))?;
        }
        Command::Pause { id } => load(&client, &id).await?.pause().await?,
        Command::Resume { id } => load(&client, &id).await?.resume().await?,
        Command::Delete {
            force,
            exec_id,
            ids,
        } => {
            let mut failed = false;
            for id in ids {
                if let Err(err) = delete(&client, &id, force, exec_id.as_deref()).await {
                    warn(format_args!("failed to delete task {id:?}: {err:#}"));
                    failed = true;
                }
            }
            if failed {
                return Err(Reported.into());
            }
        }
        Command::Attach { id } => {
            let container = client.load_container(&id).await?;
            let task = container.task(Some(Io::inherit())).await?;
            let tty = task.io_config().terminal;
            let exit = task.wait().await?;
            let status = follow(&task, exit, tty, Signals::new(tty)?).await?;
            if status.code != 0 {
                return Err(Exit(status.code).into());
            }
        }
        Command::Metrics { id } => {
            let task = load(&client, &id).await?;
            print(&metrics(&task.metrics().await?))?;
        }
    }
    Ok(())
}

/// The task of container `id`, loaded without attaching to its stdio.
async fn load(client: &Client, id: &str) -> anyhow::Result<Task> {
    Ok(client.load_container(id).await?.task(None).await?)
}

/// Exits with `code` once cleanup went well.
fn exit_with(code: u32, cleanup: berth_client::Result<()>) -> anyhow::Result<()> {
    cleanup?;
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}

/// `tasks rm`: a stopped task (or with `--force` a running one, killed
/// first), or one exec process.
async fn delete(
    client: &Client,
    id: &str,
    force: bool,
    exec_id: Option<&str>,
) -> anyhow::Result<()> {
    let task = load(client, id).await?;
    if let Some(exec_id) = exec_id {
        client.tasks().delete_process(id, exec_id).await?;
        return Ok(());
    }
    if force {
        let status = task.status().await?.status;
        if matches!(status, Status::Created | Status::Running | Status::Paused) {
            let exit = task.wait().await?;
            match task.kill(SIGKILL, true).await {
                Err(err) if err.kind() != ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
            exit.await?;
        }
    }
    let exit = task.delete().await?;
    if exit.code != 0 {
        eprintln!(
            "berth: task {id} exit with non-zero exit code {}",
            exit.code
        );
    }
    Ok(())
}

/// The `TASK PID STATUS` table, as ctr prints it; when a listed task's
/// container is on a CNI network, an `IP` column follows.
fn list(
    tasks: &[berth_client::pb::types::v1::Process],
    ips: &std::collections::HashMap<String, String>,
    quiet: bool,
) -> String {
    if quiet {
        return tasks.iter().map(|t| format!("{}\n", task_id(t))).collect();
    }
    let with_ip = tasks.iter().any(|t| ips.contains_key(task_id(t)));
    let mut text = String::from(if with_ip {
        "TASK\tPID\tSTATUS\tIP\t\n"
    } else {
        "TASK\tPID\tSTATUS\t\n"
    });
    for t in tasks {
        let status = Status::try_from(t.status).unwrap_or(Status::Unknown);
        text += &format!("{}\t{}\t{}\t", task_id(t), t.pid, status.as_str_name());
        if with_ip {
            let ip = ips.get(task_id(t)).map(String::as_str).unwrap_or("-");
            text += &format!("{ip}\t");
        }
        text += "\n";
    }
    TabWriter::WIDE.format(&text)
}

fn task_id(process: &berth_client::pb::types::v1::Process) -> &str {
    if process.id.is_empty() {
        &process.container_id
    } else {
        &process.id
    }
}

/// The `PID INFO` table (`tabwriter.NewWriter(os.Stdout, 10, 1, 3, ' ',
/// 0)` with no trailing tab: only the PID column is padded).
fn ps(processes: &[ProcessInfo]) -> String {
    let width = processes
        .iter()
        .map(|p| p.pid.to_string().len())
        .chain(std::iter::once("PID".len()))
        .max()
        .unwrap_or(0)
        + 3;
    let width = width.max(10);
    let mut text = format!("{:<width$}INFO\n", "PID");
    for p in processes {
        let info = p
            .info
            .as_ref()
            .map_or_else(|| "-".to_string(), |i| i.type_url.clone());
        text += &format!("{:<width$}{info}\n", p.pid);
    }
    text
}

/// `tasks metrics` as ctr prints it: `ID TIMESTAMP`, then for cgroups v1
/// metrics the `METRIC VALUE` table ctr shows (memory, CPU, pids); other
/// data is named by its type.
fn metrics(metric: &Metric) -> String {
    let mut text = String::from("ID\tTIMESTAMP\t\n");
    text += &format!(
        "{}\t{}\t\n\n",
        metric.id,
        gotime::go_string(metric.timestamp.as_ref())
    );
    match &metric.data {
        Some(data) if data.type_url.ends_with("io.containerd.cgroups.v1.Metrics") => {
            text += &cgroups_v1_table(&data.value);
        }
        Some(data) => text += &format!("DATA\t{}\t\n", data.type_url),
        None => {}
    }
    TabWriter::WIDE.format(&text)
}

/// ctr's `printCgroupMetricsTable` over `io.containerd.cgroups.v1.Metrics`
/// (pids = 2, cpu = 3, memory = 4), read straight from the protobuf bytes:
/// the message is not among `containerd-client`'s types.
fn cgroups_v1_table(bytes: &[u8]) -> String {
    let mut text = String::from("METRIC\tVALUE\t\n");
    let metrics = proto::Message::parse(bytes);
    if let Some(memory) = metrics.message(4) {
        let usage = memory.message(33).unwrap_or_default();
        text += &format!("memory.usage_in_bytes\t{}\t\n", usage.uint(2));
        text += &format!("memory.limit_in_bytes\t{}\t\n", usage.uint(1));
        text += &format!("memory.stat.cache\t{}\t\n", memory.uint(18));
    }
    if let Some(cpu) = metrics.message(3) {
        let usage = cpu.message(1).unwrap_or_default();
        let per_cpu: Vec<String> = usage.uints(4).iter().map(u64::to_string).collect();
        text += &format!("cpuacct.usage\t{}\t\n", usage.uint(1));
        text += &format!("cpuacct.usage_percpu\t[{}]\t\n", per_cpu.join(" "));
    }
    if let Some(pids) = metrics.message(2) {
        text += &format!("pids.current\t{}\t\n", pids.uint(1));
        text += &format!("pids.limit\t{}\t\n", pids.uint(2));
    }
    text
}

/// Just enough protobuf decoding for the metrics above: varint and
/// length-delimited fields by number (fixed-width ones are skipped).
mod proto {
    /// One message's fields, in order.
    #[derive(Default)]
    pub struct Message<'a> {
        fields: Vec<(u64, Value<'a>)>,
    }

    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    impl<'a> Message<'a> {
        /// The fields of `bytes`, up to the first malformed one.
        pub fn parse(mut bytes: &'a [u8]) -> Message<'a> {
            let mut fields = Vec::new();
            while let Some(key) = varint(&mut bytes) {
                let value = match key & 7 {
                    0 => match varint(&mut bytes) {
                        Some(v) => Value::Varint(v),
                        None => break,
                    },
                    2 => {
                        let Some(len) = varint(&mut bytes) else { break };
                        let Ok(len) = usize::try_from(len) else { break };
                        if len > bytes.len() {
                            break;
                        }
                        let (value, rest) = bytes.split_at(len);
                        bytes = rest;
                        Value::Bytes(value)
                    }
                    1 if bytes.len() >= 8 => {
                        bytes = &bytes[8..];
                        continue;
                    }
                    5 if bytes.len() >= 4 => {
                        bytes = &bytes[4..];
                        continue;
                    }
                    _ => break,
                };
                fields.push((key >> 3, value));
            }
            Message { fields }
        }

        /// The last varint field `number` (0 when absent, as proto3 reads).
        pub fn uint(&self, number: u64) -> u64 {
            self.fields
                .iter()
                .rev()
                .find_map(|(n, v)| match v {
                    Value::Varint(x) if *n == number => Some(*x),
                    _ => None,
                })
                .unwrap_or(0)
        }

        /// Every value of repeated varint field `number`, packed or not.
        pub fn uints(&self, number: u64) -> Vec<u64> {
            let mut out = Vec::new();
            for (n, v) in &self.fields {
                match v {
                    _ if *n != number => {}
                    Value::Varint(x) => out.push(*x),
                    Value::Bytes(mut packed) => {
                        while let Some(x) = varint(&mut packed) {
                            out.push(x);
                        }
                    }
                }
            }
            out
        }

        /// Embedded message field `number`, if present.
        pub fn message(&self, number: u64) -> Option<Message<'a>> {
            self.fields.iter().rev().find_map(|(n, v)| match v {
                Value::Bytes(b) if *n == number => Some(Message::parse(b)),
                _ => None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::pb::types::v1::Process;
    use berth_client::task::SIGTERM;

    #[test]
    fn task_list_is_ctrs_table() {
        let tasks = vec![Process {
            id: "web".into(),
            pid: 4242,
            status: Status::Running as i32,
            ..Process::default()
        }];
        let none = Default::default();
        assert_eq!(
            list(&tasks, &none, false),
            "TASK    PID     STATUS     \nweb     4242    RUNNING    \n"
        );
        assert_eq!(list(&tasks, &none, true), "web\n");
        let ips = [("web".to_string(), "10.88.0.2".to_string())].into();
        assert_eq!(
            list(&tasks, &ips, false),
            "TASK    PID     STATUS     IP           \nweb     4242    RUNNING    10.88.0.2    \n"
        );
    }

    #[test]
    fn ps_pads_the_pid_column() {
        let procs = vec![ProcessInfo {
            pid: 12,
            info: None,
        }];
        assert_eq!(ps(&procs), "PID       INFO\n12        -\n");
    }

    #[test]
    fn cgroups_v1_metrics_print_as_ctr_does() {
        // pids {current: 3, limit: 0}, cpu {usage {total: 300, per_cpu: [100, 200]}},
        // memory {total_cache: 7, usage {limit: 9, usage: 8}}
        let pids = [0x08, 3];
        let usage = [0x08, 0xac, 0x02, 0x22, 3, 100, 0xc8, 0x01];
        let mut cpu = vec![0x0a, usage.len() as u8];
        cpu.extend_from_slice(&usage);
        let entry = [0x08, 9, 0x10, 8];
        let mut memory = vec![0x90, 0x01, 7, 0x8a, 0x02, entry.len() as u8];
        memory.extend_from_slice(&entry);
        let mut bytes = vec![0x12, pids.len() as u8];
        bytes.extend_from_slice(&pids);
        bytes.extend_from_slice(&[0x1a, cpu.len() as u8]);
        bytes.extend_from_slice(&cpu);
        bytes.extend_from_slice(&[0x22, memory.len() as u8]);
        bytes.extend_from_slice(&memory);
        let table = cgroups_v1_table(&bytes);
        assert_eq!(
            table,
            "METRIC\tVALUE\t\n\
             memory.usage_in_bytes\t8\t\n\
             memory.limit_in_bytes\t9\t\n\
             memory.stat.cache\t7\t\n\
             cpuacct.usage\t300\t\n\
             cpuacct.usage_percpu\t[100 200]\t\n\
             pids.current\t3\t\n\
             pids.limit\t0\t\n"
        );
    }

    #[test]
    fn default_signal_is_term() {
        assert_eq!(parse_signal("SIGTERM").ok(), Some(SIGTERM));
    }
}
