//! `berth plugins ls`: the daemon's plugins, as `ctr plugins ls` shows them.

use std::collections::BTreeSet;

use berth_client::pb::services::v1::Plugin;
use berth_client::pb::types::Platform;

use crate::output::{json_document, print, Format, Json, Object, TabWriter};

use super::Context;

/// `plugins` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the daemon's plugins
    #[command(visible_alias = "ls")]
    List {
        /// Print only the plugin ids
        #[arg(short, long)]
        quiet: bool,
        /// Print detailed information about each plugin
        #[arg(short, long)]
        detailed: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Filters (e.g. type==io.containerd.snapshotter.v1); a plugin
        /// matching any of them is listed
        filters: Vec<String>,
    },
}

/// Runs a `plugins` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let Command::List {
        quiet,
        detailed,
        format,
        filters,
    } = args.command;
    let client = ctx.connect().await?;
    let plugins = client.introspection().plugins(&filters).await?;
    let text = if quiet {
        plugins.iter().map(|p| format!("{}\n", p.id)).collect()
    } else if format == Format::Json {
        json_document(&Json::Array(plugins.iter().map(json).collect()))
    } else if detailed {
        detailed_list(&plugins)
    } else {
        table(&plugins)
    };
    print(&text)?;
    Ok(())
}

/// `ok`, or why the plugin did not load: `skip` when it chose not to
/// (containerd's `ErrSkipPlugin` text is in the message), else `error`.
fn status(plugin: &Plugin) -> &'static str {
    match &plugin.init_err {
        None => "ok",
        Some(err) if err.message.contains("skip plugin") => "skip",
        Some(_) => "error",
    }
}

/// containerd's `platforms.Format`: `os/arch/variant` without empty parts.
fn platform(p: &Platform) -> String {
    if p.os.is_empty() {
        return "unknown".to_string();
    }
    [&p.os, &p.architecture, &p.variant]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("/")
}

