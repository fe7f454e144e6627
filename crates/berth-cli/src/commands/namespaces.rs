//! `berth namespaces`: create, list, label and remove namespaces, as
//! `ctr namespaces` does.

use berth_client::pb::services::v1::Namespace;
use berth_client::ErrorKind;

use crate::args;
use crate::output::{json_document, print, Format, Json, Object, TabWriter};

use super::{warn, Context, Reported};

/// `namespaces` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a new namespace
    #[command(visible_alias = "c")]
    Create {
        /// The namespace's name
        name: String,
        /// Labels, KEY=VALUE (a bare KEY means KEY=true)
        labels: Vec<String>,
    },
    /// List namespaces
    #[command(visible_alias = "ls")]
    List {
        /// Print only the namespace names
        #[arg(short, long)]
        quiet: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove one or more namespaces (each must be empty)
    #[command(visible_alias = "rm")]
    Remove {
        /// The namespaces to remove
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set and clear labels for a namespace (KEY= clears KEY)
    Label {
        /// The namespace's name
        name: String,
        /// Labels, KEY=VALUE
        labels: Vec<String>,
    },
}

/// Runs a `namespaces` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let namespaces = client.namespaces();
    match args.command {
        Command::Create { name, labels } => {
            namespaces.create(&name, args::labels(&labels)).await?;
        }
        Command::List { quiet, format } => {
            let list = namespaces.list().await?;
            print(&render(&list, quiet, format))?;
        }
        Command::Remove { names } => {
            let mut failed = false;
            for name in names {
                match namespaces.delete(&name).await {
                    // Like ctr: removing what is not there is not an error.
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => {
                        warn(format_args!("unable to delete {name}: {err}"));
                        failed = true;
                        continue;
                    }
                }
                print(&format!("{name}\n"))?;
            }
            if failed {
                return Err(Reported.into());
            }
        }
        Command::Label { name, labels } => {
            namespaces.set_labels(&name, args::labels(&labels)).await?;
        }
    }
    Ok(())
}

/// The output of `namespaces ls`.
fn render(list: &[Namespace], quiet: bool, format: Format) -> String {
    if quiet {
        return list.iter().map(|ns| format!("{}\n", ns.name)).collect();
    }
    match format {
        Format::Table => table(list),
        Format::Json => json_document(&Json::Array(list.iter().map(json).collect())),
    }
}

/// The `NAME LABELS` table, labels sorted as `k=v,k=v`.
fn table(list: &[Namespace]) -> String {
    let mut text = String::from("NAME\tLABELS\t\n");
    for ns in list {
        let mut labels: Vec<String> = ns.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        text += &format!("{}\t{}\t\n", ns.name, labels.join(","));
    }
    TabWriter::NARROW.format(&text)
}

/// One namespace for `--format json`.
fn json(ns: &Namespace) -> Json {
    let labels = match Json::string_map(&ns.labels) {
        Json::Null => Json::Object(vec![]),
        labels => labels,
    };
    Object::new()
        .field("name", ns.name.as_str())
        .field("labels", labels)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn table_matches_ctr() {
        // Captured from `ctr namespaces ls` (containerd 1.6).
        let list = [ns("bar", &[]), ns("foo", &[("c", "d"), ("a", "b")])];
        assert_eq!(
            render(&list, false, Format::Table),
            "NAME LABELS  \nbar          \nfoo  a=b,c=d \n"
        );
        assert_eq!(render(&[], false, Format::Table), "NAME LABELS \n");
    }

    #[test]
    fn quiet_prints_names() {
        let list = [ns("bar", &[]), ns("foo", &[("a", "b")])];
        assert_eq!(render(&list, true, Format::Table), "bar\nfoo\n");
    }

    #[test]
    fn json_is_an_array_of_names_and_labels() {
        let list = [ns("bar", &[]), ns("foo", &[("a", "b")])];
        assert_eq!(
            render(&list, false, Format::Json),
            "[\n    {\n        \"name\": \"bar\",\n        \"labels\": {}\n    },\n    \
             {\n        \"name\": \"foo\",\n        \"labels\": {\n            \"a\": \"b\"\n        }\n    }\n]\n"
        );
    }
}
