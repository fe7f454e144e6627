//! The engine: libcni's list operations (ADD, DEL, CHECK, VERSION, STATUS,
//! GC) over the exec protocol, and a container's whole network life —
//! namespace, loopback, the chosen network, rollback, teardown.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cache::{CacheEntry, ResultCache};
use crate::config::{self, DefaultNetwork, NetworkConfigList, PluginConf};
use crate::exec::{exec_plugin, find_plugin, Invocation};
use crate::result::CniResult;
use crate::version;

/// `CNI_ARGS` keys berth adds so that the cache says whose attachment it is.
pub const ARG_NAMESPACE: &str = "BERTH_NAMESPACE";
/// See [`ARG_NAMESPACE`].
pub const ARG_CONTAINER: &str = "BERTH_CONTAINER";

/// Where the engine finds plugins and configuration and keeps its state.
#[derive(Debug, Clone)]
pub struct CniOptions {
    /// Plugin directories, searched in order (`CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// The configuration directory.
    pub conf_dir: PathBuf,
    /// The result cache (libcni's `CacheDir`; entries in `results/`).
    pub cache_dir: PathBuf,
    /// Where network namespaces are bind-mounted (`<state>/netns`).
    pub netns_dir: PathBuf,
    /// The longest a single plugin call may take.
    pub timeout: Duration,
    /// The network used when the configuration directory holds none.
    pub default_network: DefaultNetwork,
}

impl Default for CniOptions {
    fn default() -> Self {
        CniOptions {
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            conf_dir: "/etc/cni/net.d".into(),
            cache_dir: "/var/lib/cni".into(),
            netns_dir: "/run/berth/netns".into(),
            timeout: Duration::from_secs(30),
            default_network: DefaultNetwork::default(),
        }
    }
}

/// libcni's `RuntimeConf`: the container side of a call.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// `CNI_ARGS`.
    pub args: Vec<(String, String)>,
    /// Capability arguments, given as `runtimeConfig` to plugins that
    /// declare the capability (`portMappings`, `bandwidth`, `ipRanges`,
    /// `dns`, `mac`, …).
    pub capability_args: Map<String, Value>,
}

pub use berth_core::network::PortMapping;

/// What a container asks of the network.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// The container's namespace (containerd's, not the kernel's).
    pub namespace: String,
    /// The container's id.
    pub id: String,
    /// The network by name; `None` for the first in the config directory
    /// (or the default network).
    pub network: Option<String>,
    /// With no network named, how many of the config directory's valid
    /// networks are attached, in name order: the first as `eth0`, the next
    /// as `eth1`, … (0: all of them; containerd's CRI `max_conf_num`).
    pub max_networks: usize,
    /// Ports to publish.
    pub ports: Vec<PortMapping>,
    /// Further capability arguments (`bandwidth`, `ipRanges`, `dns`,
    /// `mac`).
    pub capability_args: Map<String, Value>,
}

/// A container attached to its networks.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The network namespace's path.
    pub netns: PathBuf,
    /// The networks in interface order, never empty: the first is `eth0`,
    /// the one whose addresses are the container's.
    pub networks: Vec<Attached>,
}

/// One network of an [`Attachment`].
#[derive(Debug, Clone)]
pub struct Attached {
    /// The interface in the container (`eth0`, `eth1`, …).
    pub if_name: String,
    /// The network's name.
    pub network: String,
    /// The result of the network's chain.
    pub result: CniResult,
}

impl Attachment {
    /// The network attached as `eth0`.
    pub fn primary(&self) -> &Attached {
        &self.networks[0]
    }

