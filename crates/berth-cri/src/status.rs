//! Version, Status and UpdateRuntimeConfig: what the kubelet asks first.

use crate::cni_template::{self, TemplateData};
use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;
use std::path::Path;

/// The CRI condition types.
const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";

impl Cri {
    pub(crate) fn version(&self, _: VersionRequest) -> Result<VersionResponse> {
        Ok(VersionResponse {
            // The kubelet's own API version string, as containerd answers.
            version: "0.1.0".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: crate::RUNTIME_API_VERSION.into(),
        })
    }

    pub(crate) fn status(&self, request: StatusRequest) -> Result<StatusResponse> {
        let mut network = RuntimeCondition {
            r#type: NETWORK_READY.into(),
            status: true,
            ..Default::default()
        };
        if let Err(why) = self.network.ready() {
            network.status = false;
            network.reason = "NetworkPluginNotReady".into();
            network.message = format!("Network plugin returns error: {why}");
        }
        let runtime = RuntimeCondition {
            r#type: RUNTIME_READY.into(),
            status: true,
            ..Default::default()
        };
        let mut info = std::collections::HashMap::new();
        if request.verbose {
            info.insert(
                "config".to_string(),
                format!("{:?}", self.config).replace('\n', " "),
            );
        }
        Ok(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            info,
            ..Default::default()
        })
    }

    pub(crate) fn update_runtime_config(
        &self,
        request: UpdateRuntimeConfigRequest,
    ) -> Result<UpdateRuntimeConfigResponse> {
        let cidrs = request
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if cidrs.is_empty() {
            return Ok(UpdateRuntimeConfigResponse {});
        }
        let Some(template) = &self.config.cni.conf_template else {
            return Ok(UpdateRuntimeConfigResponse {});
        };
        // As containerd: a network configured by other means wins.
        if self.network.ready().is_ok() {
            return Ok(UpdateRuntimeConfigResponse {});
        }
        let data = TemplateData::from_pod_cidrs(&cidrs)?;
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::internal(format!("{what} {}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(template)
            .map_err(|e| io("read cni config template", template, e))?;
        let conf = cni_template::render(&text, &data)?;
        let dir = &self.config.cni.conf_dir;
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let path = dir.join(cni_template::CONF_FILE);
        std::fs::write(&path, conf).map_err(|e| io("write", &path, e))?;
        tracing::info!(path = %path.display(), "cni config written from the template");
        Ok(UpdateRuntimeConfigResponse {})
    }
}
