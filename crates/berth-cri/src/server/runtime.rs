//! `runtime.v1.RuntimeService`.

use super::{not_yet, reply};
use crate::Cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The RuntimeService adapter.
#[derive(Debug)]
pub struct Runtime(pub Arc<Cri>);

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(&self, r: Request<VersionRequest>) -> Reply<VersionResponse> {
        reply(self.0.version(r.into_inner()))
    }
    async fn run_pod_sandbox(
        &self,
        r: Request<RunPodSandboxRequest>,
    ) -> Reply<RunPodSandboxResponse> {
        reply(
            self.0
                .after_recovery(self.0.run_pod_sandbox(r.into_inner()))
                .await,
        )
    }
    async fn stop_pod_sandbox(
        &self,
        r: Request<StopPodSandboxRequest>,
    ) -> Reply<StopPodSandboxResponse> {
        reply(
            self.0
                .after_recovery(self.0.stop_pod_sandbox(r.into_inner()))
                .await,
        )
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<RemovePodSandboxRequest>,
    ) -> Reply<RemovePodSandboxResponse> {
        reply(
            self.0
                .after_recovery(self.0.remove_pod_sandbox(r.into_inner()))
                .await,
        )
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> Reply<PodSandboxStatusResponse> {
        reply(
            self.0
                .after_recovery(self.0.pod_sandbox_status(r.into_inner()))
                .await,
        )
    }
    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> Reply<ListPodSandboxResponse> {
        reply(
            self.0
                .after_recovery(self.0.list_pod_sandbox(r.into_inner()))
                .await,
        )
    }
    async fn create_container(
        &self,
        r: Request<CreateContainerRequest>,
    ) -> Reply<CreateContainerResponse> {
        reply(
            self.0
                .after_recovery(self.0.create_container(r.into_inner()))
                .await,
        )
    }
    async fn start_container(
        &self,
        r: Request<StartContainerRequest>,
    ) -> Reply<StartContainerResponse> {
        reply(
            self.0
                .after_recovery(self.0.start_container(r.into_inner()))
                .await,
        )
    }
    async fn stop_container(
        &self,
        r: Request<StopContainerRequest>,
    ) -> Reply<StopContainerResponse> {
        reply(
            self.0
                .after_recovery(self.0.stop_container(r.into_inner()))
                .await,
        )
    }
    async fn remove_container(
        &self,
        r: Request<RemoveContainerRequest>,
    ) -> Reply<RemoveContainerResponse> {
        reply(
            self.0
                .after_recovery(self.0.remove_container(r.into_inner()))
                .await,
        )
    }
    async fn list_containers(
        &self,
        r: Request<ListContainersRequest>,
    ) -> Reply<ListContainersResponse> {
        reply(
            self.0
                .after_recovery(self.0.list_containers(r.into_inner()))
                .await,
        )
    }
    async fn container_status(
        &self,
        r: Request<ContainerStatusRequest>,
    ) -> Reply<ContainerStatusResponse> {
        reply(
            self.0
                .after_recovery(self.0.container_status(r.into_inner()))
                .await,
        )
    }
    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> Reply<UpdateContainerResourcesResponse> {
        reply(
            self.0
                .after_recovery(self.0.update_container_resources(r.into_inner()))
                .await,
        )
    }
    async fn reopen_container_log(
        &self,
        r: Request<ReopenContainerLogRequest>,
    ) -> Reply<ReopenContainerLogResponse> {
        reply(
            self.0
                .after_recovery(self.0.reopen_container_log(r.into_inner()))
                .await,
        )
    }
    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> Reply<ExecSyncResponse> {
        reply(
            self.0
                .after_recovery(self.0.exec_sync(r.into_inner()))
                .await,
        )
    }
    async fn exec(&self, r: Request<ExecRequest>) -> Reply<ExecResponse> {
        reply(self.0.after_recovery(self.0.exec(r.into_inner())).await)
    }
    async fn attach(&self, r: Request<AttachRequest>) -> Reply<AttachResponse> {
        reply(
            self.0
                .after_recovery(self.0.attach_url(r.into_inner()))
                .await,
        )
    }
    async fn port_forward(&self, r: Request<PortForwardRequest>) -> Reply<PortForwardResponse> {
        reply(
            self.0
                .after_recovery(self.0.port_forward_url(r.into_inner()))
                .await,
        )
    }
    async fn container_stats(
        &self,
        r: Request<ContainerStatsRequest>,
    ) -> Reply<ContainerStatsResponse> {
        reply(
            self.0
                .after_recovery(self.0.container_stats(r.into_inner()))
                .await,
        )
    }
    async fn list_container_stats(
        &self,
        r: Request<ListContainerStatsRequest>,
    ) -> Reply<ListContainerStatsResponse> {
        reply(
            self.0
                .after_recovery(self.0.list_container_stats(r.into_inner()))
                .await,
        )
    }
    async fn pod_sandbox_stats(
        &self,
        r: Request<PodSandboxStatsRequest>,
    ) -> Reply<PodSandboxStatsResponse> {
        reply(
            self.0
                .after_recovery(self.0.pod_sandbox_stats(r.into_inner()))
                .await,
        )
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<ListPodSandboxStatsRequest>,
    ) -> Reply<ListPodSandboxStatsResponse> {
        reply(
            self.0
                .after_recovery(self.0.list_pod_sandbox_stats(r.into_inner()))
                .await,
        )
    }
    async fn update_runtime_config(
        &self,
        r: Request<UpdateRuntimeConfigRequest>,
    ) -> Reply<UpdateRuntimeConfigResponse> {
        reply(self.0.update_runtime_config(r.into_inner()))
    }
    async fn status(&self, r: Request<StatusRequest>) -> Reply<StatusResponse> {
        reply(self.0.status(r.into_inner()))
    }
    async fn checkpoint_container(
        &self,
        r: Request<CheckpointContainerRequest>,
    ) -> Reply<CheckpointContainerResponse> {
        reply(
            self.0
                .after_recovery(self.0.checkpoint_container(r.into_inner()))
                .await,
        )
    }

    type GetContainerEventsStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<ContainerEventResponse, Status>> + Send + 'static>,
    >;

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        use futures::StreamExt;
        let events = self.0.subscribe_container_events().map(Ok);
        Ok(Response::new(Box::pin(events)))
    }
    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> Reply<ListMetricDescriptorsResponse> {
        not_yet("ListMetricDescriptors")
    }
    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> Reply<ListPodSandboxMetricsResponse> {
        not_yet("ListPodSandboxMetrics")
    }
    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Reply<RuntimeConfigResponse> {
        reply(Ok(RuntimeConfigResponse { linux: None }))
    }
}
