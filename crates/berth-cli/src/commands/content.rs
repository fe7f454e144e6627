//! `berth content`: list, read, write, label and remove blobs, and list
//! active ingests, as `ctr content` does.

use std::time::SystemTime;

use berth_client::berth_core::content::{ContentStore, Info, Status, WriterOptions};
use berth_client::berth_core::digest::Digester;
use berth_client::berth_core::Digest;
use berth_client::{Error, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args;
use crate::output::units::{human_duration, human_size};
use crate::output::{print, TabWriter};

use super::{warn, Context, Reported};

/// `content` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List all blobs in the store
    #[command(visible_alias = "ls")]
    List {
        /// Print only the blob digests
        #[arg(short, long)]
        quiet: bool,
        /// Filters (e.g. labels.a==b); a blob matching any of them is listed
        filters: Vec<String>,
    },
    /// Write a blob to stdout
    Get {
        /// The blob's digest
        digest: String,
    },
    /// Accept content into the store from stdin
    Ingest {
        /// Verify the content's size
        #[arg(long, default_value_t = 0)]
        expected_size: i64,
        /// Verify the content's digest
        #[arg(long)]
        expected_digest: Option<String>,
        /// The ingest's ref
        reference: String,
    },
    /// Permanently delete one or more blobs
    #[command(visible_aliases = ["rm", "del", "remove"])]
    Delete {
        /// The blobs' digests
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Add labels to a blob (KEY= clears KEY)
    Label {
        /// The blob's digest
        digest: String,
        /// Labels, KEY=VALUE (a bare KEY means KEY=true)
        labels: Vec<String>,
    },
    /// Display active transfers
    Active {
        /// Only ingests whose ref matches this filter
        filter: Option<String>,
    },
}

/// Runs a `content` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let content = client.content();
    match args.command {
        Command::List { quiet, filters } => {
            let list = content.list(&filters).await?;
            print(&render_list(&list, quiet, SystemTime::now()))?;
        }
        Command::Get { digest } => {
            let digest = Digest::parse(&digest)?;
            let mut reader = content.reader(&digest, 0).await?;
            let mut stdout = tokio::io::stdout();
            tokio::io::copy(&mut reader, &mut stdout).await?;
            stdout.flush().await?;
        }
        Command::Ingest {
            expected_size,
            expected_digest,
            reference,
        } => {
            let expected = expected_digest.as_deref().map(Digest::parse).transpose()?;
            ingest(&content, &reference, expected_size, expected).await?;
        }
        Command::Delete { digests } => delete(&content, &digests).await?,
        Command::Label { digest, labels } => {
            let digest = Digest::parse(&digest)?;
            let info = set_labels(&content, digest, args::labels(&labels)).await?;
            print(&format!("{}\n", labels_line(&info)))?;
        }
        Command::Active { filter } => {
            let filters: Vec<String> = filter.into_iter().collect();
            let statuses = content.list_statuses(&filters).await?;
            print(&render_active(&statuses, SystemTime::now()))?;
        }
    }
    Ok(())
}