    /// The container's addresses (those of `eth0`), IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.primary().result.container_ips()
    }

    /// The networks' results merged in go-cni's `Result` shape (what
    /// containerd's CRI shows as `cniResult`): `Interfaces` by name with
    /// their `IPConfigs`, `Mac` and `Sandbox`, then every network's `DNS`
    /// and all `Routes`.
    pub fn summary(&self) -> Value {
        let mut interfaces = Map::new();
        let mut dns = Vec::new();
        let mut routes = Vec::new();
        for attached in &self.networks {
            let result = &attached.result;
            for iface in result.interfaces() {
                let entry = serde_json::json!({
                    "IPConfigs": [], "Mac": iface.mac, "Sandbox": iface.sandbox,
                });
                interfaces.insert(iface.name.clone(), entry);
            }
            for ip in result.ips() {
                let Some(iface) = ip.interface.and_then(|i| result.interfaces().get(i)) else {
                    continue;
                };
                let address = crate::result::parse_cidr(&ip.address).map(|(a, _)| a.to_string());
                if let Some(Value::Array(configs)) = interfaces
                    .get_mut(&iface.name)
                    .and_then(|e| e.get_mut("IPConfigs"))
                {
                    configs.push(serde_json::json!({ "IP": address, "Gateway": ip.gateway }));
                }
            }
            dns.push(serde_json::to_value(result.dns()).unwrap_or_default());
            routes.extend(result.routes().iter().map(|r| serde_json::json!(r)));
        }
        serde_json::json!({ "Interfaces": interfaces, "DNS": dns, "Routes": routes })
    }
}

/// The CNI engine.
#[derive(Debug)]
pub struct Cni {
    options: CniOptions,
    cache: ResultCache,
    /// Held across a port check and the ADD that takes the ports, so two
    /// containers cannot both pass the check for one port.
    attach_lock: tokio::sync::Mutex<()>,
}

/// Why an ADD failed, and what its rollback needs: the result of the last
/// plugin that succeeded and how many plugins were run (the failed one
/// included, unless it could not be found).
struct AddFailure {
    error: Error,
    prev: Option<Value>,
    invoked: usize,
}

/// The interface berth gives each container.
pub const IFNAME: &str = "eth0";

/// The interface of a container's `index`th network (`eth0`, `eth1`, …,
/// as go-cni names them).
pub fn if_name(index: usize) -> String {
    format!("eth{index}")
}

/// The position of interface `name` among a container's networks.
fn if_index(name: &str) -> Option<usize> {
    name.strip_prefix("eth")?.parse().ok()
}

