//! `berth containers`: list, inspect, label and remove container records,
//! as `ctr containers` does.

use berth_client::container::NewContainer;
use berth_client::pb::services::v1::Container;
use berth_client::pb::types::v1::Status as TaskStatus;
use berth_client::prost_types::Any;
use berth_client::{Client, Error, ErrorKind};

use crate::args;
use crate::output::{gotime, json_document, print, Format, Json, Object, TabWriter};

use super::{warn, Context, Reported};

/// `containers` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a container from an unpacked image (or, with --rootfs, a
    /// directory): its rootfs snapshot and its record with a default spec
    Create(CreateArgs),
    /// List containers
    #[command(visible_alias = "ls")]
    List {
        /// Print only the container ids
        #[arg(short, long)]
        quiet: bool,
        /// Output format (json: the `info` object of each container)
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Filters (e.g. labels.app==web, image~=busybox); a container
        /// matching any of them is listed
        filters: Vec<String>,
    },
    /// Get info about a container, as JSON
    Info {
        /// The container's id
        id: String,
        /// Only display the spec
        #[arg(long)]
        spec: bool,
    },
    /// Delete one or more containers (and their stopped tasks)
    #[command(visible_aliases = ["del", "remove", "rm"])]
    Delete {
        /// Do not remove the container's snapshot
        #[arg(long)]
        keep_snapshot: bool,
        /// The containers to delete
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Set and clear labels for a container (KEY= clears KEY)
    Label {
        /// The container's id
        id: String,
        /// Labels, KEY=VALUE
        labels: Vec<String>,
    },
}

/// Runs a `containers` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let containers = client.containers();
    match args.command {
        Command::List {
            quiet,
            format,
            filters,
        } => {
            let list = containers.list(&filters).await?;
            print(&render(&list, quiet, format))?;
        }
        Command::Info { id, spec } => {
            let container = containers.get(&id).await?;
            let json = if spec {
                let spec = container
                    .spec
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("container {id:?} has no spec"))?;
                decode_spec(spec)
            } else {
                info(&container)
            };
            print(&json_document(&json))?;
        }
        Command::Delete { keep_snapshot, ids } => {
            let mut failed = false;
            for id in ids {
                if let Err(err) = delete(&client, &id, keep_snapshot).await {
                    warn(format_args!("failed to delete container {id:?}: {err}"));
                    failed = true;
                }
            }
            if failed {
                return Err(Reported.into());
            }
        }
        Command::Create(args) => create(&client, args).await?,
        Command::Label { id, labels } => {
            let container = containers.set_labels(&id, args::labels(&labels)).await?;
            print(&format!("{}\n", labels_line(&container)))?;
        }
    }
    Ok(())
}

/// `containers create` options, as ctr's.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Snapshotter for the rootfs snapshot
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// Use IMAGE as a root filesystem directory, not an image
    #[arg(long)]
    rootfs: bool,
    /// Labels, KEY=VALUE (repeatable)
    #[arg(long)]
    label: Vec<String>,
    /// Environment variables, KEY=VALUE (repeatable)
    #[arg(long)]
    env: Vec<String>,
    /// Working directory of the process
    #[arg(long)]
    cwd: Option<String>,
    /// Allocate a TTY
    #[arg(short, long)]
    tty: bool,
    /// Use the host's network namespace
    #[arg(long)]
    net_host: bool,
    /// Run privileged
    #[arg(long)]
    privileged: bool,
    /// Mount the rootfs read-only
    #[arg(long)]
    read_only: bool,
    /// Runtime name
    #[arg(long, default_value = "io.containerd.runc.v2")]
    runtime: String,
    /// The image (or, with --rootfs, the directory)
    image: String,
    /// The container's id
    id: String,
    /// The command and its arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Creates a container as `ctr containers create` does: from an image, a
/// snapshot keyed by the id on the image's top chain ID and a spec from
/// the image's config (berth-client's `new_container`).
async fn create(client: &Client, args: CreateArgs) -> Result<(), Error> {
    let mut new = if args.rootfs {
        NewContainer::from_rootfs(&args.image)
    } else {
        NewContainer::from_image(&args.image).snapshotter(&args.snapshotter)
    };
    new = new
        .args(args.command)
        .env(args.env)
        .tty(args.tty)
        .host_network(args.net_host)
        .privileged(args.privileged)
        .readonly_rootfs(args.read_only)
        .runtime(args.runtime);
    if let Some(cwd) = args.cwd {
        new = new.cwd(cwd);
    }
    for (key, value) in args::labels(&args.label) {
        new = new.label(key, value);
    }
    client.new_container(&args.id, new).await?;
    Ok(())
}

