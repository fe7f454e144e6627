//! `containerd.services.introspection.v1.Introspection`: the plugin list and
//! the server's identity.

use crate::plugin::{PluginInfo, PluginsHandle};
use berth_api::pb::google::rpc::Status as RpcStatus;
use berth_api::pb::services::v1::*;
use berth_api::server::introspection::introspection_server::{self, IntrospectionServer};
use berth_core::filters::{Adaptor, Filter};
use std::path::Path;
use tonic::{Code, Request, Response, Status};

/// The introspection gRPC service.
pub struct IntrospectionService {
    plugins: PluginsHandle,
    uuid: String,
}

/// The tonic server for it.
pub fn server(plugins: PluginsHandle, uuid: String) -> IntrospectionServer<IntrospectionService> {
    IntrospectionServer::new(IntrospectionService { plugins, uuid })
}

/// The server UUID kept in `dir/uuid`, made on first start and kept across
/// restarts (containerd keeps it in the introspection plugin's root).
pub fn load_or_create_uuid(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("uuid");
    match std::fs::read_to_string(&path) {
        Ok(text) if uuid::Uuid::parse_str(text.trim()).is_ok() => return Ok(text.trim().into()),
        Ok(_) => tracing::warn!(path = %path.display(), "replacing malformed server uuid"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    std::fs::create_dir_all(dir)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join("uuid.tmp");
    std::fs::write(&tmp, &uuid)?;
    std::fs::rename(&tmp, &path)?;
    Ok(uuid)
}

struct PluginFields<'a>(&'a PluginInfo);

impl Adaptor for PluginFields<'_> {
    fn field(&self, path: &[String]) -> Option<String> {
        match (path.first().map(String::as_str)?, path.len()) {
            ("type", 1) => Some(self.0.plugin_type.clone()),
            ("id", 1) => Some(self.0.id.clone()),
            ("exports", 2) => self.0.exports.get(&path[1]).cloned(),
            _ => None,
        }
    }
}

/// The platforms a plugin serves. containerd's snapshotters report the
/// host platform (`platforms.DefaultSpec()`); other plugins report none.
fn platforms_of(plugin_type: &str) -> Vec<berth_api::pb::types::Platform> {
    if plugin_type != crate::plugin::types::SNAPSHOTTER {
        return Vec::new();
    }
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    vec![berth_api::pb::types::Platform {
        os: std::env::consts::OS.to_owned(),
        architecture: architecture.to_owned(),
        ..Default::default()
    }]
}

fn plugin_to_wire(info: &PluginInfo) -> Plugin {
    Plugin {
        r#type: info.plugin_type.clone(),
        id: info.id.clone(),
        requires: info.requires.clone(),
        platforms: platforms_of(&info.plugin_type),
        exports: info.exports.clone(),
        capabilities: Vec::new(),
        init_err: info.init_err.as_ref().map(|message| RpcStatus {
            code: Code::Unknown as i32,
            message: message.clone(),
            details: Vec::new(),
        }),
    }
}

#[tonic::async_trait]
impl introspection_server::Introspection for IntrospectionService {
    async fn plugins(
        &self,
        request: Request<PluginsRequest>,
    ) -> Result<Response<PluginsResponse>, Status> {
        let filter = super::grpc(Filter::parse_all(&request.into_inner().filters))?;
        let plugins = self
            .plugins
            .get()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| filter.matches(&PluginFields(p)))
            .map(plugin_to_wire)
            .collect();
        Ok(Response::new(PluginsResponse { plugins }))
    }

    async fn server(&self, _: Request<()>) -> Result<Response<ServerResponse>, Status> {
        Ok(Response::new(ServerResponse {
            uuid: self.uuid.clone(),
            pid: u64::from(std::process::id()),
            pidns: pid_namespace_inode().unwrap_or(0),
            deprecations: Vec::new(),
        }))
    }
}

fn pid_namespace_inode() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_uuid(dir.path()).expect("create");
        let second = load_or_create_uuid(dir.path()).expect("load");
        assert_eq!(first, second);
        assert!(uuid::Uuid::parse_str(&first).is_ok());
    }
}
