//! Initialising plugins and remembering how each one went.

use super::{graph, Registration, SKIP_PLUGIN};
use crate::config::Config;
use anyhow::{anyhow, bail, Context, Result};
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A plugin's instance; consumers downcast it to the type they expect.
pub type Instance = Arc<dyn Any + Send + Sync>;

/// What introspection reports about one plugin.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// containerd's type string.
    pub plugin_type: String,
    /// The plugin id.
    pub id: String,
    /// Types it requires.
    pub requires: Vec<String>,
    /// Values it exports (e.g. its root directory).
    pub exports: HashMap<String, String>,
    /// Why it did not load, if it did not.
    pub init_err: Option<String>,
}

/// The plugin list, filled once initialisation has finished; the
/// introspection service holds it before that happens.
pub type PluginsHandle = Arc<OnceLock<Vec<PluginInfo>>>;

/// What a plugin's init function can see.
pub struct InitContext<'a> {
    /// The plugin's own persistent directory, `<root>/<type>.<id>`.
    pub root: PathBuf,
    /// The plugin's own state directory, `<state>/<type>.<id>`.
    pub state: PathBuf,
    /// The daemon's configuration.
    pub config: &'a Config,
    /// Values to show in introspection.
    pub exports: HashMap<String, String>,
    /// The plugin list, readable once every plugin has initialised.
    pub plugins: PluginsHandle,
    loaded: &'a [(Registration, Instance)],
}

impl InitContext<'_> {
    /// The first loaded plugin of `plugin_type`, downcast to `T`.
    pub fn get<T: Any + Send + Sync>(&self, plugin_type: &str) -> Result<Arc<T>> {
        self.all::<T>(plugin_type)
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no plugin of type {plugin_type} is loaded"))
    }

    /// Every loaded plugin of `plugin_type` that is a `T`, with its id.
    pub fn all<T: Any + Send + Sync>(&self, plugin_type: &str) -> Vec<Arc<T>> {
        self.loaded
            .iter()
            .filter(|(reg, _)| reg.plugin_type == plugin_type)
            .filter_map(|(_, instance)| instance.clone().downcast::<T>().ok())
            .collect()
    }
}

/// The daemon's loaded plugins.
pub struct Plugins {
    loaded: Vec<(Registration, Instance)>,
    info: PluginsHandle,
}

impl Plugins {
    /// Initialises `registrations` in dependency order. A plugin that fails
    /// is recorded; those that require its type are skipped. Fails only when
    /// the graph has a cycle or a plugin named in `required_plugins` fails.
    pub fn init(registrations: &[Registration], config: &Config) -> Result<Plugins> {
        let handle: PluginsHandle = Arc::new(OnceLock::new());
        let mut loaded: Vec<(Registration, Instance)> = Vec::new();
        let mut infos = Vec::new();
        for reg in graph::order(registrations)? {
            let mut info = PluginInfo {
                plugin_type: reg.plugin_type.to_string(),
                id: reg.id.to_string(),
                requires: reg.requires.iter().map(|r| r.to_string()).collect(),
                exports: HashMap::new(),
                init_err: None,
            };
            if is_disabled(&reg, config) {
                tracing::info!(plugin = %reg.uri(), "plugin disabled by config");
                continue;
            }
            match init_one(&reg, config, &loaded, &handle) {
                Ok((instance, exports)) => {
                    tracing::debug!(plugin = %reg.uri(), "loaded plugin");
                    info.exports = exports;
                    loaded.push((reg, instance));
                }
                Err(err) => {
                    let message = format!("{err:#}");
                    if config.required_plugins.contains(&reg.uri()) {
                        bail!("required plugin {} failed: {message}", reg.uri());
                    }
                    if message.starts_with(SKIP_PLUGIN) {
                        tracing::info!(plugin = %reg.uri(), error = %message, "skip loading plugin");
                    } else {
                        tracing::warn!(plugin = %reg.uri(), error = %message, "failed to load plugin");
                    }
                    info.init_err = Some(message);
                }
            }
            infos.push(info);
        }
        for required in &config.required_plugins {
            if !loaded.iter().any(|(reg, _)| &reg.uri() == required) {
                bail!("required plugin {required} is not loaded");
            }
        }
        // Only the first set can fail, and this is the first.
        let _ = handle.set(infos);
        Ok(Plugins {
            loaded,
            info: handle,
        })
    }