/// Deletes a container as `ctr containers rm` does: a stopped (or only
/// created) task goes first, a running one stops the deletion; then the
/// snapshot, unless kept; then the record.
async fn delete(client: &Client, id: &str, keep_snapshot: bool) -> Result<(), Error> {
    let container = client.containers().get(id).await?;
    match client.tasks().get(id).await {
        Ok(process) => match TaskStatus::try_from(process.status) {
            Ok(TaskStatus::Stopped | TaskStatus::Created) => {
                client.tasks().delete(id).await?;
            }
            status => {
                let status = status.map_or("unknown", |s| s.as_str_name());
                return Err(Error::failed_precondition(format!(
                    "cannot delete a non stopped container: task is {}",
                    status.to_lowercase()
                )));
            }
        },
        // No task, or a daemon without a tasks service: nothing to stop.
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotImplemented) => {}
        Err(err) => return Err(err),
    }
    if !keep_snapshot && !container.snapshot_key.is_empty() {
        if container.snapshotter.is_empty() {
            return Err(Error::invalid_argument(
                "container.Snapshotter must be set to cleanup rootfs snapshot: invalid argument",
            ));
        }
        let removed = client
            .snapshots()
            .remove(&container.snapshotter, &container.snapshot_key)
            .await;
        match removed {
            Ok(()) => {}
            Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotImplemented) => {}
            Err(err) => return Err(err),
        }
    }
    client.containers().delete(id).await
}

/// The output of `containers ls`.
fn render(list: &[Container], quiet: bool, format: Format) -> String {
    if quiet {
        return list.iter().map(|c| format!("{}\n", c.id)).collect();
    }
    match format {
        Format::Table => table(list),
        Format::Json => json_document(&Json::Array(list.iter().map(info).collect())),
    }
}

/// The `CONTAINER IMAGE RUNTIME` table; `-` for no image.
fn table(list: &[Container]) -> String {
    let mut text = String::from("CONTAINER\tIMAGE\tRUNTIME\t\n");
    for c in list {
        let image = if c.image.is_empty() { "-" } else { &c.image };
        let runtime = c.runtime.as_ref().map_or("", |r| r.name.as_str());
        text += &format!("{}\t{}\t{}\t\n", c.id, image, runtime);
    }
    TabWriter::WIDE.format(&text)
}

/// A container as `ctr containers info` prints it: the fields of Go's
/// `containers.Container` in declaration order, with the OCI spec decoded
/// and moved to the end (ctr embeds the struct and overrides `Spec`). With
/// no spec, `Spec` keeps its place and prints as the raw `Any` (or null).
fn info(c: &Container) -> Json {
    let decoded = c
        .spec
        .as_ref()
        .filter(|spec| !spec.value.is_empty())
        .map(decode_spec);
    let runtime = c.runtime.as_ref();
    let options: Json = runtime
        .and_then(|r| r.options.as_ref())
        .map(Json::any)
        .into();
    let mut object = Object::new()
        .field("ID", c.id.as_str())
        .field("Labels", Json::string_map(&c.labels))
        .field("Image", c.image.as_str())
        .field(
            "Runtime",
            Object::new()
                .field("Name", runtime.map_or("", |r| r.name.as_str()))
                .field("Options", options)
                .build(),
        );
    if decoded.is_none() {
        object = object.field("Spec", c.spec.as_ref().map(Json::any));
    }
    object = object
        .field("SnapshotKey", c.snapshot_key.as_str())
        .field("Snapshotter", c.snapshotter.as_str())
        .field("CreatedAt", gotime::rfc3339_nano(c.created_at.as_ref()))
        .field("UpdatedAt", gotime::rfc3339_nano(c.updated_at.as_ref()))
        .field("Extensions", extensions(c));
    if let Some(spec) = decoded {
        object = object.field("Spec", spec);
    }
    object.build()
}