impl Cni {
    /// An engine with these options.
    pub fn new(options: CniOptions) -> Self {
        Cni {
            cache: ResultCache::new(&options.cache_dir),
            options,
            attach_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The options.
    pub fn options(&self) -> &CniOptions {
        &self.options
    }

    /// The result cache.
    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// The CNI container id of a berth container: a digest of its namespace
    /// and id (ids repeat across namespaces; CNI wants one name).
    pub fn container_key(namespace: &str, id: &str) -> String {
        let digest = Sha256::digest(format!("{namespace}/{id}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Where a container's network namespace is mounted.
    pub fn netns_path(&self, namespace: &str, id: &str) -> PathBuf {
        self.options.netns_dir.join(namespace).join(id)
    }

    /// The network `name` from the configuration directory, or the first
    /// valid one; with none configured, the default network.
    pub fn network(&self, name: Option<&str>) -> Result<NetworkConfigList> {
        if let Some(list) = config::load_dir(&self.options.conf_dir, name)? {
            return Ok(list);
        }
        let default = self.options.default_network.config()?;
        match name {
            Some(name) if name != default.name => Err(Error::not_found(format!(
                "CNI network {name:?} in {}",
                self.options.conf_dir.display()
            ))),
            _ => Ok(default),
        }
    }

    /// The networks to attach: `name` alone, or else the first `max` valid
    /// ones of the configuration directory (0: all); with none configured,
    /// the default network.
    pub fn networks(&self, name: Option<&str>, max: usize) -> Result<Vec<NetworkConfigList>> {
        if name.is_some() {
            return Ok(vec![self.network(name)?]);
        }
        let lists = config::load_dir_all(&self.options.conf_dir, max)?;
        if lists.is_empty() {
            return Ok(vec![self.options.default_network.config()?]);
        }
        Ok(lists)
    }

    /// One plugin's stdin: its configuration with the list's name and
    /// version, `prevResult`, and the capability arguments it declares.
    fn plugin_stdin(
        list: &NetworkConfigList,
        plugin: &PluginConf,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>> {
        let mut conf = plugin.raw.clone();
        conf.insert("name".into(), Value::String(list.name.clone()));
        conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let runtime: Map<String, Value> = plugin
            .capabilities
            .iter()
            .filter(|(_, on)| **on)
            .filter_map(|(cap, _)| {
                rt.capability_args
                    .get(cap)
                    .map(|v| (cap.clone(), v.clone()))
            })
            .collect();
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        serde_json::to_vec(&conf).map_err(|e| Error::internal(e.to_string()))
    }

    /// Runs one plugin of `list`; errors name the network, file and plugin.
    async fn run_plugin(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConf,
        command: &str,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>> {
        let context = |e: Error| {
            e.context(format!(
                "{}: plugin type={:?} failed ({})",
                list.describe(),
                plugin.plugin_type,
                command.to_lowercase()
            ))
        };
        let path = find_plugin(&plugin.plugin_type, &self.options.bin_dirs).map_err(context)?;
        let stdin = Self::plugin_stdin(list, plugin, prev, rt).map_err(context)?;
        let invocation = Invocation {
            command: command.into(),
            container_id: rt.container_id.clone(),
            netns: rt.netns.display().to_string(),
            if_name: rt.if_name.clone(),
            args: rt.args.clone(),
            path: self.options.bin_dirs.clone(),
        };
        exec_plugin(&path, &invocation, &stdin, self.options.timeout)
            .await
            .map_err(context)
    }

    fn check_runtime(list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        if !config::valid_name(&rt.container_id) {
            return Err(Error::invalid_argument(format!(
                "invalid CNI container id {:?}",
                rt.container_id
            )));
        }
        let bad_if = rt.if_name.is_empty()
            || rt.if_name.len() > 15
            || rt.if_name == "."
            || rt.if_name == ".."
            || rt.if_name.contains(['/', ':'])
            || rt.if_name.contains(char::is_whitespace);
        if bad_if {
            return Err(Error::invalid_argument(format!(
                "{}: invalid interface name {:?}",
                list.describe(),
                rt.if_name
            )));
        }
        Ok(())
    }

    /// ADD: runs the chain in order, each plugin given the result before
    /// it, and caches the final result. On failure, what a rollback needs.
    async fn add_chain(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> std::result::Result<CniResult, AddFailure> {
        let fail = |error, prev: Option<&CniResult>, invoked| AddFailure {
            error,
            prev: prev.map(|r| r.raw().clone()),
            invoked,
        };
        Self::check_runtime(list, rt).map_err(|e| fail(e, None, 0))?;
        let mut prev: Option<CniResult> = None;
        for (i, plugin) in list.plugins.iter().enumerate() {
            // A plugin that cannot be found never ran: nothing to undo in it.
            if let Err(e) = find_plugin(&plugin.plugin_type, &self.options.bin_dirs) {
                let e = e.context(format!(
                    "{}: plugin type={:?} failed (add)",
                    list.describe(),
                    plugin.plugin_type
                ));
                return Err(fail(e, prev.as_ref(), i));
            }
            let raw = prev.as_ref().map(|r| r.raw().clone());
            let out = self
                .run_plugin(list, plugin, "ADD", raw.as_ref(), rt)
                .await
                .map_err(|e| fail(e, prev.as_ref(), i + 1))?;
            let result = CniResult::parse(&out).map_err(|e| {
                let e = e.context(format!(
                    "{}: plugin type={:?} (add)",
                    list.describe(),
                    plugin.plugin_type
                ));
                fail(e, prev.as_ref(), i + 1)
            })?;
            prev = Some(result);
        }
        let result = prev.expect("a list has at least one plugin");
        let entry = CacheEntry::new(
            &list.name,
            &rt.container_id,
            &rt.if_name,
            &list.bytes,
            rt.args.clone(),
            rt.capability_args.clone(),
            result.raw().clone(),
        );
        let invoked = list.plugins.len();
        self.cache
            .put(&entry)
            .map_err(|e| fail(e, Some(&result), invoked))?;
        Ok(result)
    }

    /// libcni's `AddNetworkList`.
    pub async fn add_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<CniResult> {
        self.add_chain(list, rt).await.map_err(|f| f.error)
    }

    /// libcni's `DelNetworkList`: the chain in reverse, with the cached
    /// result as `prevResult` (spec 0.4.0 on). Unlike libcni every plugin is
    /// called even after one fails (the others may still hold something);
    /// the cache entry goes only when all succeeded.
    pub async fn del_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        let cached = if version::at_least(&list.cni_version, "0.4.0")? {
            self.cache
                .get(&list.name, &rt.container_id, &rt.if_name)?
                .map(|e| e.result)
        } else {
            None
        };
        self.del_chain(list, list.plugins.len(), rt, cached.as_ref())
            .await?;
        self.cache.remove(&list.name, &rt.container_id, &rt.if_name)
    }

    /// DEL of the first `upto` plugins of the chain, last first.
    async fn del_chain(
        &self,
        list: &NetworkConfigList,
        upto: usize,
        rt: &RuntimeConf,
        prev: Option<&Value>,
    ) -> Result<()> {
        let mut errors = Vec::new();
        for plugin in list.plugins[..upto.min(list.plugins.len())].iter().rev() {
            if let Err(e) = self.run_plugin(list, plugin, "DEL", prev, rt).await {
                errors.push(e);
            }
        }
        join_errors(errors)
    }

    /// libcni's `CheckNetworkList` (spec 0.4.0 on).
    pub async fn check_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        if !version::at_least(&list.cni_version, "0.4.0")? {
            return Err(Error::failed_precondition(format!(
                "{}: configuration version {:?} does not support the CHECK command",
                list.describe(),
                list.cni_version
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self
            .cache
            .get(&list.name, &rt.container_id, &rt.if_name)?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "cached result of {} for container {}",
                    list.describe(),
                    rt.container_id
                ))
            })?;
        for plugin in &list.plugins {
            self.run_plugin(list, plugin, "CHECK", Some(&cached.result), rt)
                .await?;
        }
        Ok(())
    }

    /// VERSION: the spec versions a plugin supports.
    pub async fn version(&self, plugin_type: &str) -> Result<Vec<String>> {
        let path = find_plugin(plugin_type, &self.options.bin_dirs)?;
        let invocation = Invocation {
            command: "VERSION".into(),
            path: self.options.bin_dirs.clone(),
            ..Invocation::default()
        };
        let out = exec_plugin(
            &path,
            &invocation,
            br#"{"cniVersion":"1.0.0"}"#,
            self.options.timeout,
        )
        .await
        .map_err(|e| e.context(format!("plugin type={plugin_type:?} (version)")))?;
        #[derive(Deserialize)]
        struct Info {
            #[serde(rename = "supportedVersions", default)]
            supported: Vec<String>,
        }
        let info: Info = serde_json::from_slice(&out)
            .map_err(|e| Error::internal(format!("plugin type={plugin_type:?} (version): {e}")))?;
        Ok(info.supported)
    }

    /// STATUS (spec 1.1): whether every plugin of the list is ready. Lists
    /// of older versions have no STATUS and are taken as ready.
    pub async fn status_list(&self, list: &NetworkConfigList) -> Result<()> {
        if !version::at_least(&list.cni_version, "1.1.0")? {
            return Ok(());
        }
        for plugin in &list.plugins {
            self.run_plugin(list, plugin, "STATUS", None, &RuntimeConf::default())
                .await?;
        }
        Ok(())
    }

    /// GC (spec 1.1): tells every plugin which attachments are still valid,
    /// so it can free the rest. A no-op for older lists or `disableGC`.
    pub async fn gc_list(
        &self,
        list: &NetworkConfigList,
        valid: &[(String, String)],
    ) -> Result<()> {
        if !version::at_least(&list.cni_version, "1.1.0")? || list.disable_gc {
            return Ok(());
        }
        let attachments: Vec<Value> = valid
            .iter()
            .map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname}))
            .collect();
        let mut errors = Vec::new();
        for plugin in &list.plugins {
            let mut plugin = plugin.clone();
            plugin.raw.insert(
                "cni.dev/valid-attachments".into(),
                Value::Array(attachments.clone()),
            );
            if let Err(e) = self
                .run_plugin(list, &plugin, "GC", None, &RuntimeConf::default())
                .await
            {
                errors.push(e);
            }
        }
        join_errors(errors)
    }

    /// Attaches a container: creates its network namespace, brings up
    /// loopback and attaches the chosen network as `eth0`, publishing the
    /// requested ports. If any step fails, what was done is undone and the
    /// error says both what failed and any cleanup failure.
    pub async fn attach(&self, request: &AttachRequest) -> Result<Attachment> {
        self.attach_with_args(request, &[]).await
    }

    /// [`Cni::attach`] with further `CNI_ARGS` after berth's own (the
    /// CRI plugin's `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, …). They are
    /// cached with the result, so DEL passes them again.
    pub async fn attach_with_args(
        &self,
        request: &AttachRequest,
        extra_args: &[(String, String)],
    ) -> Result<Attachment> {
        self.attach_inner(request, extra_args, true).await
    }

    /// Creates the network namespace [`Cni::attach_prepared`] attaches
    /// in, so that a container can be created in it while the plugins
    /// run; its path.
    pub fn create_netns(&self, namespace: &str, id: &str) -> Result<PathBuf> {
        let path = self.netns_path(namespace, id);
        netns::create(&path)?;
        Ok(path)
    }

    /// [`Cni::attach_with_args`] in the namespace [`Cni::create_netns`]
    /// made. On failure the namespace goes too, as with `attach`.
    pub async fn attach_prepared(
        &self,
        request: &AttachRequest,
        extra_args: &[(String, String)],
    ) -> Result<Attachment> {
        match self.attach_inner(request, extra_args, false).await {
            Ok(attachment) => Ok(attachment),
            Err(err) => {
                let path = self.netns_path(&request.namespace, &request.id);
                match netns::remove(&path) {
                    Ok(()) => Err(err),
                    Err(cleanup) => Err(with_cleanup(err, vec![cleanup])),
                }
            }
        }
    }

    async fn attach_inner(
        &self,
        request: &AttachRequest,
        extra_args: &[(String, String)],
        create_netns: bool,
    ) -> Result<Attachment> {
        let lists = self.networks(request.network.as_deref(), request.max_networks)?;
        let key = Self::container_key(&request.namespace, &request.id);
        let netns = self.netns_path(&request.namespace, &request.id);
        let mut caps = request.capability_args.clone();
        if !request.ports.is_empty() {
            caps.insert(
                "portMappings".into(),
                serde_json::to_value(&request.ports).map_err(|e| Error::internal(e.to_string()))?,
            );
        }
        let mut args = vec![
            ("IgnoreUnknown".to_string(), "1".to_string()),
            (ARG_NAMESPACE.to_string(), request.namespace.clone()),
            (ARG_CONTAINER.to_string(), request.id.clone()),
        ];
        args.extend(extra_args.iter().cloned());
        let rt = RuntimeConf {
            container_id: key.clone(),
            netns: netns.clone(),
            if_name: IFNAME.into(),
            args: args.clone(),
            capability_args: caps,
        };
        let nets: Vec<(NetworkConfigList, RuntimeConf)> = lists
            .into_iter()
            .enumerate()
            .map(|(i, list)| {
                let rt = RuntimeConf {
                    if_name: if_name(i),
                    ..rt.clone()
                };
                (list, rt)
            })
            .collect();
        let lo_rt = RuntimeConf {
            if_name: "lo".into(),
            capability_args: Map::new(),
            ..rt
        };
        let loopback = config::loopback();

        // Only attaches that publish ports can conflict with each other.
        let _guard = if request.ports.is_empty() {
            None
        } else {
            Some(self.attach_lock.lock().await)
        };
        self.check_ports(&key, &request.ports)?;
        if create_netns {
            netns::create(&netns)?;
        }
        // Loopback and the networks touch different links: loopback runs
        // beside them; the networks go in interface order.
        let (lo, (done, failed)) =
            tokio::join!(self.add_chain(&loopback, &lo_rt), self.add_networks(&nets));
        if lo.is_ok() && failed.is_none() {
            let networks = nets
                .iter()
                .zip(done)
                .map(|((list, rt), result)| Attached {
                    if_name: rt.if_name.clone(),
                    network: list.name.clone(),
                    result,
                })
                .collect();
            return Ok(Attachment { netns, networks });
        }
        // Undo what was made: the failed network, those before it (last
        // first), then loopback.
        let mut errors = Vec::new();
        let mut undo = Vec::new();
        if let Some(f) = failed {
            let (list, rt) = &nets[done.len()];
            errors.push(f.error);
            undo.push((list, rt, f.prev, f.invoked));
        }
        for ((list, rt), result) in nets.iter().zip(&done).rev() {
            undo.push((list, rt, Some(result.raw().clone()), list.plugins.len()));
        }
        match lo {
            Ok(result) => undo.push((
                &loopback,
                &lo_rt,
                Some(result.raw().clone()),
                loopback.plugins.len(),
            )),
            Err(f) => {
                errors.push(f.error);
                undo.push((&loopback, &lo_rt, f.prev, f.invoked));
            }
        }
        let err = join_errors(errors).expect_err("something failed");
        let mut cleanup = Vec::new();
        for (list, rt, prev, invoked) in undo {
            if let Err(e) = self.del_chain(list, invoked, rt, prev.as_ref()).await {
                cleanup.push(e);
            }
            if let Err(e) = self.cache.remove(&list.name, &rt.container_id, &rt.if_name) {
                cleanup.push(e);
            }
        }
        if let Err(e) = netns::remove(&netns) {
            cleanup.push(e);
        }
        Err(with_cleanup(err, cleanup))
    }

    /// ADD of each network in order, stopping at the first failure: the
    /// results of those made, and the failure.
    async fn add_networks(
        &self,
        nets: &[(NetworkConfigList, RuntimeConf)],
    ) -> (Vec<CniResult>, Option<AddFailure>) {
        let mut done = Vec::new();
        for (list, rt) in nets {
            match self.add_chain(list, rt).await {
                Ok(result) => done.push(result),
                Err(failure) => return (done, Some(failure)),
            }
        }
        (done, None)
    }

    /// A port another container has published already is an error.
    fn check_ports(&self, key: &str, ports: &[PortMapping]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        for entry in self.cache.list()? {
            if entry.container_id == key {
                continue;
            }
            let Some(taken) = entry.capability_args.get("portMappings") else {
                continue;
            };
            let taken: Vec<PortMapping> = serde_json::from_value(taken.clone()).unwrap_or_default();
            for port in ports {
                if let Some(other) = taken.iter().find(|t| t.conflicts(port)) {
                    let owner = match (entry.arg(ARG_NAMESPACE), entry.arg(ARG_CONTAINER)) {
                        (Some(ns), Some(id)) => format!("container {id:?} in namespace {ns:?}"),
                        _ => format!("CNI container {}", entry.container_id),
                    };
                    return Err(Error::already_exists(format!(
                        "host port {}/{} is already published by {owner} ({}:{} -> {})",
                        port.host_port,
                        port.protocol,
                        owner_ip(&other.host_ip),
                        other.host_port,
                        other.container_port
                    )));
                }
            }
        }
        Ok(())
    }

    /// The attachment of a container, from the cache.
    pub fn attachment(&self, namespace: &str, id: &str) -> Result<Option<Attachment>> {
        let key = Self::container_key(namespace, id);
        let mut networks = Vec::new();
        for entry in self.cache.list()? {
            if entry.container_id != key {
                continue;
            }
            if let Some(index) = if_index(&entry.if_name) {
                let attached = Attached {
                    if_name: entry.if_name,
                    network: entry.network_name,
                    result: CniResult::from_value(entry.result)?,
                };
                networks.push((index, attached));
            }
        }
        networks.sort_by_key(|(index, _)| *index);
        // An attachment whose eth0 is gone is no attachment.
        if networks.first().is_none_or(|(index, _)| *index != 0) {
            return Ok(None);
        }
        Ok(Some(Attachment {
            netns: self.netns_path(namespace, id),
            networks: networks.into_iter().map(|(_, a)| a).collect(),
        }))
    }

    /// Detaches a container: DEL of every network the cache says it is
    /// attached to (with the configuration cached at ADD, so a changed
    /// config directory does not matter), then the namespace goes.
    /// Idempotent: a container with nothing attached is fine.
    pub async fn detach(&self, namespace: &str, id: &str) -> Result<()> {
        let key = Self::container_key(namespace, id);
        let netns = self.netns_path(namespace, id);
        let entries: Vec<CacheEntry> = self
            .cache
            .list()?
            .into_iter()
            .filter(|e| e.container_id == key)
            .collect();
        // Loopback and the network are undone at once, as attach made them.
        let (lo, net): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.if_name == "lo");
        let (lo_errors, net_errors) =
            tokio::join!(self.del_entries(&netns, lo), self.del_entries(&netns, net));
        let mut errors = net_errors;
        errors.extend(lo_errors);
        if let Err(e) = netns::remove(&netns) {
            errors.push(e);
        }
        join_errors(errors)
    }

    /// DEL of cached attachments, one after the other, with the config
    /// cached at ADD; the errors.
    async fn del_entries(&self, netns: &std::path::Path, entries: Vec<CacheEntry>) -> Vec<Error> {
        let mut errors = Vec::new();
        for entry in entries {
            let list = match NetworkConfigList::from_bytes(&entry.config) {
                Ok(list) => list,
                Err(e) => {
                    errors.push(
                        e.context(format!("cached config of network {:?}", entry.network_name)),
                    );
                    continue;
                }
            };
            let rt = RuntimeConf {
                container_id: entry.container_id.clone(),
                netns: netns.to_path_buf(),
                if_name: entry.if_name.clone(),
                args: entry.cni_args.clone(),
                capability_args: entry.capability_args.clone(),
            };
            if let Err(e) = self.del_list(&list, &rt).await {
                errors.push(e);
            }
        }
        errors
    }

    /// The berth containers (namespace, id) the cache holds attachments
    /// for, each once.
    pub fn attached(&self) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = self
            .cache
            .list()?
            .iter()
            .filter_map(|e| {
                Some((
                    e.arg(ARG_NAMESPACE)?.to_string(),
                    e.arg(ARG_CONTAINER)?.to_string(),
                ))
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Namespaces mounted under the netns directory: (namespace, id).
    pub fn mounted_netns(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Ok(namespaces) = std::fs::read_dir(&self.options.netns_dir) else {
            return out;
        };
        for ns in namespaces.filter_map(|e| e.ok()) {
            let Ok(ids) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for id in ids.filter_map(|e| e.ok()) {
                out.push((
                    ns.file_name().to_string_lossy().into_owned(),
                    id.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
        out
    }
}

fn owner_ip(ip: &str) -> &str {
    if ip.is_empty() {
        "0.0.0.0"
    } else {
        ip
    }
}

use crate::netns;

fn join_errors(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let kind = errors[0].kind();
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Err(Error::new(kind, text.join("; ")))
        }
    }
}

fn with_cleanup(err: Error, cleanup: Vec<Error>) -> Error {
    if cleanup.is_empty() {
        return err;
    }
    let text: Vec<String> = cleanup.iter().map(|e| e.to_string()).collect();
    let kind = err.kind();
    Error::new(
        kind,
        format!(
            "{}; cleanup also failed: {}",
            err.message(),
            text.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_args_reach_only_plugins_that_declare_them() {
        let list = NetworkConfigList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"bridge"},
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
        )
        .expect("list");
        let mut rt = RuntimeConf::default();
        rt.capability_args.insert(
            "portMappings".into(),
            serde_json::json!([{"hostPort": 8080}]),
        );
        rt.capability_args
            .insert("bandwidth".into(), serde_json::json!({"ingressRate": 1}));
        let prev = serde_json::json!({"cniVersion":"1.0.0"});
        let bridge: Value = serde_json::from_slice(
            &Cni::plugin_stdin(&list, &list.plugins[0], None, &rt).expect("stdin"),
        )
        .expect("json");
        assert_eq!(bridge["name"], "n");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        let portmap: Value = serde_json::from_slice(
            &Cni::plugin_stdin(&list, &list.plugins[1], Some(&prev), &rt).expect("stdin"),
        )
        .expect("json");
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );
        assert!(portmap["runtimeConfig"].get("bandwidth").is_none());
        assert_eq!(portmap["prevResult"], prev);
    }

    #[test]
    fn ports_conflict_on_the_same_port_protocol_and_address() {
        let p = |ip: &str, port, proto: &str| PortMapping {
            host_port: port,
            container_port: 80,
            protocol: proto.into(),
            host_ip: ip.into(),
        };
        assert!(p("", 80, "tcp").conflicts(&p("127.0.0.1", 80, "tcp")));
        assert!(p("127.0.0.1", 80, "tcp").conflicts(&p("127.0.0.1", 80, "tcp")));
        assert!(!p("127.0.0.1", 80, "tcp").conflicts(&p("127.0.0.2", 80, "tcp")));
        assert!(!p("", 80, "tcp").conflicts(&p("", 80, "udp")));
        assert!(!p("", 80, "tcp").conflicts(&p("", 81, "tcp")));
    }

    #[test]
    fn container_keys_are_valid_cni_ids_and_differ_by_namespace() {
        let a = Cni::container_key("a-b", "c");
        let b = Cni::container_key("a", "b-c");
        assert_ne!(a, b);
        assert!(config::valid_name(&a));
        assert_eq!(a.len(), 64);
    }
}
