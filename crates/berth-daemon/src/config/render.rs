//! Printing a config in containerd's format: `berthd config default` and
//! `berthd config dump`. Only the keys berth acts on are printed, so the
//! output is valid input for berthd and, apart from berth's own `shims`
//! table (which containerd ignores), for containerd.

use super::plugins::{CNI, GC, NATIVE, OPT, OVERLAYFS, TASK};
use super::Config;
use berth_core::goduration as duration;
use std::path::Path;
use toml::{Table, Value};

/// `config` as a containerd `config.toml`.
pub fn to_toml(config: &Config) -> String {
    let mut top = Table::new();
    top.insert("version".into(), Value::Integer(config.version));
    top.insert("root".into(), path(&config.root));
    top.insert("state".into(), path(&config.state));
    top.insert(
        "temp".into(),
        config.temp.as_deref().map_or_else(|| "".into(), path),
    );
    top.insert("oom_score".into(), Value::Integer(config.oom_score.into()));
    top.insert(
        "imports".into(),
        list(config.imports.iter().map(|p| path(p))),
    );
    top.insert("disabled_plugins".into(), strings(&config.disabled_plugins));
    top.insert("required_plugins".into(), strings(&config.required_plugins));
    top.insert("grpc".into(), grpc(config).into());
    let ttrpc = config
        .ttrpc
        .address
        .as_deref()
        .map_or_else(|| "".into(), path);
    top.insert("ttrpc".into(), table([("address", ttrpc)]).into());
    top.insert(
        "debug".into(),
        table([
            ("level", config.debug.level.clone().into()),
            ("format", config.debug.format.clone().into()),
        ])
        .into(),
    );
    top.insert(
        "metrics".into(),
        table([
            ("address", config.metrics.address.clone().into()),
            ("grpc_histogram", config.metrics.grpc_histogram.into()),
        ])
        .into(),
    );
    top.insert("plugins".into(), plugins(config).into());
    let body = toml::to_string(&top).expect("a table of plain values serializes");
    format!(
        "# berthd configuration in containerd's format: the same file configures\n\
         # containerd. Only keys berth acts on are listed; see README.md.\n{body}"
    )
}

fn grpc(config: &Config) -> Table {
    let g = &config.grpc;
    table([
        ("address", path(&g.address)),
        ("uid", Value::Integer(g.uid.into())),
        ("gid", Value::Integer(g.gid.into())),
        ("max_recv_message_size", size(g.max_recv_message_size)),
        ("max_send_message_size", size(g.max_send_message_size)),
    ])
}

fn plugins(config: &Config) -> Table {
    let p = &config.plugins;
    let gc = table([
        ("pause_threshold", Value::Float(p.gc.pause_threshold)),
        (
            "deletion_threshold",
            Value::Integer(p.gc.deletion_threshold.into()),
        ),
        (
            "mutation_threshold",
            Value::Integer(p.gc.mutation_threshold.into()),
        ),
        (
            "schedule_delay",
            duration::format(p.gc.schedule_delay).into(),
        ),
        ("startup_delay", duration::format(p.gc.startup_delay).into()),
    ]);
    let shims: Table = p
        .task
        .shims
        .iter()
        .map(|(name, binary)| (name.clone(), path(binary)))
        .collect();
    let root_path = |r: &Option<std::path::PathBuf>| r.as_deref().map_or_else(|| "".into(), path);
    let mut out = Table::new();
    out.insert(GC.into(), gc.into());
    out.insert(OPT.into(), table([("path", path(&p.opt.path))]).into());
    out.insert(TASK.into(), table([("shims", shims.into())]).into());
    let net = &p.cni.default_network;
    let default_network = table([
        ("name", net.name.clone().into()),
        ("bridge", net.bridge.clone().into()),
        ("subnet", net.subnet.clone().into()),
        ("subnet6", net.subnet6.clone().unwrap_or_default().into()),
        ("ipam_data_dir", root_path(&net.ipam_data_dir)),
    ]);
    let bin_dirs: Vec<Value> = p.cni.bin_dirs.iter().map(|d| path(d)).collect();
    let cni = table([
        ("bin_dirs", Value::Array(bin_dirs)),
        ("conf_dir", path(&p.cni.conf_dir)),
        ("cache_dir", root_path(&p.cni.cache_dir)),
        (
            "timeout_secs",
            Value::Integer(i64::try_from(p.cni.timeout_secs).unwrap_or(i64::MAX)),
        ),
        ("default_network", default_network.into()),
    ]);
    out.insert(CNI.into(), cni.into());
    out.insert(super::cri::CRI.into(), cri(&p.cri).into());
    for (name, snapshotter) in [(OVERLAYFS, &p.overlayfs), (NATIVE, &p.native)] {
        let section = table([("root_path", root_path(&snapshotter.root_path))]);
        out.insert(name.into(), section.into());
    }
    out
}

