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
    for (name, snapshotter) in [(OVERLAYFS, &p.overlayfs), (NATIVE, &p.native)] {
        let section = table([("root_path", root_path(&snapshotter.root_path))]);
        out.insert(name.into(), section.into());
    }
    out
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
        config.oom_score = -10;
        let text = to_toml(&config);
        let loaded = Config::parse(&text, Path::new("/dump.toml")).expect("reparse");
        assert_eq!(loaded.config, config);
    }
}