/// Extensions as Go prints a `map[string]types.Any`: sorted, null if none.
fn extensions(c: &Container) -> Json {
    if c.extensions.is_empty() {
        return Json::Null;
    }
    let mut pairs: Vec<_> = c.extensions.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    Json::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.clone(), Json::any(v)))
            .collect(),
    )
}

/// The spec as JSON, in the order it was written (containerd writes Go's
/// struct order). A value that is not JSON prints as the raw `Any`.
fn decode_spec(spec: &Any) -> Json {
    std::str::from_utf8(&spec.value)
        .ok()
        .and_then(|text| Json::parse(text).ok())
        .unwrap_or_else(|| Json::any(spec))
}

/// The container's labels after `label`, sorted, as `k=v,k=v`.
fn labels_line(c: &Container) -> String {
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    labels.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::pb::services::v1::container::Runtime;
    use berth_client::prost_types::Timestamp;

    fn container(id: &str) -> Container {
        Container {
            id: id.into(),
            runtime: Some(Runtime {
                name: "io.containerd.runc.v2".into(),
                options: Some(Any {
                    type_url: "containerd.runc.v1.Options".into(),
                    value: vec![],
                }),
            }),
            created_at: Some(Timestamp {
                seconds: 1_795_327_336,
                nanos: 457_229_075,
            }),
            updated_at: Some(Timestamp {
                seconds: 1_795_327_336,
                nanos: 457_229_075,
            }),
            ..Container::default()
        }
    }

    #[test]
    fn table_matches_ctr() {
        // Captured from `ctr containers ls` (containerd 1.6).
        let list = [container("c1"), container("cont2-long-name")];
        assert_eq!(
            render(&list, false, Format::Table),
            "CONTAINER          IMAGE    RUNTIME                  \n\
             c1                 -        io.containerd.runc.v2    \n\
             cont2-long-name    -        io.containerd.runc.v2    \n"
        );
        assert_eq!(render(&list, true, Format::Table), "c1\ncont2-long-name\n");
    }

    #[test]
    fn info_matches_ctr_shape() {
        let mut c = container("c1");
        c.labels.insert("zed".into(), "1".into());
        c.labels.insert("foo".into(), "bar".into());
        c.spec = Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: br#"{"ociVersion":"1.0.2-dev","process":{"args":["/bin/sh"],"cwd":"/"}}"#
                .to_vec(),
        });
        let expected = r#"{
    "ID": "c1",
    "Labels": {
        "foo": "bar",
        "zed": "1"
    },
    "Image": "",
    "Runtime": {
        "Name": "io.containerd.runc.v2",
        "Options": {
            "type_url": "containerd.runc.v1.Options"
        }
    },
    "SnapshotKey": "",
    "Snapshotter": "",
    "CreatedAt": "2026-11-22T06:02:16.457229075Z",
    "UpdatedAt": "2026-11-22T06:02:16.457229075Z",
    "Extensions": null,
    "Spec": {
        "ociVersion": "1.0.2-dev",
        "process": {
            "args": [
                "/bin/sh"
            ],
            "cwd": "/"
        }
    }
}
"#;
        assert_eq!(json_document(&info(&c)), expected);
    }

    #[test]
    fn info_without_spec_keeps_go_field_order() {
        let mut c = container("c1");
        c.runtime = None;
        let json = info(&c).to_compact();
        assert_eq!(
            json,
            r#"{"ID":"c1","Labels":null,"Image":"","Runtime":{"Name":"","Options":null},"Spec":null,"SnapshotKey":"","Snapshotter":"","CreatedAt":"2026-11-22T06:02:16.457229075Z","UpdatedAt":"2026-11-22T06:02:16.457229075Z","Extensions":null}"#
        );
    }

    #[test]
    fn extensions_print_as_any_objects() {
        let mut c = container("c1");
        c.extensions.insert(
            "b".into(),
            Any {
                type_url: "t".into(),
                value: vec![0xff],
            },
        );
        assert_eq!(
            extensions(&c).to_compact(),
            r#"{"b":{"type_url":"t","value":"/w=="}}"#
        );
    }

    #[test]
    fn labels_line_is_sorted() {
        let mut c = container("c1");
        for (k, v) in [("y", "2"), ("x", "1"), ("z", "true")] {
            c.labels.insert(k.into(), v.into());
        }
        assert_eq!(labels_line(&c), "x=1,y=2,z=true");
    }
}
