//! `containerd.services.tasks.v1.Tasks`.

use super::{grpc, namespace};
use crate::local::tasks::{CreateRequest, Tasks};
use berth_api::pb::services::v1::*;
use berth_api::pb::types::v1::Process;
use berth_api::pb::types::Metric;
use berth_api::server::tasks::tasks_server::{self, TasksServer};
use berth_runtime::{CreateOpts, ExecOpts, Exit, ProcessState};
use std::sync::Arc;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

/// The tasks gRPC adapter.
pub struct TasksService(pub Arc<Tasks>);

/// The tonic server for it.
pub fn server(local: Arc<Tasks>) -> TasksServer<TasksService> {
    TasksServer::new(TasksService(local))
}

fn process(container_id: String, state: ProcessState) -> Process {
    Process {
        container_id,
        id: state.id,
        pid: state.pid,
        status: state.status as i32,
        stdin: state.stdin,
        stdout: state.stdout,
        stderr: state.stderr,
        terminal: state.terminal,
        exit_status: state.exit_status,
        exited_at: state.exited_at.map(prost_types::Timestamp::from),
    }
}

fn delete_response(id: String, exit: Exit) -> DeleteResponse {
    DeleteResponse {
        id,
        pid: exit.pid,
        exit_status: exit.status,
        exited_at: exit.exited_at.map(prost_types::Timestamp::from),
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl tasks_server::Tasks for TasksService {
    async fn create(&self, request: Request<CreateTaskRequest>) -> Reply<CreateTaskResponse> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let create = CreateRequest {
            container_id: r.container_id.clone(),
            checkpoint: r.checkpoint.is_some(),
            opts: CreateOpts {
                rootfs: r.rootfs,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                terminal: r.terminal,
                options: r.options,
            },
        };
        let pid = grpc(self.0.create(&ns, create).await)?;
        Ok(Response::new(CreateTaskResponse {
            container_id: r.container_id,
            pid,
        }))
    }

    async fn start(&self, request: Request<StartRequest>) -> Reply<StartResponse> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let pid = grpc(self.0.start(&ns, &r.container_id, &r.exec_id).await)?;
        Ok(Response::new(StartResponse { pid }))
    }

    async fn delete(&self, request: Request<DeleteTaskRequest>) -> Reply<DeleteResponse> {
        let ns = namespace(&request)?;
        let id = request.into_inner().container_id;
        let exit = grpc(self.0.delete(&ns, &id).await)?;
        Ok(Response::new(delete_response(id, exit)))
    }

    async fn delete_process(
        &self,
        request: Request<DeleteProcessRequest>,
    ) -> Reply<DeleteResponse> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let exit = grpc(
            self.0
                .delete_process(&ns, &r.container_id, &r.exec_id)
                .await,
        )?;
        Ok(Response::new(delete_response(r.exec_id, exit)))
    }

    async fn get(&self, request: Request<GetRequest>) -> Reply<GetResponse> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let state = grpc(self.0.get(&ns, &r.container_id, &r.exec_id).await)?;
        Ok(Response::new(GetResponse {
            process: Some(process(r.container_id, state)),
        }))
    }

    async fn list(&self, request: Request<ListTasksRequest>) -> Reply<ListTasksResponse> {
        let ns = namespace(&request)?;
        let states = grpc(self.0.list(&ns, &request.into_inner().filter).await)?;
        let tasks = states.into_iter().map(|(id, s)| process(id, s)).collect();
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn kill(&self, request: Request<KillRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        grpc(
            self.0
                .kill(&ns, &r.container_id, &r.exec_id, r.signal, r.all)
                .await,
        )?;
        Ok(Response::new(()))
    }

    async fn exec(&self, request: Request<ExecProcessRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let opts = ExecOpts {
            exec_id: r.exec_id,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            terminal: r.terminal,
            spec: r.spec,
        };
        grpc(self.0.exec(&ns, &r.container_id, opts).await)?;
        Ok(Response::new(()))
    }

    async fn resize_pty(&self, request: Request<ResizePtyRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        grpc(
            self.0
                .resize_pty(&ns, &r.container_id, &r.exec_id, r.width, r.height)
                .await,
        )?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, request: Request<CloseIoRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        grpc(
            self.0
                .close_io(&ns, &r.container_id, &r.exec_id, r.stdin)
                .await,
        )?;
        Ok(Response::new(()))
    }

    async fn pause(&self, request: Request<PauseTaskRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        grpc(self.0.pause(&ns, &request.into_inner().container_id).await)?;
        Ok(Response::new(()))
    }

    async fn resume(&self, request: Request<ResumeTaskRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        grpc(self.0.resume(&ns, &request.into_inner().container_id).await)?;
        Ok(Response::new(()))
    }

    async fn list_pids(&self, request: Request<ListPidsRequest>) -> Reply<ListPidsResponse> {
        let ns = namespace(&request)?;
        let processes = grpc(self.0.pids(&ns, &request.into_inner().container_id).await)?;
        Ok(Response::new(ListPidsResponse { processes }))
    }

    async fn checkpoint(
        &self,
        request: Request<CheckpointTaskRequest>,
    ) -> Reply<CheckpointTaskResponse> {
        let ns = namespace(&request)?;
        grpc(
            self.0
                .checkpoint(&ns, &request.into_inner().container_id)
                .await,
        )?;
        Ok(Response::new(CheckpointTaskResponse::default()))
    }

    async fn update(&self, request: Request<UpdateTaskRequest>) -> Reply<()> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        grpc(
            self.0
                .update(&ns, &r.container_id, r.resources, r.annotations)
                .await,
        )?;
        Ok(Response::new(()))
    }

    async fn metrics(&self, request: Request<MetricsRequest>) -> Reply<MetricsResponse> {
        let ns = namespace(&request)?;
        let found = grpc(self.0.metrics(&ns, &request.into_inner().filters).await)?;
        let now = Some(prost_types::Timestamp::from(SystemTime::now()));
        let metrics = found
            .into_iter()
            .map(|(id, data)| Metric {
                timestamp: now,
                id,
                data: Some(data),
            })
            .collect();
        Ok(Response::new(MetricsResponse { metrics }))
    }

    async fn wait(&self, request: Request<WaitRequest>) -> Reply<WaitResponse> {
        let ns = namespace(&request)?;
        let r = request.into_inner();
        let exit = grpc(self.0.wait(&ns, &r.container_id, &r.exec_id).await)?;
        Ok(Response::new(WaitResponse {
            exit_status: exit.status,
            exited_at: exit.exited_at.map(prost_types::Timestamp::from),
        }))
    }
}
