//! Version, Status and UpdateRuntimeConfig: what the kubelet asks first.

use crate::Cri;
use berth_core::Result;
use k8s_cri::v1::*;

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
        self.network.write_template(&cidrs)?;
        Ok(UpdateRuntimeConfigResponse {})
    }
}
