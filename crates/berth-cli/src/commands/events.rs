//! `berth events`: the daemon's events as they happen, one line each, as
//! `ctr events` prints them: `TIME NAMESPACE TOPIC EVENT-JSON`.
//!
//! ctr decodes each event into its Go struct and prints it with
//! `json.Marshal`: snake_case protobuf field names, empty fields omitted,
//! except timestamps, which Go always prints. [`event_json`] does the same
//! for containerd's event types; an unknown type prints as its raw `Any`.

use berth_client::pb::events as ev;
use berth_client::pb::services::v1::{ImageCreate, ImageDelete, ImageUpdate};
use berth_client::pb::types::{Envelope, Mount};
use berth_client::prost_types::Any;
use berth_client::typeurl::unpack;

use crate::output::{gotime, print, Json, Object};

use super::Context;

/// `events` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Filters (e.g. topic~=/tasks/, namespace==default); an event
    /// matching any of them is shown
    filters: Vec<String>,
}

/// Prints events until the daemon ends the stream (or the timeout).
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    let mut events = client.events().subscribe(&args.filters).await?;
    while let Some(envelope) = events.next().await {
        print(&line(&envelope?))?;
    }
    Ok(())
}

/// One envelope as a line; Go's `fmt.Println` puts a space between the
/// parts even when the event is missing.
fn line(envelope: &Envelope) -> String {
    let event = envelope
        .event
        .as_ref()
        .map_or_else(String::new, |any| event_json(any).to_compact());
    format!(
        "{} {} {} {}\n",
        gotime::go_string(envelope.timestamp.as_ref()),
        envelope.namespace,
        envelope.topic,
        event
    )
}

/// The decoders for containerd's event types, tried in turn.
const DECODERS: &[fn(&Any) -> Option<Json>] = &[
    |a| unpack::<ev::ContainerCreate>(a).map(|e| container_create(&e)),
    |a| {
        unpack::<ev::ContainerUpdate>(a).map(|e| {
            Object::new()
                .omitempty("id", e.id)
                .omitempty("image", e.image)
                .omitempty_map("labels", &e.labels)
                .omitempty("snapshot_key", e.snapshot_key)
                .build()
        })
    },
    |a| unpack::<ev::ContainerDelete>(a).map(|e| Object::new().omitempty("id", e.id).build()),
    |a| {
        unpack::<ev::ContentCreate>(a).map(|e| {
            Object::new()
                .omitempty("digest", e.digest)
                .omitempty("size", e.size)
                .build()
        })
    },
    |a| unpack::<ev::ContentDelete>(a).map(|e| Object::new().omitempty("digest", e.digest).build()),
    |a| unpack::<ImageCreate>(a).map(|e| named(e.name, &e.labels)),
    |a| unpack::<ImageUpdate>(a).map(|e| named(e.name, &e.labels)),
    |a| unpack::<ImageDelete>(a).map(|e| named(e.name, &Default::default())),
    |a| unpack::<ev::NamespaceCreate>(a).map(|e| named(e.name, &e.labels)),
    |a| unpack::<ev::NamespaceUpdate>(a).map(|e| named(e.name, &e.labels)),
    |a| unpack::<ev::NamespaceDelete>(a).map(|e| named(e.name, &Default::default())),
    |a| {
        unpack::<ev::SnapshotPrepare>(a).map(|e| {
            Object::new()
                .omitempty("key", e.key)
                .omitempty("parent", e.parent)
                .omitempty("snapshotter", e.snapshotter)
                .build()
        })
    },
    |a| {
        unpack::<ev::SnapshotCommit>(a).map(|e| {
            Object::new()
                .omitempty("key", e.key)
                .omitempty("name", e.name)
                .omitempty("snapshotter", e.snapshotter)
                .build()
        })
    },
    |a| {
        unpack::<ev::SnapshotRemove>(a).map(|e| {
            Object::new()
                .omitempty("key", e.key)
                .omitempty("snapshotter", e.snapshotter)
                .build()
        })
    },
    |a| unpack::<ev::TaskCreate>(a).map(|e| task_create(&e)),
    |a| {
        unpack::<ev::TaskStart>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("pid", e.pid)
                .build()
        })
    },
    |a| {
        unpack::<ev::TaskDelete>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("pid", e.pid)
                .omitempty("exit_status", e.exit_status)
                .field("exited_at", gotime::rfc3339_nano(e.exited_at.as_ref()))
                .omitempty("id", e.id)
                .build()
        })
    },
    |a| {
        unpack::<ev::TaskExit>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("id", e.id)
                .omitempty("pid", e.pid)
                .omitempty("exit_status", e.exit_status)
                .field("exited_at", gotime::rfc3339_nano(e.exited_at.as_ref()))
                .build()
        })
    },
    |a| unpack::<ev::TaskOom>(a).map(|e| container_only(e.container_id)),
    |a| {
        unpack::<ev::TaskExecAdded>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("exec_id", e.exec_id)
                .build()
        })
    },
    |a| {
        unpack::<ev::TaskExecStarted>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("exec_id", e.exec_id)
                .omitempty("pid", e.pid)
                .build()
        })
    },
    |a| unpack::<ev::TaskPaused>(a).map(|e| container_only(e.container_id)),
    |a| unpack::<ev::TaskResumed>(a).map(|e| container_only(e.container_id)),
    |a| {
        unpack::<ev::TaskCheckpointed>(a).map(|e| {
            Object::new()
                .omitempty("container_id", e.container_id)
                .omitempty("checkpoint", e.checkpoint)
                .build()
        })
    },
];

