//! `berth leases`: create, list and remove leases, as `ctr leases` does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use berth_client::leases::{expiry, random_id, EXPIRE_LABEL};
use berth_client::pb::services::v1::Lease;

use crate::args;
use crate::output::{gotime, print, TabWriter};

use super::Context;

/// `leases` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a lease
    Create {
        /// The lease's id (default: generated)
        #[arg(long)]
        id: Option<String>,
        /// Expire the lease after this long (0: never)
        #[arg(short = 'x', long, default_value = "24h", value_parser = args::duration)]
        expires: Duration,
        /// Labels, KEY=VALUE (a bare KEY means an empty value)
        labels: Vec<String>,
    },
    /// List leases
    #[command(visible_aliases = ["ls"])]
    List {
        /// Print only the lease ids
        #[arg(short, long)]
        quiet: bool,
        /// Filters (e.g. id==x, labels.a==b)
        filters: Vec<String>,
    },
    /// Remove one or more leases
    #[command(visible_aliases = ["rm"])]
    Delete {
        /// Wait for garbage collection after the last removal
        #[arg(long)]
        sync: bool,
        /// The leases
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Runs a `leases` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let leases = client.leases();
    match args.command {
        Command::Create {
            id,
            expires,
            labels,
        } => {
            let mut labels = lease_labels(&labels);
            if !expires.is_zero() {
                labels.insert(
                    EXPIRE_LABEL.to_string(),
                    expiry(SystemTime::now() + expires),
                );
            }
            let id = id.filter(|id| !id.is_empty()).unwrap_or_else(random_id);
            let lease = leases.create(&id, labels).await?;
            print(&format!("{}\n", lease.id))?;
        }
        Command::List { quiet, filters } => {
            let list = leases.list(&filters).await?;
            print(&render(&list, quiet))?;
        }
        Command::Delete { sync, ids } => {
            for (i, id) in ids.iter().enumerate() {
                leases.delete(id, sync && i + 1 == ids.len()).await?;
                print(&format!("{id}\n"))?;
            }
        }
    }
    Ok(())
}

/// `ctr leases create` labels: `KEY=VALUE`, a bare `KEY` is empty.
fn lease_labels(args: &[String]) -> HashMap<String, String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (arg.clone(), String::new()),
        })
        .collect()
}

/// The `ID CREATED AT LABELS` table.
fn render(list: &[Lease], quiet: bool) -> String {
    if quiet {
        return list.iter().map(|l| format!("{}\n", l.id)).collect();
    }
    let mut text = String::from("ID\tCREATED AT\tLABELS\t\n");
    for lease in list {
        let mut pairs: Vec<String> = lease
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.sort();
        let labels = if pairs.is_empty() {
            "-".to_string()
        } else {
            pairs.join(",")
        };
        text += &format!(
            "{}\t{}\t{}\t\n",
            lease.id,
            gotime::rfc3339(lease.created_at.as_ref()),
            labels
        );
    }
    TabWriter::NARROW.format(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::prost_types::Timestamp;

    #[test]
    fn table_matches_ctr() {
        // Captured from `ctr leases ls` (containerd 1.6).
        let created = Some(Timestamp {
            seconds: 1_795_329_938,
            nanos: 5,
        });
        let list = [
            Lease {
                id: "727378106-Uiwv".into(),
                created_at: created,
                labels: [(EXPIRE_LABEL.to_string(), "2026-11-23T06:45:38Z".to_string())].into(),
            },
            Lease {
                id: "myl".into(),
                created_at: created,
                labels: [("a".to_string(), "b".to_string())].into(),
            },
        ];
        assert_eq!(
            render(&list, false),
            "ID             CREATED AT           LABELS                                       \n\
             727378106-Uiwv 2026-11-22T06:45:38Z containerd.io/gc.expire=2026-11-23T06:45:38Z \n\
             myl            2026-11-22T06:45:38Z a=b                                          \n"
        );
        assert_eq!(render(&list, true), "727378106-Uiwv\nmyl\n");
    }

    #[test]
    fn bare_lease_labels_are_empty() {
        let labels = lease_labels(&["a=b".into(), "c".into()]);
        assert_eq!(labels.get("c").map(String::as_str), Some(""));
    }
}
