//! PodSandboxStatus: the sandbox's state, network and namespaces, with
//! containerd's verbose `info` (pid, netns, runtime, config, spec, CNI
//! result) when asked.

use super::spec::{host_network, security_context};
use crate::store::{Sandbox, SandboxState};
use crate::Cri;
use berth_core::{ErrorKind, Result};
use k8s_cri::v1::*;
use serde_json::json;
use std::collections::HashMap;

/// The CRI state of a sandbox (Unknown reads as NotReady, as in containerd).
pub(crate) fn cri_state(state: SandboxState) -> PodSandboxState {
    match state {
        SandboxState::Ready => PodSandboxState::SandboxReady,
        SandboxState::NotReady | SandboxState::Unknown => PodSandboxState::SandboxNotready,
    }
}

impl Cri {
    pub(crate) async fn pod_sandbox_status(
        &self,
        request: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse> {
        let sandbox = self.sandboxes.get(&request.pod_sandbox_id).map_err(|e| {
            e.context(format!(
                "an error occurred when try to find sandbox {:?}",
                request.pod_sandbox_id
            ))
        })?;
        let status = sandbox_status(&sandbox);
        let info = if request.verbose {
            HashMap::from([("info".to_string(), self.verbose_info(&sandbox).await?)])
        } else {
            HashMap::new()
        };
        Ok(PodSandboxStatusResponse {
            status: Some(status),
            info,
            ..PodSandboxStatusResponse::default()
        })
    }

    /// containerd's `SandboxInfo`, as JSON.
    async fn verbose_info(&self, sandbox: &Sandbox) -> Result<String> {
        let id = sandbox.metadata.id.as_str();
        let status = sandbox.status();
        let process_status = match self.client.tasks().get(id).await {
            Ok(process) => format!("{:?}", process.status()).to_lowercase(),
            Err(e) if e.kind() == ErrorKind::NotFound => "deleted".into(),
            Err(e) => return Err(e),
        };
        let record = match self.client.containers().get(id).await {
            Ok(record) => Some(record),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let spec = record
            .as_ref()
            .and_then(|r| r.spec.as_ref())
            .and_then(|any| serde_json::from_slice::<serde_json::Value>(&any.value).ok());
        let runtime = record.as_ref().and_then(|r| r.runtime.as_ref());
        let netns = &sandbox.metadata.netns_path;
        let info = json!({
            "pid": status.pid,
            "processStatus": process_status,
            "netNamespaceClosed": !netns.is_empty() && !berth_cni::netns::is_netns(std::path::Path::new(netns)),
            "netnsPath": netns,
            "image": record.as_ref().map(|r| r.image.clone()).unwrap_or_default(),
            "snapshotKey": record.as_ref().map(|r| r.snapshot_key.clone()).unwrap_or_default(),
            "snapshotter": record.as_ref().map(|r| r.snapshotter.clone()).unwrap_or_default(),
            "runtimeHandler": sandbox.metadata.runtime_handler,
            "runtimeType": runtime.map(|r| r.name.clone()).unwrap_or_default(),
            "runtimeOptions": runtime.and_then(|r| r.options.as_ref()).map(|o| o.type_url.clone()),
            "config": sandbox.metadata.config,
            "runtimeSpec": spec,
            "cniResult": sandbox.metadata.cni_result,
            "metadata": sandbox.metadata,
        });
        serde_json::to_string(&info).map_err(|e| berth_core::Error::internal(e.to_string()))
    }
}

/// The CRI status of a sandbox.
pub(crate) fn sandbox_status(sandbox: &Sandbox) -> PodSandboxStatus {
    let metadata = &sandbox.metadata;
    let config = &metadata.config;
    let status = sandbox.status();
    let (ip, additional_ips) = if host_network(config) {
        (String::new(), Vec::new())
    } else {
        (
            metadata.ip.clone(),
            metadata
                .additional_ips
                .iter()
                .map(|ip| PodIp { ip: ip.clone() })
                .collect(),
        )
    };
    PodSandboxStatus {
        id: metadata.id.clone(),
        metadata: config.metadata.clone(),
        state: cri_state(status.state) as i32,
        created_at: status.created_at,
        network: Some(PodSandboxNetworkStatus { ip, additional_ips }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(
                    security_context(config)
                        .and_then(|s| s.namespace_options.clone())
                        .unwrap_or_default(),
                ),
            }),
        }),
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
        runtime_handler: metadata.runtime_handler.clone(),
    }
}
