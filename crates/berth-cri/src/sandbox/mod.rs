//! Pod sandboxes: RunPodSandbox (the pause container, its network
//! namespace and CNI, its files), Stop, Remove, Status and List.

pub mod network;

use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;

impl Cri {
    pub(crate) async fn run_pod_sandbox(
        &self,
        _: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse> {
        Err(Error::not_implemented("RunPodSandbox"))
    }

    pub(crate) async fn stop_pod_sandbox(
        &self,
        _: StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse> {
        Err(Error::not_implemented("StopPodSandbox"))
    }

    pub(crate) async fn remove_pod_sandbox(
        &self,
        _: RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse> {
        Err(Error::not_implemented("RemovePodSandbox"))
    }

    pub(crate) async fn pod_sandbox_status(
        &self,
        _: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse> {
        Err(Error::not_implemented("PodSandboxStatus"))
    }

    pub(crate) async fn list_pod_sandbox(
        &self,
        _: ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse> {
        Err(Error::not_implemented("ListPodSandbox"))
    }
}