/// Writes stdin as one blob under `reference` (`content.WriteBlob`): an
/// expected digest that exists already is success; otherwise the daemon
/// verifies size and digest on commit.
async fn ingest(
    content: &impl ContentStore,
    reference: &str,
    size: i64,
    expected: Option<Digest>,
) -> berth_client::Result<()> {
    let options = WriterOptions {
        reference: reference.to_string(),
        total: size,
        expected: expected.clone(),
    };
    let mut writer = match content.writer(options).await {
        Ok(writer) => writer,
        Err(err) if err.kind() == ErrorKind::AlreadyExists && expected.is_some() => return Ok(()),
        Err(err) => return Err(err),
    };
    if writer.status().offset != 0 {
        writer.truncate(0).await?;
    }
    let mut stdin = tokio::io::stdin();
    let mut digester = Digester::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stdin.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        digester.update(&buf[..n]);
        writer.write(&buf[..n]).await?;
    }
    let digest = expected.unwrap_or_else(|| digester.finish());
    match writer.commit(size, Some(digest), Default::default()).await {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Deletes each blob, printing its digest; a missing blob is skipped.
async fn delete(content: &impl ContentStore, digests: &[String]) -> anyhow::Result<()> {
    let mut first: Option<Error> = None;
    for arg in digests {
        let digest = Digest::parse(arg)?;
        match content.delete(&digest).await {
            Ok(()) => print(&format!("{digest}\n"))?,
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => {
                warn(format_args!("unable to delete {digest}: {err}"));
                first.get_or_insert(err);
            }
        }
    }
    match first {
        Some(_) => Err(Reported.into()),
        None => Ok(()),
    }
}

/// Sets and clears labels as `ctr content label` does; with none, the
/// blob's info as it is.
async fn set_labels(
    content: &impl ContentStore,
    digest: Digest,
    labels: std::collections::HashMap<String, String>,
) -> berth_client::Result<Info> {
    if labels.is_empty() {
        return content.info(&digest).await;
    }
    let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
    let now = SystemTime::now();
    let info = Info {
        digest,
        size: 0,
        created_at: now,
        updated_at: now,
        labels: labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
    };
    content.update(info, &paths).await
}

/// Labels sorted as `k=v,k=v`.
fn labels_line(info: &Info) -> String {
    let mut labels: Vec<String> = info
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    labels.join(",")
}

fn age(since: SystemTime, now: SystemTime) -> String {
    human_duration(now.duration_since(since).unwrap_or_default())
}

/// `content ls`: digests, or the tab-padded `DIGEST SIZE AGE LABELS` table.
fn render_list(list: &[Info], quiet: bool, now: SystemTime) -> String {
    if quiet {
        return list.iter().map(|i| format!("{}\n", i.digest)).collect();
    }
    let mut text = String::from("DIGEST\tSIZE\tAGE\tLABELS\n");
    for info in list {
        let labels = labels_line(info);
        let labels = if labels.is_empty() {
            "-".to_string()
        } else {
            labels
        };
        text += &format!(
            "{}\t{}\t{}\t{}\n",
            info.digest,
            human_size(info.size),
            age(info.created_at, now),
            labels
        );
    }
    TabWriter::TABS.format(&text)
}

/// `content active`: the `REF SIZE AGE` table.
fn render_active(statuses: &[Status], now: SystemTime) -> String {
    let mut text = String::from("REF\tSIZE\tAGE\t\n");
    for status in statuses {
        text += &format!(
            "{}\t{}\t{}\t\n",
            status.reference,
            human_size(status.offset),
            age(status.started_at, now)
        );
    }
    TabWriter::TABS.format(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn info(c: u8, size: i64, labels: &[(&str, &str)]) -> Info {
        Info {
            digest: Digest::sha256_of(&[c]),
            size,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn list_matches_ctr() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(15);
        let list = [
            info(1, 1_986_560, &[]),
            info(2, 417, &[("b", "2"), ("a", "1")]),
        ];
        let (d1, d2) = (&list[0].digest, &list[1].digest);
        assert_eq!(
            render_list(&list, false, now),
            format!(
                "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\tLABELS\n\
                 {d1}\t1.987MB\t15 seconds\t-\n\
                 {d2}\t417B\t15 seconds\ta=1,b=2\n"
            )
        );
        assert_eq!(render_list(&list, true, now), format!("{d1}\n{d2}\n"));
    }

    #[test]
    fn active_rows_match_ctr() {
        // Captured from `ctr content active` (containerd 1.6).
        let status = Status {
            reference: "partial-ref".into(),
            offset: 5000,
            total: 0,
            expected: None,
            started_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            render_active(&[status], SystemTime::UNIX_EPOCH),
            "REF\t\tSIZE\tAGE\t\t\t\npartial-ref\t5kB\tLess than a second\t\n"
        );
    }

    #[test]
    fn active_header_matches_ctr() {
        assert_eq!(
            render_active(&[], SystemTime::UNIX_EPOCH),
            "REF\tSIZE\tAGE\t\n"
        );
    }
}
