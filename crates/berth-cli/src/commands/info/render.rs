//! `berth info` as a page of aligned sections, or as one JSON object.

use crate::output::{units, Json, Object, TabWriter};

use super::Info;

/// What an unknown value (a daemon that does not say) prints as.
const UNKNOWN: &str = "-";

/// The page: a section per subject, then the plugins that did not load.
pub fn table(info: &Info) -> String {
    let or = |v: &Option<String>, empty: &str| match v.as_deref() {
        None => UNKNOWN.to_string(),
        Some("") => empty.to_string(),
        Some(v) => v.to_string(),
    };
    let s = &info.snapshotter;
    let c = &info.counts;
    let p = &info.plugins;
    let metrics = match info.metrics.as_deref() {
        None => UNKNOWN.to_string(),
        Some("") => "off".to_string(),
        Some(address) => format!("http://{address}/v1/metrics"),
    };
    let rows: Vec<(&str, String)> = vec![
        ("Client:", String::new()),
        ("  Version:", info.client.version.clone()),
        ("  Revision:", info.client.revision.clone()),
        ("Server:", String::new()),
        ("  Version:", info.server.version.clone()),
        ("  Revision:", info.server.revision.clone()),
        ("  UUID:", info.uuid.clone()),
        ("  PID:", info.pid.to_string()),
        ("  Root:", or(&info.root, UNKNOWN)),
        ("  State:", or(&info.state, UNKNOWN)),
        ("  Config file:", or(&info.config, "none (defaults)")),
        ("  Metrics:", metrics),
        ("Snapshotter:", s.name.clone()),
        ("  Root:", or(&s.root, UNKNOWN)),
        ("  Snapshots:", s.snapshots.to_string()),
        ("  Disk usage:", units::bytes(s.bytes)),
        ("Runtime:", info.runtime.clone()),
        ("  Shim:", or(&info.shim, UNKNOWN)),
        ("Cgroups:", format!("{} (this host)", info.cgroup)),
        ("Namespaces:", c.namespaces.to_string()),
        ("Images:", c.images.to_string()),
        ("Containers:", c.containers.to_string()),
        (
            "Tasks:",
            format!("{} running, {} in all", c.running, c.tasks),
        ),
        (
            "Plugins:",
            format!("{} ok, {} skipped, {} failed", p.ok, p.skipped, p.failed),
        ),
    ];
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 2;
    let mut page = String::new();
    for (key, value) in rows {
        let line = format!("{key:<width$}{value}");
        page += line.trim_end();
        page += "\n";
    }
    if !p.problems.is_empty() {
        let mut problems = String::from("\nPLUGIN\tSTATUS\tERROR\n");
        for (plugin, status, why) in &p.problems {
            problems += &format!("{plugin}\t{status}\t{}\n", why.replace('\n', " "));
        }
        page += &TabWriter::WIDE.format(&problems);
    }
    page
}

/// The same as one object.
pub fn json(info: &Info) -> Json {
    let opt = |v: &Option<String>| v.as_ref().map_or(Json::Null, |v| Json::from(v.as_str()));
    let build = |b: &super::Build| {
        Object::new()
            .field("version", b.version.as_str())
            .field("revision", b.revision.as_str())
            .build()
    };
    let s = &info.snapshotter;
    let c = &info.counts;
    let p = &info.plugins;
    let problems = p
        .problems
        .iter()
        .map(|(plugin, status, why)| {
            Object::new()
                .field("plugin", plugin.as_str())
                .field("status", *status)
                .field("error", why.as_str())
                .build()
        })
        .collect();
    let count = |n: usize| Json::from(n as u64);
    Object::new()
        .field("client", build(&info.client))
        .field(
            "server",
            match build(&info.server) {
                Json::Object(mut fields) => {
                    fields.extend([
                        ("uuid".to_string(), Json::from(info.uuid.as_str())),
                        ("pid".to_string(), Json::from(info.pid)),
                        ("root".to_string(), opt(&info.root)),
                        ("state".to_string(), opt(&info.state)),
                        ("config_file".to_string(), opt(&info.config)),
                        ("metrics_address".to_string(), opt(&info.metrics)),
                    ]);
                    Json::Object(fields)
                }
                other => other,
            },
        )
        .field(
            "snapshotter",
            Object::new()
                .field("name", s.name.as_str())
                .field("root", opt(&s.root))
                .field("snapshots", count(s.snapshots))
                .field("disk_usage_bytes", s.bytes)
                .build(),
        )
        .field(
            "runtime",
            Object::new()
                .field("default", info.runtime.as_str())
                .field("shim", opt(&info.shim))
                .build(),
        )
        .field("cgroup_mode", info.cgroup.as_str())
        .field(
            "counts",
            Object::new()
                .field("namespaces", count(c.namespaces))
                .field("images", count(c.images))
                .field("containers", count(c.containers))
                .field("tasks", count(c.tasks))
                .field("running_tasks", count(c.running))
                .build(),
        )
        .field(
            "plugins",
            Object::new()
                .field("ok", count(p.ok))
                .field("skipped", count(p.skipped))
                .field("failed", count(p.failed))
                .field("problems", Json::Array(problems))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::info::{Build, Counts, Plugins, Snapshotter};

    fn info() -> Info {
        Info {
            client: Build {
                version: "0.1.0".into(),
                revision: "abc".into(),
            },
            server: Build {
                version: "0.1.0".into(),
                revision: "abc".into(),
            },
            uuid: "u".into(),
            pid: 7,
            root: Some("/var/lib/berth".into()),
            state: None,
            config: Some(String::new()),
            metrics: Some("127.0.0.1:1338".into()),
            snapshotter: Snapshotter {
                name: "overlayfs".into(),
                root: None,
                snapshots: 2,
                bytes: 2048,
            },
            runtime: "io.containerd.runc.v2".into(),
            shim: None,
            cgroup: "hybrid".into(),
            counts: Counts {
                namespaces: 1,
                images: 2,
                containers: 3,
                tasks: 2,
                running: 1,
            },
            plugins: Plugins {
                ok: 30,
                skipped: 0,
                failed: 1,
                problems: vec![(
                    "io.containerd.x.v1.y".into(),
                    "error",
                    "broken\nbadly".into(),
                )],
            },
        }
    }

    #[test]
    fn the_page_aligns_values_and_lists_problems() {
        let page = table(&info());
        for line in [
            "Client:\n",
            "  Config file:  none (defaults)\n",
            "  State:        -\n",
            "  Metrics:      http://127.0.0.1:1338/v1/metrics\n",
            "  Disk usage:   2.0 KiB\n",
            "Tasks:          1 running, 2 in all\n",
            "\nPLUGIN                  STATUS    ERROR\n",
            "io.containerd.x.v1.y    error     broken badly\n",
        ] {
            assert!(page.contains(line), "{line:?} missing from\n{page}");
        }
    }

    #[test]
    fn json_has_every_section() {
        let text = json(&info()).to_compact();
        for part in [
            r#""config_file":"""#,
            r#""state":null"#,
            r#""disk_usage_bytes":2048"#,
            r#""running_tasks":1"#,
            r#""problems":[{"plugin":"io.containerd.x.v1.y","status":"error","error":"broken\nbadly"}]"#,
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
}