    /// Every loaded plugin of `plugin_type` that is a `T`.
    pub fn all<T: Any + Send + Sync>(&self, plugin_type: &str) -> Vec<Arc<T>> {
        self.loaded
            .iter()
            .filter(|(reg, _)| reg.plugin_type == plugin_type)
            .filter_map(|(_, instance)| instance.clone().downcast::<T>().ok())
            .collect()
    }

    /// What introspection reports.
    pub fn info(&self) -> &[PluginInfo] {
        self.info.get().map(Vec::as_slice).unwrap_or_default()
    }
}

fn is_disabled(reg: &Registration, config: &Config) -> bool {
    config
        .disabled_plugins
        .iter()
        .any(|d| *d == reg.uri() || d == reg.id)
}

fn init_one(
    reg: &Registration,
    config: &Config,
    loaded: &[(Registration, Instance)],
    handle: &PluginsHandle,
) -> Result<(Instance, HashMap<String, String>)> {
    for &required in reg.requires {
        if required != "*" && !loaded.iter().any(|(r, _)| r.plugin_type == required) {
            bail!("{SKIP_PLUGIN}: no plugin of required type {required} is loaded");
        }
    }
    let mut ctx = InitContext {
        root: config.root.join(reg.uri()),
        state: config.state.join(reg.uri()),
        config,
        exports: HashMap::new(),
        plugins: handle.clone(),
        loaded,
    };
    let instance = (reg.init)(&mut ctx).with_context(|| format!("init {}", reg.uri()))?;
    Ok((instance, ctx.exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &mut InitContext<'_>) -> Result<Instance> {
        Ok(Arc::new(7u32))
    }
    fn fail(_: &mut InitContext<'_>) -> Result<Instance> {
        bail!("disk on fire")
    }
    fn needs_u32(ctx: &mut InitContext<'_>) -> Result<Instance> {
        let value = ctx.get::<u32>("base")?;
        Ok(Arc::new(format!("got {value}")))
    }

    fn reg(
        t: &'static str,
        id: &'static str,
        requires: &'static [&'static str],
        init: crate::plugin::InitFn,
    ) -> Registration {
        Registration {
            plugin_type: t,
            id,
            requires,
            init,
        }
    }

    fn config() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            ..Config::default()
        };
        (dir, config)
    }

    #[test]
    fn failed_plugin_is_recorded_and_dependents_skipped() {
        let (_dir, config) = config();
        let regs = [
            reg("broken", "x", &[], fail),
            reg("user", "y", &["broken"], ok),
            reg("base", "z", &[], ok),
            reg("user", "w", &["base"], needs_u32),
        ];
        let plugins = Plugins::init(&regs, &config).expect("init");
        let info = plugins.info();
        let err_of = |id: &str| {
            info.iter()
                .find(|p| p.id == id)
                .and_then(|p| p.init_err.clone())
        };
        assert!(err_of("x").expect("x failed").contains("disk on fire"));
        assert!(err_of("y").expect("y skipped").starts_with(SKIP_PLUGIN));
        assert_eq!(err_of("z"), None);
        assert_eq!(err_of("w"), None);
        assert_eq!(*plugins.all::<String>("user")[0], "got 7");
    }

    #[test]
    fn a_required_plugin_failing_stops_init() {
        let (_dir, mut config) = config();
        config.required_plugins = vec!["broken.x".into()];
        let regs = [reg("broken", "x", &[], fail)];
        let err = Plugins::init(&regs, &config).err().expect("must fail");
        assert!(err.to_string().contains("broken.x"), "{err}");
    }

    #[test]
    fn disabled_plugins_are_not_loaded() {
        let (_dir, mut config) = config();
        config.disabled_plugins = vec!["z".into()];
        let regs = [reg("base", "z", &[], ok)];
        let plugins = Plugins::init(&regs, &config).expect("init");
        assert!(plugins.all::<u32>("base").is_empty());
    }
}