/// The distinct platforms, sorted and comma-separated, as ctr prints them.
fn platforms(list: &[Platform]) -> String {
    let set: BTreeSet<String> = list.iter().map(platform).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// The name of a gRPC code as Go's `codes.Code` prints it.
fn code_name(code: i32) -> String {
    berth_client::code_name(code).map_or_else(|| format!("Code({code})"), str::to_string)
}

/// The `TYPE ID PLATFORMS STATUS` table.
fn table(plugins: &[Plugin]) -> String {
    let mut text = String::from("TYPE\tID\tPLATFORMS\tSTATUS\t\n");
    for p in plugins {
        let platforms = match platforms(&p.platforms) {
            s if s.is_empty() => "-".to_string(),
            s => s,
        };
        text += &format!("{}\t{}\t{}\t{}\t\n", p.r#type, p.id, platforms, status(p));
    }
    TabWriter::WIDE.format(&text)
}

/// `--detailed`: a block per plugin. The odd spacing is ctr's: it writes
/// `fmt.Fprintln(w, "Type:\t", …)`, so a space follows every tab, and
/// separates plugins with a line of empty cells.
fn detailed_list(plugins: &[Plugin]) -> String {
    let mut text = String::new();
    for (i, p) in plugins.iter().enumerate() {
        if i > 0 {
            text += "\t\t\t\n";
        }
        text += &format!("Type:\t {}\nID:\t {}\n", p.r#type, p.id);
        if !p.requires.is_empty() {
            text += "Requires:\t\n";
            for r in &p.requires {
                text += &format!("\t {r}\n");
            }
        }
        if !p.platforms.is_empty() {
            text += &format!("Platforms:\t {}\n", platforms(&p.platforms));
        }
        if !p.exports.is_empty() {
            // Go ranges over the map in random order; berth sorts.
            let mut exports: Vec<_> = p.exports.iter().collect();
            exports.sort();
            text += "Exports:\t\n";
            for (k, v) in exports {
                text += &format!("\t {k} \t {v}\n");
            }
        }
        if !p.capabilities.is_empty() {
            text += &format!("Capabilities:\t {}\n", p.capabilities.join(","));
        }
        if let Some(err) = &p.init_err {
            text += &format!(
                "Error:\t\n\t Code:\t {}\n\t Message:\t {}\n",
                code_name(err.code),
                err.message
            );
        }
    }
    TabWriter::WIDE.format(&text)
}

/// One plugin for `--format json`.
fn json(p: &Plugin) -> Json {
    let mut exports: Vec<_> = p.exports.iter().collect();
    exports.sort();
    let error = p.init_err.as_ref().map(|err| {
        Object::new()
            .field("code", code_name(err.code))
            .field("message", err.message.as_str())
            .build()
    });
    Object::new()
        .field("type", p.r#type.as_str())
        .field("id", p.id.as_str())
        .field("requires", p.requires.clone())
        .field(
            "platforms",
            p.platforms.iter().map(platform).collect::<Vec<_>>(),
        )
        .field(
            "exports",
            Json::Object(
                exports
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.into()))
                    .collect(),
            ),
        )
        .field("capabilities", p.capabilities.clone())
        .field("status", status(p))
        .omitempty("error", error)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::pb::google::rpc::Status;

    fn plugin(kind: &str, id: &str) -> Plugin {
        Plugin {
            r#type: kind.into(),
            id: id.into(),
            ..Plugin::default()
        }
    }

    fn linux() -> Vec<Platform> {
        vec![Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Platform::default()
        }]
    }

    /// The plugins of `testdata/plugins-*.txt`, captured from Debian's
    /// containerd 1.6 with `ctr plugins ls [-d] id==content id==devmapper
    /// id==bolt id==walking`.
    fn fixture() -> Vec<Plugin> {
        let mut content = plugin("io.containerd.content.v1", "content");
        content.exports.insert(
            "root".into(),
            "/tmp/ctrd/root/io.containerd.content.v1.content".into(),
        );
        let mut devmapper = plugin("io.containerd.snapshotter.v1", "devmapper");
        devmapper.platforms = linux();
        devmapper.init_err = Some(Status {
            code: 2,
            message: "devmapper not configured".into(),
            details: vec![],
        });
        let mut bolt = plugin("io.containerd.metadata.v1", "bolt");
        bolt.requires = vec![
            "io.containerd.content.v1".into(),
            "io.containerd.snapshotter.v1".into(),
        ];
        for (k, v) in [
            (
                "path",
                "/tmp/ctrd/root/io.containerd.metadata.v1.bolt/meta.db",
            ),
            ("policy", "shared"),
        ] {
            bolt.exports.insert(k.into(), v.into());
        }
        let mut walking = plugin("io.containerd.differ.v1", "walking");
        walking.requires = vec!["io.containerd.metadata.v1".into()];
        walking.platforms = linux();
        let mut grpc = plugin("io.containerd.grpc.v1", "content");
        grpc.requires = vec!["io.containerd.service.v1".into()];
        vec![content, devmapper, bolt, walking, grpc]
    }

    #[test]
    fn table_matches_ctr() {
        assert_eq!(
            table(&fixture()),
            include_str!("testdata/plugins-table.txt")
        );
    }

    #[test]
    fn detailed_matches_ctr() {
        assert_eq!(
            detailed_list(&fixture()),
            include_str!("testdata/plugins-detailed.txt")
        );
    }

    #[test]
    fn status_tells_skipped_from_failed() {
        let mut p = plugin("t", "i");
        assert_eq!(status(&p), "ok");
        p.init_err = Some(Status {
            code: 2,
            message: "no aufs: skip plugin".into(),
            details: vec![],
        });
        assert_eq!(status(&p), "skip");
    }

    #[test]
    fn platforms_are_deduplicated_sorted_and_joined() {
        let p = |os: &str, arch: &str, variant: &str| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            ..Platform::default()
        };
        let list = [
            p("linux", "arm", "v7"),
            p("linux", "amd64", ""),
            p("linux", "amd64", ""),
            p("", "x", ""),
        ];
        assert_eq!(platforms(&list), "linux/amd64,linux/arm/v7,unknown");
    }

    #[test]
    fn codes_are_named_like_go() {
        assert_eq!(code_name(2), "Unknown");
        assert_eq!(code_name(12), "Unimplemented");
        assert_eq!(code_name(99), "Code(99)");
    }

    #[test]
    fn json_lists_every_field() {
        let json = json(&fixture()[1]).to_compact();
        assert_eq!(
            json,
            r#"{"type":"io.containerd.snapshotter.v1","id":"devmapper","requires":[],"platforms":["linux/amd64"],"exports":{},"capabilities":[],"status":"error","error":{"code":"Unknown","message":"devmapper not configured"}}"#
        );
    }
}