/// `[plugins."io.containerd.grpc.v1.cri"]`, the keys berth acts on.
fn cri(c: &berth_cri::CriConfig) -> Table {
    let optional = |p: &Option<std::path::PathBuf>| p.as_deref().map_or_else(|| "".into(), path);
    let runtimes: Table = c
        .containerd
        .runtimes
        .iter()
        .map(|(name, h)| {
            let options: Table = h
                .options
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), toml::Value::try_from(v).ok()?)))
                .collect();
            let handler = table([
                ("runtime_type", h.runtime_type.clone().into()),
                ("pod_annotations", strings(&h.pod_annotations)),
                ("container_annotations", strings(&h.container_annotations)),
                ("cni_conf_dir", optional(&h.cni_conf_dir)),
                ("cni_max_conf_num", Value::Integer(h.cni_max_conf_num)),
                ("options", options.into()),
            ]);
            (name.clone(), handler.into())
        })
        .collect();
    let containerd = table([
        ("snapshotter", c.containerd.snapshotter.clone().into()),
        (
            "default_runtime_name",
            c.containerd.default_runtime_name.clone().into(),
        ),
        ("runtimes", runtimes.into()),
    ]);
    let cni = table([
        ("bin_dir", path(&c.cni.bin_dir)),
        ("conf_dir", path(&c.cni.conf_dir)),
        ("max_conf_num", Value::Integer(c.cni.max_conf_num)),
        ("conf_template", optional(&c.cni.conf_template)),
    ]);
    table([
        ("sandbox_image", c.sandbox_image.clone().into()),
        (
            "stream_server_address",
            c.stream_server_address.clone().into(),
        ),
        ("stream_server_port", c.stream_server_port.clone().into()),
        ("stream_idle_timeout", c.stream_idle_timeout.clone().into()),
        ("enable_tls_streaming", c.enable_tls_streaming.into()),
        (
            "x509_key_pair_streaming",
            table([
                ("tls_cert_file", c.tls_cert_file.clone().into()),
                ("tls_key_file", c.tls_key_file.clone().into()),
            ])
            .into(),
        ),
        (
            "max_container_log_line_size",
            Value::Integer(c.max_container_log_line_size),
        ),
        ("restrict_oom_score_adj", c.restrict_oom_score_adj.into()),
        ("disable_cgroup", c.disable_cgroup.into()),
        ("disable_apparmor", c.disable_apparmor.into()),
        (
            "enable_unprivileged_ports",
            c.enable_unprivileged_ports.into(),
        ),
        (
            "enable_unprivileged_icmp",
            c.enable_unprivileged_icmp.into(),
        ),
        ("containerd", containerd.into()),
        ("cni", cni.into()),
        (
            "registry",
            table([("config_path", optional(&c.registry_config_path))]).into(),
        ),
    ])
}

fn table<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn path(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

fn size(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn strings(items: &[String]) -> Value {
    list(items.iter().map(|s| Value::String(s.clone())))
}

fn list(items: impl Iterator<Item = Value>) -> Value {
    Value::Array(items.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reads_back_as_the_default() {
        let text = to_toml(&Config::default());
        assert!(
            text.contains("[plugins.\"io.containerd.gc.v1.scheduler\"]"),
            "{text}"
        );
        assert!(text.contains("startup_delay = \"100ms\""), "{text}");
        let loaded = Config::parse(&text, Path::new("/default.toml")).expect("reparse");
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn a_changed_config_round_trips() {
        let mut config = Config::default();
        config.plugins.gc.mutation_threshold = 7;
        config.plugins.gc.schedule_delay = std::time::Duration::from_secs(90);
        config
            .plugins
            .task
            .shims
            .insert("io.containerd.runc.v2".into(), "/usr/bin/shim".into());
        config.plugins.native.root_path = Some("/n".into());
        config.plugins.cri.restrict_oom_score_adj = true;
        config.plugins.cri.containerd.runtimes.insert(
            "crun".into(),
            berth_cri::config::RuntimeHandler {
                pod_annotations: vec!["io.x/*".into()],
                cni_conf_dir: Some("/etc/cni/crun".into()),
                options: [("BinaryName".to_string(), "/usr/bin/crun".into())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        );
        config.oom_score = -10;
        let text = to_toml(&config);
        let loaded = Config::parse(&text, Path::new("/dump.toml")).expect("reparse");
        assert_eq!(loaded.config, config);
    }
}