/// An event as ctr's `json.Marshal` of its Go struct.
fn event_json(any: &Any) -> Json {
    DECODERS
        .iter()
        .find_map(|decode| decode(any))
        .unwrap_or_else(|| Json::any(any))
}

fn container_create(e: &ev::ContainerCreate) -> Json {
    let runtime = e.runtime.as_ref().map(|r| {
        Object::new()
            .omitempty("name", r.name.as_str())
            .omitempty("options", r.options.as_ref().map(Json::any))
            .build()
    });
    Object::new()
        .omitempty("id", e.id.as_str())
        .omitempty("image", e.image.as_str())
        .omitempty("runtime", runtime)
        .build()
}

fn task_create(e: &ev::TaskCreate) -> Json {
    let io = e.io.as_ref().map(|io| {
        Object::new()
            .omitempty("stdin", io.stdin.as_str())
            .omitempty("stdout", io.stdout.as_str())
            .omitempty("stderr", io.stderr.as_str())
            .omitempty("terminal", io.terminal)
            .build()
    });
    Object::new()
        .omitempty("container_id", e.container_id.as_str())
        .omitempty("bundle", e.bundle.as_str())
        .omitempty("rootfs", e.rootfs.iter().map(mount).collect::<Vec<_>>())
        .omitempty("io", io)
        .omitempty("checkpoint", e.checkpoint.as_str())
        .omitempty("pid", e.pid)
        .build()
}

fn mount(m: &Mount) -> Json {
    Object::new()
        .omitempty("type", m.r#type.as_str())
        .omitempty("source", m.source.as_str())
        .omitempty("target", m.target.as_str())
        .omitempty("options", m.options.clone())
        .build()
}

/// Namespace and image events: a name and labels.
fn named(name: String, labels: &std::collections::HashMap<String, String>) -> Json {
    Object::new()
        .omitempty("name", name)
        .omitempty_map("labels", labels)
        .build()
}

fn container_only(container_id: String) -> Json {
    Object::new()
        .omitempty("container_id", container_id)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::prost_types::Timestamp;
    use berth_client::typeurl::pack;

    fn envelope(topic: &str, ns: &str, event: Option<Any>) -> Envelope {
        Envelope {
            timestamp: Some(Timestamp {
                seconds: 1_795_327_390,
                nanos: 795_176_600,
            }),
            namespace: ns.into(),
            topic: topic.into(),
            event,
        }
    }

    #[test]
    fn lines_match_ctr() {
        // Captured from `ctr events` (containerd 1.6).
        let event = ev::NamespaceCreate {
            name: "evns".into(),
            labels: [("l".to_string(), "1".to_string())].into(),
        };
        let env = envelope("/namespaces/create", "default", Some(pack(&event)));
        assert_eq!(
            line(&env),
            "2026-11-22 06:03:10.7951766 +0000 UTC default /namespaces/create \
             {\"name\":\"evns\",\"labels\":{\"l\":\"1\"}}\n"
        );
        let env = envelope("/x", "ns", None);
        assert_eq!(line(&env), "2026-11-22 06:03:10.7951766 +0000 UTC ns /x \n");
    }

    #[test]
    fn container_create_omits_empty_fields() {
        let event = ev::ContainerCreate {
            id: "e1".into(),
            image: String::new(),
            runtime: Some(ev::container_create::Runtime {
                name: "io.containerd.runc.v2".into(),
                options: Some(Any {
                    type_url: "containerd.runc.v1.Options".into(),
                    value: vec![],
                }),
            }),
        };
        assert_eq!(
            event_json(&pack(&event)).to_compact(),
            r#"{"id":"e1","runtime":{"name":"io.containerd.runc.v2","options":{"type_url":"containerd.runc.v1.Options"}}}"#
        );
    }

    #[test]
    fn task_events_match_ctr() {
        let exited_at = Some(Timestamp {
            seconds: 1_795_327_476,
            nanos: 797_840_876,
        });
        let exit = ev::TaskExit {
            container_id: "r1".into(),
            id: "r1".into(),
            pid: 9710,
            exit_status: 3,
            exited_at,
        };
        assert_eq!(
            event_json(&pack(&exit)).to_compact(),
            r#"{"container_id":"r1","id":"r1","pid":9710,"exit_status":3,"exited_at":"2026-11-22T06:04:36.797840876Z"}"#
        );
        let delete = ev::TaskDelete {
            container_id: "r1".into(),
            pid: 9710,
            exit_status: 0,
            exited_at: None,
            id: String::new(),
        };
        assert_eq!(
            event_json(&pack(&delete)).to_compact(),
            r#"{"container_id":"r1","pid":9710,"exited_at":"0001-01-01T00:00:00Z"}"#
        );
        let create = ev::TaskCreate {
            container_id: "r1".into(),
            bundle: "/b".into(),
            io: Some(ev::TaskIo {
                stdin: "/i".into(),
                ..Default::default()
            }),
            pid: 9710,
            ..Default::default()
        };
        assert_eq!(
            event_json(&pack(&create)).to_compact(),
            r#"{"container_id":"r1","bundle":"/b","io":{"stdin":"/i"},"pid":9710}"#
        );
    }

    #[test]
    fn unknown_events_print_as_any() {
        let any = Any {
            type_url: "example.Unknown".into(),
            value: vec![1],
        };
        assert_eq!(
            event_json(&any).to_compact(),
            r#"{"type_url":"example.Unknown","value":"AQ=="}"#
        );
    }
}
