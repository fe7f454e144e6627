//! Containers in pods: Create (the spec from the CRI config merged with
//! the image's), Start (with CRI-format logs), Stop, Remove, Status, List
//! and ExecSync.

mod mounts;
mod spec;

use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;

impl Cri {
    pub(crate) async fn create_container(
        &self,
        _: CreateContainerRequest,
    ) -> Result<CreateContainerResponse> {
        Err(Error::not_implemented("CreateContainer"))
    }

    pub(crate) async fn start_container(
        &self,
        _: StartContainerRequest,
    ) -> Result<StartContainerResponse> {
        Err(Error::not_implemented("StartContainer"))
    }

    pub(crate) async fn stop_container(
        &self,
        _: StopContainerRequest,
    ) -> Result<StopContainerResponse> {
        Err(Error::not_implemented("StopContainer"))
    }

    pub(crate) async fn remove_container(
        &self,
        _: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse> {
        Err(Error::not_implemented("RemoveContainer"))
    }

    pub(crate) async fn list_containers(
        &self,
        _: ListContainersRequest,
    ) -> Result<ListContainersResponse> {
        Err(Error::not_implemented("ListContainers"))
    }

    pub(crate) async fn container_status(
        &self,
        _: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse> {
        Err(Error::not_implemented("ContainerStatus"))
    }

    pub(crate) async fn exec_sync(&self, _: ExecSyncRequest) -> Result<ExecSyncResponse> {
        Err(Error::not_implemented("ExecSync"))
    }
}
